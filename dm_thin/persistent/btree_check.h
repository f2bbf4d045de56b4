/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Structural checks of a btree, as thin_check makes them.
 *
 * Why in the core and not only in tests: the thin-metadata tests, the image
 * tool and a future repair path all want to know "would thin_check accept
 * this tree?" without running it, and to rebuild the reference counts a
 * space map should hold (the metadata space map check).
 *
 * check_btree() verifies, for every node reachable from @root:
 *   - checksum and self-recorded location (through the validator when the
 *     block is read: use a fresh cache over the device to check what is on disk);
 *   - flags (internal vs leaf), value_size (8 in internal nodes and upper
 *     levels' leaves, the given size in last-level leaves), max_entries as
 *     the kernel computes it for that value size;
 *   - keys strictly increasing, and within the range the parent's keys allow
 *     (>= the parent's key for this child, < the parent's next key);
 *   - every non-root node at least max_entries / 3 full; an internal node
 *     has at least one entry (a root leaf may be empty);
 *   - all leaves of one (sub)tree at the same depth, depth <= BTREE_MAX_DEPTH.
 * Shared subtrees are checked once. The first violation is reported.
 */
#pragma once

#include <dmxx/result.h>
#include <dmxx/types.h>

#include "persistent/block_cache.h"
#include "persistent/transaction.h"

namespace dmxx::pdata {

struct BtreeCheckReport {
	u64 nr_entries;     /* last-level entries, counting shared subtrees once */
	u64 nr_nodes;       /* distinct nodes */
	unsigned depth;     /* of the top-level tree (1 = root is a leaf) */
	CheckFailure failure;
};

/* -EILSEQ with @report.failure set on the first violation; the device's errors. */
Result<void> check_btree(TransactionManager &tm, block_t root, unsigned levels, u32 value_size,
			 BtreeCheckReport &report);

/*
 * Call @fn(ctx, b) once per reference to a btree node b reachable from
 * @root: a node with k parents (or k upper-level leaf values pointing at
 * it) is reported k times, plus once for @root itself; a node's own
 * children are walked only the first time it is seen. The counts so
 * collected are what the metadata space map must hold for these blocks.
 * Values of the last level are not followed.
 */
using BlockVisitFn = void (*)(void *ctx, block_t b);
Result<void> visit_btree_references(TransactionManager &tm, block_t root, unsigned levels,
				    BlockVisitFn fn, void *ctx);

} // namespace dmxx::pdata
