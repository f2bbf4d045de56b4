// SPDX-License-Identifier: GPL-2.0
#include "cell_tree.h"

namespace dmxx::thin {

void CellTree::update_height(Cell *c)
{
	unsigned l = height(c->m_left), r = height(c->m_right);
	c->m_height = u8((l > r ? l : r) + 1);
}

/* Point whatever pointed at @old (its parent, or the root) at @fresh. */
void CellTree::set_child(Cell *parent, Cell *old, Cell *fresh)
{
	if (!parent)
		m_root = fresh;
	else if (parent->m_left == old)
		parent->m_left = fresh;
	else
		parent->m_right = fresh;
}

/* x's right child y becomes the subtree root; returns y. */
Cell *CellTree::rotate_left(Cell *x)
{
	Cell *y = x->m_right;
	x->m_right = y->m_left;
	if (y->m_left)
		y->m_left->m_parent = x;
	y->m_parent = x->m_parent;
	set_child(x->m_parent, x, y);
	y->m_left = x;
	x->m_parent = y;
	update_height(x);
	update_height(y);
	return y;
}

Cell *CellTree::rotate_right(Cell *x)
{
	Cell *y = x->m_left;
	x->m_left = y->m_right;
	if (y->m_right)
		y->m_right->m_parent = x;
	y->m_parent = x->m_parent;
	set_child(x->m_parent, x, y);
	y->m_right = x;
	x->m_parent = y;
	update_height(x);
	update_height(y);
	return y;
}

/*
 * Restore heights and balance from @c up to the root. Walking all the way
 * up instead of stopping early keeps one routine correct for both insert
 * and erase; trees hold the cells of one shard, so the path is short.
 */
void CellTree::rebalance_from(Cell *c)
{
	while (c) {
		Cell *parent = c->m_parent;
		unsigned l = height(c->m_left), r = height(c->m_right);
		if (l > r + 1) {
			Cell *left = c->m_left;
			if (height(left->m_left) < height(left->m_right))
				rotate_left(left);
			rotate_right(c);
		} else if (r > l + 1) {
			Cell *right = c->m_right;
			if (height(right->m_right) < height(right->m_left))
				rotate_right(right);
			rotate_left(c);
		} else {
			update_height(c);
		}
		c = parent;
	}
}

Cell *CellTree::find_or_link(Cell *fresh)
{
	Cell *parent = nullptr;
	Cell **link = &m_root;
	while (*link) {
		int cmp = cell_key_compare(fresh->m_key, (*link)->m_key);
		if (cmp == 0)
			return *link;
		parent = *link;
		link = cmp < 0 ? &parent->m_left : &parent->m_right;
	}
	fresh->m_left = nullptr;
	fresh->m_right = nullptr;
	fresh->m_parent = parent;
	fresh->m_height = 1;
	*link = fresh;
	m_size++;
	rebalance_from(parent);
	return nullptr;
}

void CellTree::erase(Cell *cell)
{
	Cell *rebalance_start;
	if (cell->m_left && cell->m_right) {
		/*
		 * Two children: the in-order successor (leftmost of the right
		 * subtree, which has no left child) moves into the cell's place.
		 * Nodes are caller memory, so we relink rather than copy keys.
		 */
		Cell *succ = cell->m_right;
		while (succ->m_left)
			succ = succ->m_left;
		if (succ->m_parent == cell) {
			rebalance_start = succ;
		} else {
			Cell *sp = succ->m_parent;
			sp->m_left = succ->m_right;
			if (succ->m_right)
				succ->m_right->m_parent = sp;
			succ->m_right = cell->m_right;
			cell->m_right->m_parent = succ;
			rebalance_start = sp;
		}
		succ->m_left = cell->m_left;
		cell->m_left->m_parent = succ;
		succ->m_parent = cell->m_parent;
		succ->m_height = cell->m_height;
		set_child(cell->m_parent, cell, succ);
	} else {
		Cell *child = cell->m_left ? cell->m_left : cell->m_right;
		if (child)
			child->m_parent = cell->m_parent;
		set_child(cell->m_parent, cell, child);
		rebalance_start = cell->m_parent;
	}
	m_size--;
	rebalance_from(rebalance_start);
	cell->m_left = cell->m_right = cell->m_parent = nullptr;
	cell->m_height = 0;
}

void CellTree::replace(Cell *old, Cell *fresh)
{
	fresh->m_left = old->m_left;
	fresh->m_right = old->m_right;
	fresh->m_parent = old->m_parent;
	fresh->m_height = old->m_height;
	if (fresh->m_left)
		fresh->m_left->m_parent = fresh;
	if (fresh->m_right)
		fresh->m_right->m_parent = fresh;
	set_child(old->m_parent, old, fresh);
	old->m_left = old->m_right = old->m_parent = nullptr;
	old->m_height = 0;
}

/* Recursion is fine here: test-only, and the depth is the AVL height (< 100). */
unsigned CellTree::check_subtree(const Cell *c, const Cell *parent, CheckState &st)
{
	if (!c)
		return 0;
	if (c->m_parent != parent)
		st.ok = false;
	unsigned lh = check_subtree(c->m_left, c, st);
	if (st.prev && cell_key_compare(st.prev->m_key, c->m_key) >= 0)
		st.ok = false; /* out of order, or overlapping */
	if (!c->m_key.valid())
		st.ok = false;
	st.prev = c;
	st.count++;
	unsigned rh = check_subtree(c->m_right, c, st);
	unsigned expect = (lh > rh ? lh : rh) + 1;
	if (c->m_height != expect || lh > rh + 1 || rh > lh + 1)
		st.ok = false;
	return expect;
}

long CellTree::check() const
{
	CheckState st;
	check_subtree(m_root, nullptr, st);
	if (long(m_size) != st.count)
		st.ok = false;
	return st.ok ? st.count : -1;
}

} // namespace dmxx::thin
