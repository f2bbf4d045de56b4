/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An intrusive AVL tree of cells with pairwise disjoint keys.
 *
 * Because linked keys never overlap, ordering them by range and treating
 * overlap as equality (cell_key_compare) is a total order on the tree, and
 * a plain descent finds a cell overlapping any probe key if one exists:
 * every cell that could overlap the probe lies on the side the descent
 * takes. Nodes are the cells themselves, so linking never allocates.
 *
 * Not thread-safe: each prison shard guards its tree with its lock.
 */
#pragma once

#include "cell.h"

namespace dmxx::thin {

class CellTree {
public:
	CellTree() = default;
	CellTree(const CellTree &) = delete;
	CellTree &operator=(const CellTree &) = delete;

	bool empty() const { return m_root == nullptr; }
	usize size() const { return m_size; }

	/*
	 * The linked cell that conflicts with @fresh's key if there is one
	 * (@fresh untouched); otherwise links @fresh and returns nullptr.
	 * One descent does both, so nothing can slip in between.
	 */
	Cell *find_or_link(Cell *fresh);

	/* Unlink @cell (which must be linked here). */
	void erase(Cell *cell);

	/*
	 * @fresh (unlinked, same key) takes @old's place in the tree, and @old
	 * ends unlinked: moving a cell to new memory without a rebalance.
	 */
	void replace(Cell *old, Cell *fresh);

	/* Call @fn(const Cell &) for each linked cell, in key order. */
	template <typename Fn> void for_each(Fn &&fn) const
	{
		const Cell *c = m_root;
		while (c && c->m_left)
			c = c->m_left;
		while (c) {
			fn(*c);
			if (c->m_right) {
				c = c->m_right;
				while (c->m_left)
					c = c->m_left;
			} else {
				/* Climb until we come up from a left child. */
				const Cell *child = c;
				c = c->m_parent;
				while (c && c->m_right == child) {
					child = c;
					c = c->m_parent;
				}
			}
		}
	}

	/*
	 * For tests: checks parent links, heights, balance, order and
	 * disjointness. Returns the number of cells, or -1 if broken.
	 */
	long check() const;

private:
	static unsigned height(const Cell *c) { return c ? c->m_height : 0; }
	static void update_height(Cell *c);
	void set_child(Cell *parent, Cell *old, Cell *fresh);
	Cell *rotate_left(Cell *x);
	Cell *rotate_right(Cell *x);
	void rebalance_from(Cell *c);

	struct CheckState {
		const Cell *prev = nullptr;
		long count = 0;
		bool ok = true;
	};
	static unsigned check_subtree(const Cell *c, const Cell *parent, CheckState &st);

	Cell *m_root = nullptr;
	usize m_size = 0;
};

} // namespace dmxx::thin
