// SPDX-License-Identifier: GPL-2.0
/*
 * BlockSet: linear probing with backward-shift deletion (no tombstones, so a
 * set that sees many inserts and erases never degrades). Load kept <= 1/2.
 */
#include "persistent/block_set.h"

#include <dmxx/platform.h>

namespace dmxx::pdata {

static constexpr usize INITIAL_SLOTS = 64;

BlockSet::~BlockSet() { dmxx_free(m_slots); }

usize BlockSet::slot_of(block_t b) const
{
	u64 h = b * 0x9e3779b97f4a7c15ull;
	return usize(h >> 17) & (m_capacity - 1);
}

Result<void> BlockSet::grow()
{
	usize cap = m_capacity ? m_capacity * 2 : INITIAL_SLOTS;
	auto *slots = static_cast<block_t *>(dmxx_alloc(sizeof(block_t) * cap, DMXX_ALLOC_NOIO));
	if (!slots)
		return err(ENOMEM);
	for (usize i = 0; i < cap; i++)
		slots[i] = EMPTY;
	block_t *old = m_slots;
	usize old_cap = m_capacity;
	m_slots = slots;
	m_capacity = cap;
	for (usize i = 0; i < old_cap; i++) {
		if (old[i] == EMPTY)
			continue;
		usize s = slot_of(old[i]);
		while (m_slots[s] != EMPTY)
			s = (s + 1) & (m_capacity - 1);
		m_slots[s] = old[i];
	}
	dmxx_free(old);
	return {};
}

Result<bool> BlockSet::insert(block_t b)
{
	if (b == EMPTY)
		return err(EINVAL);
	if (contains(b))
		return false;
	if ((m_size + 1) * 2 > m_capacity)
		TRY(grow());
	usize s = slot_of(b);
	while (m_slots[s] != EMPTY)
		s = (s + 1) & (m_capacity - 1);
	m_slots[s] = b;
	m_size++;
	return true;
}

bool BlockSet::contains(block_t b) const
{
	if (!m_capacity || b == EMPTY)
		return false;
	for (usize s = slot_of(b);; s = (s + 1) & (m_capacity - 1)) {
		if (m_slots[s] == b)
			return true;
		if (m_slots[s] == EMPTY)
			return false;
	}
}

bool BlockSet::erase(block_t b)
{
	if (!m_capacity || b == EMPTY)
		return false;
	usize mask = m_capacity - 1;
	usize s = slot_of(b);
	for (;; s = (s + 1) & mask) {
		if (m_slots[s] == EMPTY)
			return false;
		if (m_slots[s] == b)
			break;
	}
	/* Pull later members of the probe run back over the hole. */
	usize hole = s;
	for (usize i = (hole + 1) & mask; m_slots[i] != EMPTY; i = (i + 1) & mask) {
		usize home = slot_of(m_slots[i]);
		/* Movable if its home is not within (hole, i] cyclically. */
		bool home_in_range = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
		if (!home_in_range) {
			m_slots[hole] = m_slots[i];
			hole = i;
		}
	}
	m_slots[hole] = EMPTY;
	m_size--;
	return true;
}

void BlockSet::clear()
{
	if (m_capacity > 4 * INITIAL_SLOTS) {
		/* A commit after a huge transaction: give the memory back. */
		dmxx_free(m_slots);
		m_slots = nullptr;
		m_capacity = 0;
	}
	for (usize i = 0; i < m_capacity; i++)
		m_slots[i] = EMPTY;
	m_size = 0;
}

} // namespace dmxx::pdata
