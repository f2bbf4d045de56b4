// SPDX-License-Identifier: GPL-2.0
#include "bio_prison.h"

#include <dmxx/errno.h>
#include <dmxx/placement.h>

namespace dmxx::thin {

Result<void> BioPrison::init(unsigned nr_shards)
{
	if (m_raw)
		return err(EBUSY);
	if (nr_shards == 0 || nr_shards > kMaxShards)
		return err(EINVAL);
	unsigned n = 1;
	while (n < nr_shards)
		n <<= 1;

	/* Over-allocate by a line and align by hand: no aligned operator new here. */
	m_raw = static_cast<u8 *>(dmxx_alloc(n * kShardStride + kCacheLine, DMXX_ALLOC_SLEEP));
	if (!m_raw)
		return err(ENOMEM);
	m_shards = reinterpret_cast<u8 *>((uptr(m_raw) + kCacheLine - 1) & ~uptr(kCacheLine - 1));
	for (unsigned i = 0; i < n; i++)
		new (in_place, m_shards + usize(i) * kShardStride) Shard();
	m_mask = n - 1;
	return {};
}

BioPrison::~BioPrison()
{
	if (!m_raw)
		return;
	usize left = cells_in_use();
	if (left)
		dmxx_log(DMXX_LOG_ERR, "bio prison destroyed with %lu cells still held",
			 (unsigned long)left);
	for (unsigned i = 0; i <= m_mask; i++)
		shard(i).~Shard();
	dmxx_free(m_raw);
}

/*
 * Mix space, device and region so that neighbouring regions of one device,
 * and the same region of neighbouring devices, land on different shards.
 * The block offset inside the region is left out on purpose: every key
 * that could conflict with this one must hash to the same shard.
 */
u32 BioPrison::hash_key(const CellKey &key)
{
	u64 h = key.region() ^ (u64(key.dev) << 40) ^ (u64(key.space) << 63);
	h *= 0x9e3779b97f4a7c15ull; /* 2^64 / golden ratio: spreads into the high bits */
	return u32(h >> 32);
}

void BioPrison::must_be_linked(const Cell &cell, const char *op)
{
	if (!cell.linked()) {
		dmxx_log(DMXX_LOG_ERR, "bio prison: %s of a cell that is not held", op);
		dmxx_fatal("bio prison: cell released twice or never detained");
	}
}

Result<bool> BioPrison::detain(const CellKey &key, bio *inmate, Cell &prealloc, Cell *&cell)
{
	if (!key.valid())
		return err(EINVAL);
	if (prealloc.linked())
		dmxx_fatal("bio prison: detain with cell memory that is still in use");
	/* The caller's memory, not yet visible to anyone: fill it outside the lock. */
	prealloc.m_key = key;
	prealloc.m_holder = inmate;
	prealloc.m_inmates = {};

	Shard &s = shard_for(key);
	IrqGuard g(s.lock);
	Cell *held = s.cells.find_or_link(&prealloc);
	if (!held) {
		cell = &prealloc;
		return false;
	}
	if (inmate)
		bio_list_add(held->m_inmates, inmate);
	cell = held;
	return true;
}

void BioPrison::release(Cell &cell, dmxx_bio_list &out)
{
	Shard &s = shard_for(cell.m_key);
	bio *holder;
	dmxx_bio_list inmates;
	{
		IrqGuard g(s.lock);
		must_be_linked(cell, "release");
		holder = cell.m_holder;
		inmates = cell.m_inmates;
		unlink_locked(s, cell);
	}
	/* From here the cell's memory is its owner's again: touch only the copies. */
	if (holder)
		bio_list_add(out, holder);
	bio_list_merge(out, inmates);
}

void BioPrison::release_no_holder(Cell &cell, dmxx_bio_list &out)
{
	Shard &s = shard_for(cell.m_key);
	dmxx_bio_list inmates;
	{
		IrqGuard g(s.lock);
		must_be_linked(cell, "release_no_holder");
		inmates = cell.m_inmates;
		unlink_locked(s, cell);
	}
	bio_list_merge(out, inmates);
}

void BioPrison::error(Cell &cell, u8 status)
{
	dmxx_bio_list bios = {};
	release(cell, bios);
	/* Completion may re-enter the prison (end_io releasing other cells): no lock held here. */
	while (bio *b = bio_list_pop(bios))
		bio_complete(b, status);
}

usize BioPrison::cells_in_use() const
{
	usize n = 0;
	for (unsigned i = 0; i <= m_mask; i++) {
		Shard &s = shard(i);
		IrqGuard g(s.lock);
		n += s.cells.size();
	}
	return n;
}

bool BioPrison::check() const
{
	for (unsigned i = 0; i <= m_mask; i++) {
		Shard &s = shard(i);
		IrqGuard g(s.lock);
		if (s.cells.check() < 0)
			return false;
		/* A key in the wrong shard would dodge the keys it conflicts with. */
		bool placed = true;
		s.cells.for_each([&](const Cell &c) {
			if ((hash_key(c.key()) & m_mask) != i)
				placed = false;
		});
		if (!placed)
			return false;
	}
	return true;
}

} // namespace dmxx::thin
