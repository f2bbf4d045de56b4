/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bio prison: bios that must not run yet wait in cells, one cell per
 * locked key (cell_key.h). The first bio to detain a key holds its cell;
 * bios that detain an overlapping key while it is held wait inside it until
 * the holder releases the cell and re-drives them.
 *
 * What differs from Linux 6.1's dm-bio-prison-v1, and why:
 *
 *  - No cell allocation. Every detain brings the memory for a new cell
 *    (cell.h): per-bio data for a bio's own cells, a preallocated
 *    structure for holder-less ones. There is no cell pool, so the map path
 *    cannot take a second cell from a pool while holding the first (the
 *    2013 deadlock of seed 003); the memory is there before it is needed.
 *
 *  - Sharded. 6.1 guards every cell of a pool with one spinlock, taken
 *    twice per bio on the map path. Here the cells are spread over
 *    independent shards, each a lock and an AVL tree, chosen by hashing the
 *    key's (space, device, region). Conflicting keys always share a region
 *    (keys may not cross one), hence a shard, so each operation takes
 *    exactly one shard lock. BioPrison::init(1) is the single-lock design,
 *    the same code with one shard, kept for comparison (bench_prison).
 *
 *  - Shard locks are taken with interrupts off: bio completion releases
 *    cells (a discard's cell is held until its passdown finishes). Nothing
 *    sleeps under them: callbacks run under the lock (visit_release's
 *    visitor, promote_or_release's storage_of) must not sleep either.
 */
#pragma once

#include <dmxx/bio_list.h>
#include <dmxx/lock.h>
#include <dmxx/result.h>

#include "cell.h"
#include "cell_tree.h"

namespace dmxx::thin {

class BioPrison {
public:
	/* A power of two; enough that two busy CPUs rarely meet on one lock. */
	static constexpr unsigned kDefaultShards = 64;
	static constexpr unsigned kMaxShards = 1u << 16;

	BioPrison() = default;
	~BioPrison();
	BioPrison(const BioPrison &) = delete;
	BioPrison &operator=(const BioPrison &) = delete;

	/*
	 * @nr_shards is rounded up to a power of two (1..kMaxShards); 1 gives
	 * one lock for the whole prison, as Linux 6.1 has. -EINVAL for 0 or
	 * too many, -EBUSY if already initialised, -ENOMEM.
	 */
	Result<void> init(unsigned nr_shards = kDefaultShards);
	unsigned shards() const { return m_mask + 1; }

	/*
	 * Lock @key for @inmate. If no linked cell conflicts with @key,
	 * @prealloc becomes the cell (held by @inmate, which may be nullptr for
	 * a holder-less lock), *@cell = @prealloc, and the result is false.
	 * Otherwise @inmate (if any) waits in the conflicting cell, *@cell is
	 * that cell, @prealloc stays the caller's, and the result is true:
	 * "already held". -EINVAL if @key is empty or crosses a region.
	 */
	Result<bool> detain(const CellKey &key, bio *inmate, Cell &prealloc, Cell *&cell);

	/* detain() with no bio: take or find the lock on @key. */
	Result<bool> get_cell(const CellKey &key, Cell &prealloc, Cell *&cell)
	{
		return detain(key, nullptr, prealloc, cell);
	}

	/* Unlink @cell; append its holder (if any), then its inmates, to @out. */
	void release(Cell &cell, dmxx_bio_list &out);
	/* Unlink @cell; append only its inmates to @out (the holder stays the caller's). */
	void release_no_holder(Cell &cell, dmxx_bio_list &out);
	/* Unlink @cell and complete its holder and inmates with @status (DMXX_BLK_STS_*). */
	void error(Cell &cell, u8 status);

	/*
	 * Call @visit(holder, inmates) with the cell's lock held, then unlink
	 * it: no bio can join between the visit and the release. The visitor
	 * may take inmates off the list (dm-thin counts each in a deferred set
	 * there); those it leaves are appended to @rest. It must not sleep.
	 */
	template <typename Visit>
	void visit_release(Cell &cell, Visit &&visit, dmxx_bio_list &rest);

	/*
	 * Hand the cell to its first inmate, or release it if it has none,
	 * deciding under the lock so no bio can slip in between. Promoted: the
	 * new holder may complete independently of the old one, so the cell
	 * moves to the memory @storage_of(new_holder) names (which may be
	 * @cell itself for memory neither bio owns); returns the cell's new
	 * address. Released: returns nullptr. @storage_of runs under the lock
	 * and must not sleep; the memory it returns must not be linked.
	 */
	template <typename StorageOf> Cell *promote_or_release(Cell &cell, StorageOf &&storage_of);

	/* ---- observation, for tests and status (each takes every shard lock) ---- */

	/* Cells linked right now. */
	usize cells_in_use() const;
	/* Every shard's tree is sound and holds only keys that hash to it. */
	bool check() const;

private:
	struct Shard {
		mutable SpinLock lock;
		CellTree cells;
	};
	/* Shards sit a cache line apart so two CPUs on different shards share no line. */
	static constexpr usize kCacheLine = 64;
	static constexpr usize kShardStride = (sizeof(Shard) + kCacheLine - 1) & ~(kCacheLine - 1);

	static u32 hash_key(const CellKey &key);
	Shard &shard(unsigned i) const
	{
		return *reinterpret_cast<Shard *>(m_shards + usize(i) * kShardStride);
	}
	Shard &shard_for(const CellKey &key) const { return shard(hash_key(key) & m_mask); }
	static void must_be_linked(const Cell &cell, const char *op);
	static void unlink_locked(Shard &s, Cell &cell) { s.cells.erase(&cell); }

	u8 *m_raw = nullptr;    /* the allocation */
	u8 *m_shards = nullptr; /* cache-line aligned inside it */
	unsigned m_mask = 0;
};

template <typename Visit>
void BioPrison::visit_release(Cell &cell, Visit &&visit, dmxx_bio_list &rest)
{
	Shard &s = shard_for(cell.m_key);
	dmxx_bio_list left;
	{
		IrqGuard g(s.lock);
		must_be_linked(cell, "visit_release");
		visit(cell.m_holder, cell.m_inmates);
		left = cell.m_inmates;
		unlink_locked(s, cell);
	}
	bio_list_merge(rest, left);
}

template <typename StorageOf>
Cell *BioPrison::promote_or_release(Cell &cell, StorageOf &&storage_of)
{
	Shard &s = shard_for(cell.m_key);
	IrqGuard g(s.lock);
	must_be_linked(cell, "promote_or_release");
	bio *next = bio_list_pop(cell.m_inmates);
	if (!next) {
		unlink_locked(s, cell);
		return nullptr;
	}
	Cell &dest = storage_of(next);
	if (&dest != &cell) {
		if (dest.linked())
			dmxx_fatal("bio prison: promote_or_release into a cell that is in use");
		dest.m_key = cell.m_key;
		dest.m_inmates = cell.m_inmates;
		s.cells.replace(&cell, &dest);
	}
	dest.m_holder = next;
	return &dest;
}

} // namespace dmxx::thin
