// SPDX-License-Identifier: GPL-2.0
/*
 * Btree structure checks and reference visits. See btree_check.h.
 */
#include "persistent/btree_check.h"

#include <dmxx/mem.h>
#include <dmxx/platform.h>

#include "persistent/btree.h"
#include "persistent/btree_node.h"

namespace dmxx::pdata {

namespace {

struct Bounds {
	bool has_lo, has_hi;
	u64 lo, hi; /* keys must be >= lo and < hi */
};

struct Checker {
	TransactionManager &tm;
	unsigned levels;
	u32 value_size;
	BtreeCheckReport &rep;
	BlockSet seen;

	Result<void> fail() { return err(EILSEQ); }

	Result<ReadRef> read(block_t b)
	{
		auto r = tm.read_lock(b, &btree_node_validator());
		if (r.is_error()) {
			char why[sizeof(rep.failure.reason)];
			tm.cache().last_failure(why, sizeof(why));
			rep.failure.set("cannot read btree node %llu (error %d): %s",
					(unsigned long long)b, r.error_code(), why);
		}
		return r;
	}

	/* Height of an already checked subtree: follow its leftmost path. */
	Result<unsigned> height_of(block_t b)
	{
		for (unsigned h = 1; h <= BTREE_MAX_DEPTH; h++) {
			ReadRef r = TRY(read(b));
			ConstNode n(r.data());
			if (n.is_leaf())
				return h;
			b = n.value64(0);
		}
		rep.failure.set("btree deeper than %u", BTREE_MAX_DEPTH);
		return err(EILSEQ);
	}

	/* Returns the node's height (1 for a leaf). */
	Result<unsigned> check(block_t b, unsigned level, unsigned depth, Bounds bounds, bool is_root)
	{
		if (depth >= BTREE_MAX_DEPTH) {
			rep.failure.set("btree deeper than %u at node %llu (a cycle?)", BTREE_MAX_DEPTH,
					(unsigned long long)b);
			return err(EILSEQ);
		}
		if (!TRY(seen.insert(b)))
			return height_of(b);
		rep.nr_nodes++;

		ReadRef r = TRY(read(b));
		ConstNode n(r.data());
		u32 nr = n.nr_entries();
		u32 want = n.is_internal() ? 8 : (level + 1 < levels ? 8 : value_size);
		if (n.value_size() != want) {
			rep.failure.set("node %llu: value size %u, expected %u", (unsigned long long)b,
					n.value_size(), want);
			return err(EILSEQ);
		}
		if (n.max_entries() != btree_max_entries(want)) {
			rep.failure.set("node %llu: max_entries %u, expected %u", (unsigned long long)b,
					n.max_entries(), btree_max_entries(want));
			return err(EILSEQ);
		}
		if (!is_root && nr < n.max_entries() / 3) {
			rep.failure.set("node %llu: %u entries, below a third of %u",
					(unsigned long long)b, nr, n.max_entries());
			return err(EILSEQ);
		}
		if (n.is_internal() && nr == 0) {
			rep.failure.set("internal node %llu has no entries", (unsigned long long)b);
			return err(EILSEQ);
		}
		for (u32 i = 0; i < nr; i++) {
			u64 k = n.key(i);
			if (i && k <= n.key(i - 1)) {
				rep.failure.set("node %llu: key %u (%llu) not above key %u (%llu)",
						(unsigned long long)b, i, (unsigned long long)k, i - 1,
						(unsigned long long)n.key(i - 1));
				return err(EILSEQ);
			}
			if ((bounds.has_lo && k < bounds.lo) || (bounds.has_hi && k >= bounds.hi)) {
				rep.failure.set("node %llu: key %llu outside its parent's range",
						(unsigned long long)b, (unsigned long long)k);
				return err(EILSEQ);
			}
		}

		if (n.is_internal()) {
			unsigned height = 0;
			for (u32 i = 0; i < nr; i++) {
				Bounds cb = {true, i + 1 < nr || bounds.has_hi, n.key(i),
					     i + 1 < nr ? n.key(i + 1) : bounds.hi};
				unsigned h = TRY(check(n.value64(i), level, depth + 1, cb, false));
				if (i && h != height) {
					rep.failure.set("node %llu: children of heights %u and %u "
							"(leaves at different depths)",
							(unsigned long long)b, height, h);
					return err(EILSEQ);
				}
				height = h;
			}
			return height + 1;
		}
		if (level + 1 < levels) {
			for (u32 i = 0; i < nr; i++)
				TRY(check(n.value64(i), level + 1, 0, Bounds{}, true));
		} else {
			rep.nr_entries += nr;
		}
		return 1u;
	}
};

struct Visitor {
	TransactionManager &tm;
	unsigned levels;
	BlockVisitFn fn;
	void *ctx;
	BlockSet seen;

	Result<void> visit(block_t b, unsigned level, unsigned depth)
	{
		if (depth >= BTREE_MAX_DEPTH)
			return err(EILSEQ);
		fn(ctx, b);
		if (!TRY(seen.insert(b)))
			return {};
		ReadRef r = TRY(tm.read_lock(b, &btree_node_validator()));
		ConstNode n(r.data());
		u32 nr = n.nr_entries();
		if (n.is_internal()) {
			for (u32 i = 0; i < nr; i++)
				TRY(visit(n.value64(i), level, depth + 1));
		} else if (level + 1 < levels) {
			if (n.value_size() != 8)
				return err(EILSEQ);
			for (u32 i = 0; i < nr; i++)
				TRY(visit(n.value64(i), level + 1, 0));
		}
		return {};
	}
};

} // namespace

Result<void> check_btree(TransactionManager &tm, block_t root, unsigned levels, u32 value_size,
			 BtreeCheckReport &report)
{
	report.nr_entries = 0;
	report.nr_nodes = 0;
	report.depth = 0;
	report.failure.clear();
	if (levels < 1 || levels > BTREE_MAX_LEVELS) {
		report.failure.set("bad number of levels %u", levels);
		return err(EINVAL);
	}
	Checker c{tm, levels, value_size, report, {}};
	report.depth = TRY(c.check(root, 0, 0, Bounds{}, true));
	return {};
}

Result<void> visit_btree_references(TransactionManager &tm, block_t root, unsigned levels,
				    BlockVisitFn fn, void *ctx)
{
	Visitor v{tm, levels, fn, ctx, {}};
	return v.visit(root, 0, 0);
}

} // namespace dmxx::pdata
