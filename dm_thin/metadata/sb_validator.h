/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The block cache's validator for thin superblocks (block 0, and the copy a
 * metadata snapshot holds): seals location and checksum on write, checks
 * location, magic and checksum on read. The open path judges the rest of the
 * superblock (version, features, sizes) itself, before the cache exists.
 */
#pragma once

#include "persistent/block_cache.h"

namespace dmxx::thin {

const pdata::BlockValidator &superblock_validator();

} // namespace dmxx::thin
