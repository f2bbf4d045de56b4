/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sanity checks of what a space map is reopened from. A root or index
 * entry comes from disk, so anything impossible in it is -EILSEQ (damage),
 * never a crash or a read beyond the metadata device.
 */
#pragma once

#include "persistent/transaction.h"
#include "space_map/sm_format.h"

namespace dmxx::pdata {

/*
 * Copy an SmRoot out of @root (@len bytes, any alignment) and check it:
 * -EINVAL if @len is too short; -EILSEQ if more blocks are allocated than
 * exist, nr_blocks exceeds @max_blocks, or a root block lies beyond the
 * metadata device.
 */
Result<SmRoot> parse_sm_root(TransactionManager &tm, const void *root, usize len, u64 max_blocks);

/* -EILSEQ unless @ie's bitmap lies on the metadata device and its counters fit a bitmap. */
Result<void> check_index_entry(TransactionManager &tm, const IndexEntry &ie);

} // namespace dmxx::pdata
