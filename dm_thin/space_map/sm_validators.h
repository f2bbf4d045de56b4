/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Validators of the space maps' own block types: bitmap blocks and the
 * metadata space map's index block. Both stamp a salted checksum of
 * everything after the csum field and the block's own location, and check
 * both on read, so a stale, misdirected or corrupt block is refused with
 * -EILSEQ instead of being believed.
 */
#pragma once

#include "persistent/block_cache.h"

namespace dmxx::pdata {

const BlockValidator &sm_bitmap_validator();
const BlockValidator &sm_index_validator();

} // namespace dmxx::pdata
