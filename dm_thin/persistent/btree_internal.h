/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared between btree.cpp (lookups, insert, delete, walks) and
 * btree_remove.cpp (removal with rebalancing). Not for other users.
 */
#pragma once

#include "persistent/btree.h"

namespace dmxx::pdata {

/* The nodes from a (sub)tree's root down to a leaf, write-locked, and the index taken in each. */
struct ShadowPath {
	WriteRef node[BTREE_MAX_DEPTH];
	u32 index[BTREE_MAX_DEPTH];
	unsigned depth = 0; /* nodes held */

	WriteRef &leaf() { return node[depth - 1]; }
	/* A corrupt tree may point back up: locking an ancestor again would deadlock. */
	bool holds(block_t b) const
	{
		for (unsigned d = 0; d < depth; d++)
			if (node[d].valid() && node[d].location() == b)
				return true;
		return false;
	}
};

struct BtreeOps {
	/* Value size of leaves at @level: subtree roots above the last level. */
	static u32 leaf_value_size(const Btree &t, unsigned level)
	{
		return level + 1 < t.m_levels ? 8 : t.m_vt.size();
	}
	static ValueType &leaf_value_type(Btree &t, unsigned level)
	{
		return level + 1 < t.m_levels ? static_cast<ValueType &>(t.m_subtree_vt) : t.m_vt;
	}

	/* The layout checks the validator cannot make (it does not know the tree). */
	static Result<void> check_shape(const Btree &t, const ConstNode &n, unsigned level, block_t where);

	static Result<ReadRef> read_node(Btree &t, block_t b, unsigned level);

	/* A shared node was copied: whatever it points to gained a parent. */
	static Result<void> inc_children(Btree &t, const ConstNode &n, unsigned level);

	/* Shadow @b (inc'ing children if it was shared) and check its shape. */
	static Result<WriteRef> shadow_node(Btree &t, block_t b, unsigned level);

	/* Shadow child @i of @parent, pointing @parent at the shadow. */
	static Result<WriteRef> shadow_child(Btree &t, const Node &parent, u32 i, unsigned level);

	/*
	 * Shadow from @root down to the leaf where @key belongs, filling @path.
	 * @for_insert: split full nodes on the way (so the leaf has room) and
	 * lower key[0] of internal nodes when @key is below it. *@new_root gets
	 * the shadowed root.
	 */
	static Result<void> shadow_down(Btree &t, block_t root, unsigned level, u64 key, bool for_insert,
					ShadowPath &path, block_t *new_root);

	/* Read-only: the value (subtree root or last-level value) at @key in the tree of @level. */
	static Result<void> lookup_in_level(Btree &t, block_t root, unsigned level, u64 key,
					    void *value_out);

	/* Read-only: subtree root reached by following keys[0..levels-2] from @root. */
	static Result<block_t> lookup_prefix(Btree &t, block_t root, const u64 *keys);

	/*
	 * Read-only: copy into @leaf_copy the leaf holding the first entry with key
	 * >= @key in the tree of @level; *@index is that entry. -ENODATA if none.
	 */
	static Result<void> find_leaf_ge(Btree &t, block_t root, unsigned level, u64 key,
					 u8 *leaf_copy, u32 *index);

	/* Remove [lo, hi) from the last-level tree at @root (see btree_remove.cpp). */
	static Result<block_t> remove_range_in_level(Btree &t, block_t root, unsigned level, u64 lo,
						     u64 hi, u64 *nr_removed);

	static Result<void> del_node(Btree &t, block_t b, unsigned level, unsigned depth);
	static Result<void> walk_level(Btree &t, block_t root, unsigned level, u64 begin, u64 end,
				       u64 *keys, u8 *bufs, BtreeWalkFn fn, void *ctx);
	static Result<void> find_extreme(Btree &t, block_t root, bool highest, u64 *keys_out);
};

} // namespace dmxx::pdata
