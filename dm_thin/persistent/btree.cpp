// SPDX-License-Identifier: GPL-2.0
/*
 * Btrees: shape checks, shadowing descent with pre-emptive splits, lookups,
 * insert, delete and walks. Removal is in btree_remove.cpp.
 *
 * Inserts split on the way down: any full node met is split before we step
 * into it, so a split never has to travel back up (the parent always has
 * room for the new separator) and each step holds only what it shadowed.
 *
 * Read-only walks copy one leaf at a time and call the visitor with no block
 * locked, then find the next leaf by searching again from the root for the
 * key after the last one seen: a visitor may itself update other trees (or
 * this one, through the next root) without deadlocking on our read locks.
 */
#include "persistent/btree.h"

#include <dmxx/mem.h>
#include <dmxx/platform.h>

#include "persistent/btree_internal.h"

namespace dmxx::pdata {

static constexpr u64 KEY_MAX = ~u64(0);

/* ---- value types ------------------------------------------------------------------- */

Result<void> BlockRefValue::inc(const void *values, u32 count)
{
	const u8 *p = static_cast<const u8 *>(values);
	for (u32 i = 0; i < count; i++)
		TRY(m_tm.inc(load_le64(p + 8 * usize(i))));
	return {};
}

Result<void> BlockRefValue::dec(const void *values, u32 count)
{
	const u8 *p = static_cast<const u8 *>(values);
	for (u32 i = 0; i < count; i++)
		TRY(m_tm.dec(load_le64(p + 8 * usize(i))));
	return {};
}

/* ---- node access ------------------------------------------------------------------- */

Result<void> BtreeOps::check_shape(const Btree &t, const ConstNode &n, unsigned level, block_t where)
{
	u32 want = n.is_internal() ? 8 : leaf_value_size(t, level);
	if (n.value_size() != want || n.max_entries() != btree_max_entries(want)) {
		dmxx_log(DMXX_LOG_ERR,
			 "btree node %llu: value size %u, max_entries %u; expected %u and %u",
			 (unsigned long long)where, n.value_size(), n.max_entries(), want,
			 btree_max_entries(want));
		return err(EILSEQ);
	}
	if (n.is_internal() && n.nr_entries() == 0) {
		dmxx_log(DMXX_LOG_ERR, "btree node %llu: internal node without entries",
			 (unsigned long long)where);
		return err(EILSEQ);
	}
	return {};
}

Result<ReadRef> BtreeOps::read_node(Btree &t, block_t b, unsigned level)
{
	ReadRef r = TRY(t.m_tm.read_lock(b, &btree_node_validator()));
	TRY(check_shape(t, ConstNode(r.data()), level, b));
	return r;
}

Result<void> BtreeOps::inc_children(Btree &t, const ConstNode &n, unsigned level)
{
	u32 nr = n.nr_entries();
	if (n.is_internal()) {
		for (u32 i = 0; i < nr; i++)
			TRY(t.m_tm.inc(n.value64(i)));
		return {};
	}
	if (!nr)
		return {};
	return leaf_value_type(t, level).inc(n.value(0), nr);
}

Result<WriteRef> BtreeOps::shadow_node(Btree &t, block_t b, unsigned level)
{
	Shadow s = TRY(t.m_tm.shadow_block(b, &btree_node_validator()));
	ConstNode n(s.block.data());
	TRY(check_shape(t, n, level, b));
	if (s.inc_children)
		TRY(inc_children(t, n, level));
	return move(s.block);
}

Result<WriteRef> BtreeOps::shadow_child(Btree &t, const Node &parent, u32 i, unsigned level)
{
	block_t b = parent.value64(i);
	WriteRef w = TRY(shadow_node(t, b, level));
	if (w.location() != b)
		parent.set_value64(i, w.location());
	return w;
}

static Result<WriteRef> new_node(Btree &t, u32 flags, u32 value_size)
{
	WriteRef w = TRY(t.tm().new_block(&btree_node_validator()));
	Node(w.data()).format(flags, value_size);
	return w;
}

/* Split full child @c (entry @i of @parent) in two; the upper half goes to the returned node. */
static Result<WriteRef> split_child(Btree &t, const Node &parent, u32 i, WriteRef &c)
{
	Node cn(c.data());
	WriteRef r = TRY(new_node(t, cn.flags(), cn.value_size()));
	Node rn(r.data());
	u32 nr = cn.nr_entries();
	u32 left = nr / 2;
	rn.append_from(cn, left, nr - left);
	cn.set_nr_entries(left);
	parent.insert_gap(i + 1);
	parent.set_key(i + 1, rn.key(0));
	parent.set_value64(i + 1, r.location());
	return r;
}

/*
 * A full root is split "beneath": its entries move to two new children and
 * it becomes an internal node over them, so the root keeps its location.
 */
static Result<void> split_beneath(Btree &t, WriteRef &root)
{
	Node rn(root.data());
	WriteRef a = TRY(new_node(t, rn.flags(), rn.value_size()));
	WriteRef b = TRY(new_node(t, rn.flags(), rn.value_size()));
	Node an(a.data()), bn(b.data());
	u32 nr = rn.nr_entries();
	u32 left = nr / 2;
	an.append_from(rn, 0, left);
	bn.append_from(rn, left, nr - left);
	rn.format(NODE_INTERNAL, 8);
	rn.set_nr_entries(2);
	rn.set_key(0, an.key(0));
	rn.set_value64(0, a.location());
	rn.set_key(1, bn.key(0));
	rn.set_value64(1, b.location());
	return {};
}

Result<void> BtreeOps::shadow_down(Btree &t, block_t root, unsigned level, u64 key, bool for_insert,
				   ShadowPath &path, block_t *new_root)
{
	WriteRef r = TRY(shadow_node(t, root, level));
	*new_root = r.location();
	{
		Node rn(r.data());
		if (for_insert && rn.nr_entries() == rn.max_entries())
			TRY(split_beneath(t, r));
	}
	path.node[0] = move(r);
	path.index[0] = 0;
	path.depth = 1;

	for (;;) {
		Node n(path.node[path.depth - 1].data());
		if (n.is_leaf())
			return {};
		if (path.depth >= BTREE_MAX_DEPTH) {
			dmxx_log(DMXX_LOG_ERR, "btree deeper than %u nodes: corrupt", BTREE_MAX_DEPTH);
			return err(EILSEQ);
		}
		int found = n.lower_bound(key);
		u32 i = 0;
		if (found < 0) {
			/* Below every key: keep key[0] a lower bound of what is beneath it. */
			if (for_insert)
				n.set_key(0, key);
		} else {
			i = u32(found);
		}
		if (path.holds(n.value64(i))) {
			dmxx_log(DMXX_LOG_ERR, "btree node %llu points back at an ancestor: corrupt",
				 (unsigned long long)path.node[path.depth - 1].location());
			return err(EILSEQ);
		}
		WriteRef c = TRY(shadow_child(t, n, i, level));
		Node cn(c.data());
		if (for_insert && cn.nr_entries() == cn.max_entries()) {
			WriteRef right = TRY(split_child(t, n, i, c));
			if (key >= n.key(i + 1)) {
				c = move(right);
				i++;
			}
		}
		path.index[path.depth - 1] = i;
		path.node[path.depth] = move(c);
		path.index[path.depth] = 0;
		path.depth++;
	}
}

/* ---- read-only searches ------------------------------------------------------------ */

Result<void> BtreeOps::lookup_in_level(Btree &t, block_t root, unsigned level, u64 key,
				       void *value_out)
{
	block_t b = root;
	for (unsigned depth = 0; depth < BTREE_MAX_DEPTH; depth++) {
		ReadRef r = TRY(read_node(t, b, level));
		ConstNode n(r.data());
		int i = n.lower_bound(key);
		if (i < 0)
			return err(ENODATA);
		if (n.is_internal()) {
			b = n.value64(u32(i));
			continue;
		}
		if (n.key(u32(i)) != key)
			return err(ENODATA);
		if (value_out)
			mem_copy(value_out, n.value(u32(i)), n.value_size());
		return {};
	}
	dmxx_log(DMXX_LOG_ERR, "btree deeper than %u nodes: corrupt", BTREE_MAX_DEPTH);
	return err(EILSEQ);
}

Result<block_t> BtreeOps::lookup_prefix(Btree &t, block_t root, const u64 *keys)
{
	for (unsigned level = 0; level + 1 < t.m_levels; level++) {
		u8 v[8];
		TRY(lookup_in_level(t, root, level, keys[level], v));
		root = load_le64(v);
	}
	return root;
}

Result<void> BtreeOps::find_leaf_ge(Btree &t, block_t root, unsigned level, u64 key, u8 *leaf_copy,
				    u32 *index)
{
	u64 k = key;
	for (;;) {
		block_t b = root;
		bool have_next = false;
		u64 next_key = 0;
		unsigned depth = 0;
		for (;; depth++) {
			if (depth >= BTREE_MAX_DEPTH) {
				dmxx_log(DMXX_LOG_ERR, "btree deeper than %u nodes: corrupt",
					 BTREE_MAX_DEPTH);
				return err(EILSEQ);
			}
			ReadRef r = TRY(read_node(t, b, level));
			ConstNode n(r.data());
			u32 nr = n.nr_entries();
			if (n.is_internal()) {
				int i = n.lower_bound(k);
				if (i < 0)
					i = 0;
				if (u32(i) + 1 < nr) {
					have_next = true; /* the nearest ancestor's right sibling */
					next_key = n.key(u32(i) + 1);
				}
				b = n.value64(u32(i));
				continue;
			}
			u32 j = n.upper_index(k);
			if (j < nr) {
				mem_copy(leaf_copy, r.data(), METADATA_BLOCK_SIZE);
				*index = j;
				return {};
			}
			break;
		}
		if (!have_next)
			return err(ENODATA);
		if (next_key <= k) {
			dmxx_log(DMXX_LOG_ERR, "btree keys out of order: corrupt");
			return err(EILSEQ);
		}
		k = next_key;
	}
}

Result<void> BtreeOps::walk_level(Btree &t, block_t root, unsigned level, u64 begin, u64 last,
				  u64 *keys, u8 *bufs, BtreeWalkFn fn, void *ctx)
{
	u8 *buf = bufs + usize(level) * METADATA_BLOCK_SIZE;
	u64 k = begin;
	for (;;) {
		u32 idx;
		auto r = find_leaf_ge(t, root, level, k, buf, &idx);
		if (r.is_error())
			return r.error_code() == -ENODATA ? Result<void>() : r;
		ConstNode n(buf);
		u32 nr = n.nr_entries();
		for (; idx < nr; idx++) {
			u64 key = n.key(idx);
			if (key > last)
				return {};
			keys[level] = key;
			if (level + 1 < t.m_levels)
				TRY(walk_level(t, n.value64(idx), level + 1, 0, KEY_MAX, keys, bufs, fn,
					       ctx));
			else
				TRY(fn(ctx, keys, n.value(idx)));
		}
		u64 highest = n.key(nr - 1);
		if (highest >= last)
			return {};
		k = highest + 1;
	}
}

Result<void> BtreeOps::find_extreme(Btree &t, block_t root, bool highest, u64 *keys_out)
{
	for (unsigned level = 0; level < t.m_levels; level++) {
		block_t b = root;
		for (unsigned depth = 0;; depth++) {
			if (depth >= BTREE_MAX_DEPTH)
				return err(EILSEQ);
			ReadRef r = TRY(read_node(t, b, level));
			ConstNode n(r.data());
			u32 nr = n.nr_entries();
			if (!nr)
				return err(ENODATA);
			u32 i = highest ? nr - 1 : 0;
			if (n.is_internal()) {
				b = n.value64(i);
				continue;
			}
			keys_out[level] = n.key(i);
			if (level + 1 < t.m_levels)
				root = n.value64(i);
			break;
		}
	}
	return {};
}

/* ---- delete ------------------------------------------------------------------------ */

Result<void> BtreeOps::del_node(Btree &t, block_t b, unsigned level, unsigned depth)
{
	if (depth >= BTREE_MAX_DEPTH)
		return err(EILSEQ);
	/* Someone else still points here: just drop our reference, keep the contents. */
	if (TRY(t.m_tm.is_shared(b)))
		return t.m_tm.dec(b);
	{
		ReadRef r = TRY(read_node(t, b, level));
		ConstNode n(r.data());
		u32 nr = n.nr_entries();
		if (n.is_internal()) {
			for (u32 i = 0; i < nr; i++)
				TRY(del_node(t, n.value64(i), level, depth + 1));
		} else if (level + 1 < t.m_levels) {
			for (u32 i = 0; i < nr; i++)
				TRY(del_node(t, n.value64(i), level + 1, 0));
		} else if (nr) {
			TRY(t.m_vt.dec(n.value(0), nr));
		}
	}
	return t.m_tm.dec(b);
}

/* ---- the public interface ---------------------------------------------------------- */

Btree::Btree(TransactionManager &tm, unsigned levels, ValueType &vt)
	: m_tm(tm), m_levels(levels), m_vt(vt), m_subtree_vt(tm)
{
}

static Result<void> check_config(const Btree &t)
{
	if (t.levels() < 1 || t.levels() > BTREE_MAX_LEVELS || t.value_type().size() == 0 ||
	    t.value_type().size() > BTREE_MAX_VALUE_SIZE)
		return err(EINVAL);
	return {};
}

Result<block_t> Btree::create_empty()
{
	TRY(check_config(*this));
	WriteRef w = TRY(new_node(*this, NODE_LEAF, BtreeOps::leaf_value_size(*this, 0)));
	return w.location();
}

Result<void> Btree::del(block_t root)
{
	TRY(check_config(*this));
	return BtreeOps::del_node(*this, root, 0, 0);
}

Result<void> Btree::lookup(block_t root, const u64 *keys, void *value_out)
{
	TRY(check_config(*this));
	block_t sub = TRY(BtreeOps::lookup_prefix(*this, root, keys));
	return BtreeOps::lookup_in_level(*this, sub, m_levels - 1, keys[m_levels - 1], value_out);
}

Result<void> Btree::lookup_next(block_t root, const u64 *keys, u64 *key_out, void *value_out)
{
	TRY(check_config(*this));
	block_t sub = TRY(BtreeOps::lookup_prefix(*this, root, keys));
	u8 *buf = static_cast<u8 *>(dmxx_alloc(METADATA_BLOCK_SIZE, DMXX_ALLOC_NOIO));
	if (!buf)
		return err(ENOMEM);
	u32 idx;
	auto r = BtreeOps::find_leaf_ge(*this, sub, m_levels - 1, keys[m_levels - 1], buf, &idx);
	if (r.is_ok()) {
		ConstNode n(buf);
		*key_out = n.key(idx);
		if (value_out)
			mem_copy(value_out, n.value(idx), n.value_size());
	}
	dmxx_free(buf);
	return r;
}

static Result<block_t> insert_at(Btree &t, block_t root, unsigned level, const u64 *keys,
				 const void *value, bool *inserted)
{
	ShadowPath path;
	block_t new_root;
	TRY(BtreeOps::shadow_down(t, root, level, keys[level], true, path, &new_root));
	Node leaf(path.leaf().data());
	u64 key = keys[level];
	int i = leaf.lower_bound(key);
	bool exists = i >= 0 && leaf.key(u32(i)) == key;

	if (level + 1 < t.levels()) {
		u32 at = u32(i);
		if (!exists) {
			WriteRef sub = TRY(new_node(t, NODE_LEAF, BtreeOps::leaf_value_size(t, level + 1)));
			at = u32(i + 1);
			leaf.insert_gap(at);
			leaf.set_key(at, key);
			leaf.set_value64(at, sub.location());
		}
		/* Our leaf is shadowed (ours alone) before the subtree: sharing breaks top-down. */
		block_t new_sub = TRY(insert_at(t, leaf.value64(at), level + 1, keys, value, inserted));
		leaf.set_value64(at, new_sub);
		return new_root;
	}

	u32 vs = t.value_type().size();
	if (exists) {
		u8 *old = leaf.value(u32(i));
		if (!t.value_type().equal(old, value))
			TRY(t.value_type().dec(old, 1));
		mem_copy(old, value, vs);
	} else {
		u32 at = u32(i + 1);
		leaf.insert_gap(at);
		leaf.set_key(at, key);
		mem_copy(leaf.value(at), value, vs);
	}
	if (inserted)
		*inserted = !exists;
	return new_root;
}

Result<block_t> Btree::insert(block_t root, const u64 *keys, const void *value, bool *inserted)
{
	TRY(check_config(*this));
	return insert_at(*this, root, 0, keys, value, inserted);
}

Result<void> Btree::find_lowest_key(block_t root, u64 *keys_out)
{
	TRY(check_config(*this));
	return BtreeOps::find_extreme(*this, root, false, keys_out);
}

Result<void> Btree::find_highest_key(block_t root, u64 *keys_out)
{
	TRY(check_config(*this));
	return BtreeOps::find_extreme(*this, root, true, keys_out);
}

Result<void> Btree::walk(block_t root, BtreeWalkFn fn, void *ctx)
{
	TRY(check_config(*this));
	u8 *bufs = static_cast<u8 *>(dmxx_alloc(METADATA_BLOCK_SIZE * m_levels, DMXX_ALLOC_NOIO));
	if (!bufs)
		return err(ENOMEM);
	u64 keys[BTREE_MAX_LEVELS] = {};
	auto r = BtreeOps::walk_level(*this, root, 0, 0, KEY_MAX, keys, bufs, fn, ctx);
	dmxx_free(bufs);
	return r;
}

Result<void> Btree::walk_range(block_t root, const u64 *prefix, u64 begin, u64 end, BtreeWalkFn fn,
			       void *ctx)
{
	TRY(check_config(*this));
	if (end <= begin)
		return {};
	auto sub = BtreeOps::lookup_prefix(*this, root, prefix);
	if (sub.is_error())
		return sub.error_code() == -ENODATA ? Result<void>() : Result<void>(sub.error());
	u8 *bufs = static_cast<u8 *>(dmxx_alloc(METADATA_BLOCK_SIZE * m_levels, DMXX_ALLOC_NOIO));
	if (!bufs)
		return err(ENOMEM);
	u64 keys[BTREE_MAX_LEVELS] = {};
	for (unsigned l = 0; l + 1 < m_levels; l++)
		keys[l] = prefix[l];
	auto r = BtreeOps::walk_level(*this, sub.value(), m_levels - 1, begin, end - 1, keys, bufs,
				      fn, ctx);
	dmxx_free(bufs);
	return r;
}

} // namespace dmxx::pdata
