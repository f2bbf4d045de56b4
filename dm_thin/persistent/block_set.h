/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A set of block numbers: open addressing, linear probing, grows by doubling.
 *
 * Why not a bitmap: the sets we need (blocks shadowed in this transaction,
 * blocks seen by a checker walk) are small and sparse over devices of
 * millions of blocks. Growth may fail (-ENOMEM) and leaves the set intact.
 * Not thread-safe: callers serialise.
 */
#pragma once

#include <dmxx/new.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

#include "persistent/space_map.h" /* block_t */

namespace dmxx::pdata {

class BlockSet {
public:
	BlockSet() = default;
	~BlockSet();
	BlockSet(const BlockSet &) = delete;
	BlockSet &operator=(const BlockSet &) = delete;

	/* Add @b; returns true if it was not there yet. -ENOMEM. */
	Result<bool> insert(block_t b);
	bool contains(block_t b) const;
	/* Remove @b if present; returns whether it was. */
	bool erase(block_t b);
	/* Empty the set, keeping (or shrinking back to a small) table. */
	void clear();
	usize size() const { return m_size; }

	/* Visit every member in no particular order. */
	template <typename F> void for_each(F &&f) const
	{
		for (usize i = 0; i < m_capacity; i++)
			if (m_slots[i] != EMPTY)
				f(m_slots[i]);
	}

private:
	static constexpr block_t EMPTY = ~block_t(0); /* never a valid block number */
	Result<void> grow();
	usize slot_of(block_t b) const;

	block_t *m_slots = nullptr;
	usize m_capacity = 0; /* power of two, or 0 */
	usize m_size = 0;
};

} // namespace dmxx::pdata
