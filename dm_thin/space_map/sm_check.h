/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Read-only inspection of a committed space map, as thin_check does it.
 *
 * Why in the core: thin metadata's checker, the image tool and the tests
 * all need "which metadata blocks does this space map occupy?" (to rebuild
 * the counts the metadata space map must hold) and "is this space map
 * consistent in itself?". Everything here reads through @tm only; to check
 * what is on disk, use a manager over a fresh cache.
 */
#pragma once

#include <dmxx/result.h>

#include "persistent/btree_check.h"
#include "persistent/transaction.h"
#include "space_map/sm_format.h"

namespace dmxx::pdata {

enum class SmKind : u8 {
	Disk,     /* index in a btree (DiskSpaceMap) */
	Metadata, /* index in one block (MetadataSpaceMap) */
};

/*
 * Call @fn once per reference the space map at @root holds to a metadata
 * block: its index block or index btree nodes, each bitmap, each overflow
 * btree node. -EILSEQ if the structures cannot be walked.
 */
Result<void> visit_space_map_blocks(TransactionManager &tm, SmKind kind, const void *root,
				    usize len, BlockVisitFn fn, void *ctx);

/* Called for every block below nr_blocks, in order, with its count. */
using CountVisitFn = Result<void> (*)(void *ctx, block_t b, u32 count);

/* Every block's count as stored (bitmaps, and the overflow btree for 3). */
Result<void> visit_counts(TransactionManager &tm, SmKind kind, const void *root, usize len,
			  CountVisitFn fn, void *ctx);

struct SmCheckReport {
	u64 nr_blocks;
	u64 nr_allocated;       /* blocks with a non-zero count, as counted */
	u64 nr_bitmaps;
	u64 nr_overflow_entries;
	CheckFailure failure;
};

/*
 * The space map agrees with itself: the index has exactly one entry per
 * bitmap, each bitmap passes its check and holds as many zero entries as
 * its index entry says (tail included, as the kernel counts), with none
 * before none_free_before; the root's nr_allocated is the number of
 * non-zero counts; a 3 in a bitmap has an overflow entry >= 3 and every
 * overflow entry has its 3; the btrees are well formed.
 * -EILSEQ with @report.failure set at the first violation.
 */
Result<void> check_space_map(TransactionManager &tm, SmKind kind, const void *root, usize len,
			     SmCheckReport &report);

} // namespace dmxx::pdata
