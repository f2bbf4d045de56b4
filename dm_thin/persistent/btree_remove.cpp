// SPDX-License-Identifier: GPL-2.0
/*
 * Btree removal with rebalancing.
 *
 * We shadow down to the leaf, remove a run of entries from it, then walk
 * back up the path we still hold: a node left below a third full (the
 * format's minimum, which the Rust thin_check enforces) takes entries from a
 * sibling if the two hold at least two thirds of a node between them, and
 * otherwise merges with it, which takes an entry out of the parent and may
 * leave the parent short in turn. Either way both nodes end at least a
 * third full, because the sibling was. Finally an internal root left with a
 * single child is replaced by that child.
 *
 * Bottom-up rather than the kernel's top-down fixing: a range removal can
 * empty a leaf in one go, and only after the removal do we know how short
 * the node is.
 */
#include "persistent/btree.h"

#include <dmxx/mem.h>
#include <dmxx/platform.h>

#include "persistent/btree_internal.h"

namespace dmxx::pdata {

/*
 * Child @i of @parent (held as @node) is below the minimum: borrow from or
 * merge with a sibling. @node is consumed (it may be merged away).
 */
static Result<void> fix_underflow(Btree &t, const ShadowPath &path, const Node &parent, u32 i,
				  WriteRef node, unsigned level)
{
	u32 pn = parent.nr_entries();
	if (pn < 2)
		return {}; /* only a root has a single child; the caller collapses it */
	u32 li = i + 1 < pn ? i : i - 1;
	u32 ri = li + 1;
	u32 si = li == i ? ri : li;
	if (path.holds(parent.value64(si))) {
		dmxx_log(DMXX_LOG_ERR, "btree sibling is an ancestor: corrupt");
		return err(EILSEQ);
	}
	WriteRef sib = TRY(BtreeOps::shadow_child(t, parent, si, level));
	WriteRef &lref = li == i ? node : sib;
	WriteRef &rref = li == i ? sib : node;
	Node ln(lref.data()), rn(rref.data());
	if (ln.flags() != rn.flags()) {
		dmxx_log(DMXX_LOG_ERR, "btree siblings %llu and %llu at different depths: corrupt",
			 (unsigned long long)lref.location(), (unsigned long long)rref.location());
		return err(EILSEQ);
	}
	u32 min = ln.max_entries() / 3;
	u32 total = ln.nr_entries() + rn.nr_entries();

	if (total >= 2 * min) {
		/* Enough for two: share evenly, each keeps at least the minimum. */
		u32 target = total / 2;
		u32 lnr = ln.nr_entries();
		if (lnr > target) {
			rn.prepend_from(ln, target, lnr - target);
			ln.set_nr_entries(target);
		} else if (lnr < target) {
			u32 k = target - lnr;
			ln.append_from(rn, 0, k);
			rn.erase(0, k);
		}
		parent.set_key(ri, rn.key(0));
		return {};
	}

	/* Too few for two: everything into the left node, the right one goes. */
	ln.append_from(rn, 0, rn.nr_entries());
	block_t gone = rref.location();
	/* It was shadowed in this transaction (count 1): drop it unwritten. */
	rref.forget();
	parent.erase(ri, 1);
	return t.tm().dec(gone);
}

/* Remove the run of keys in [lo, last] from the leaf where @lo belongs. */
static Result<block_t> remove_run(Btree &t, block_t root, unsigned level, u64 lo, u64 last,
				  u64 *nr_removed)
{
	ShadowPath path;
	block_t new_root;
	TRY(BtreeOps::shadow_down(t, root, level, lo, false, path, &new_root));

	{
		Node leaf(path.leaf().data());
		u32 nr = leaf.nr_entries();
		u32 start = leaf.upper_index(lo);
		u32 end = start;
		while (end < nr && leaf.key(end) <= last)
			end++;
		u32 count = end - start;
		if (count) {
			TRY(BtreeOps::leaf_value_type(t, level).dec(leaf.value(start), count));
			leaf.erase(start, count);
		}
		*nr_removed += count;
	}

	for (unsigned d = path.depth - 1; d >= 1; d--) {
		Node n(path.node[d].data());
		if (n.nr_entries() >= n.max_entries() / 3)
			break;
		Node parent(path.node[d - 1].data());
		WriteRef node = move(path.node[d]);
		TRY(fix_underflow(t, path, parent, path.index[d - 1], move(node), level));
	}

	/* An internal root with one child: the child becomes the root. */
	Node rn(path.node[0].data());
	if (rn.is_internal() && rn.nr_entries() == 1) {
		block_t child = rn.value64(0);
		block_t old = path.node[0].location();
		for (unsigned d = 1; d < path.depth; d++)
			path.node[d].release();
		path.node[0].forget(); /* ours alone (just shadowed): never needs writing */
		TRY(t.tm().dec(old)); /* its reference to the child passes to our caller */
		return child;
	}
	return new_root;
}

Result<block_t> BtreeOps::remove_range_in_level(Btree &t, block_t root, unsigned level, u64 lo,
						u64 last, u64 *nr_removed)
{
	u8 *buf = static_cast<u8 *>(dmxx_alloc(METADATA_BLOCK_SIZE, DMXX_ALLOC_NOIO));
	if (!buf)
		return err(ENOMEM);
	int error = 0;
	for (;;) {
		/* Find what is left to remove first: shadow nothing if there is nothing. */
		u32 idx;
		auto r = find_leaf_ge(t, root, level, lo, buf, &idx);
		if (r.is_error()) {
			if (r.error_code() != -ENODATA)
				error = r.error_code();
			break;
		}
		u64 k = ConstNode(buf).key(idx);
		if (k > last)
			break;
		u64 before = *nr_removed;
		auto nr = remove_run(t, root, level, k, last, nr_removed);
		if (nr.is_error()) {
			error = nr.error_code();
			break;
		}
		root = nr.value();
		if (*nr_removed == before) {
			/* The search and the descent disagree: keys out of order. */
			dmxx_log(DMXX_LOG_ERR, "btree removal made no progress: corrupt");
			error = -EILSEQ;
			break;
		}
		lo = k;
	}
	dmxx_free(buf);
	if (error)
		return err(error);
	return root;
}

/* Follow the prefix down (shadowing), remove [lo, last] in the last level, re-link. */
static Result<block_t> remove_at(Btree &t, block_t root, unsigned level, const u64 *keys, u64 lo,
				 u64 last, u64 *nr_removed)
{
	if (level + 1 == t.levels())
		return BtreeOps::remove_range_in_level(t, root, level, lo, last, nr_removed);

	ShadowPath path;
	block_t new_root;
	TRY(BtreeOps::shadow_down(t, root, level, keys[level], false, path, &new_root));
	Node leaf(path.leaf().data());
	int i = leaf.lower_bound(keys[level]);
	if (i < 0 || leaf.key(u32(i)) != keys[level])
		return err(ENODATA);
	block_t sub = leaf.value64(u32(i));
	block_t new_sub = TRY(remove_at(t, sub, level + 1, keys, lo, last, nr_removed));
	leaf.set_value64(u32(i), new_sub);
	return new_root;
}

Result<block_t> Btree::remove(block_t root, const u64 *keys)
{
	if (m_levels < 1 || m_levels > BTREE_MAX_LEVELS)
		return err(EINVAL);
	/* Absent: say so without shadowing anything. */
	TRY(lookup(root, keys, nullptr));
	u64 key = keys[m_levels - 1];
	u64 removed = 0;
	block_t r = TRY(remove_at(*this, root, 0, keys, key, key, &removed));
	if (removed != 1)
		return err(EILSEQ);
	return r;
}

Result<block_t> Btree::remove_range(block_t root, const u64 *keys, u64 end_key, u64 *nr_removed)
{
	if (m_levels < 1 || m_levels > BTREE_MAX_LEVELS)
		return err(EINVAL);
	u64 dummy = 0;
	u64 *count = nr_removed ? nr_removed : &dummy;
	*count = 0;
	u64 lo = keys[m_levels - 1];
	if (end_key <= lo)
		return root;
	/* A missing prefix, or nothing in range: unchanged, nothing shadowed. */
	u64 first;
	auto next = lookup_next(root, keys, &first, nullptr);
	if (next.is_error())
		return next.error_code() == -ENODATA ? Result<block_t>(root)
						     : Result<block_t>(next.error());
	if (first >= end_key)
		return root;
	return remove_at(*this, root, 0, keys, first, end_key - 1, count);
}

} // namespace dmxx::pdata
