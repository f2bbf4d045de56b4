/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A snapshot's in-memory exception tables: which origin chunks have been
 * copied (complete exceptions) and which are being copied (pending).
 *
 * Both are hash tables with striped spinlocks, so writers of different
 * chunks rarely share a lock and no lock covers a whole table. Everything
 * about one chunk is decided under ChunkLock(chunk), which takes the chunk's
 * complete-table stripe, then its pending-table stripe (always in that
 * order, and never two chunks at once).
 *
 * Complete exceptions are stored in runs: (old, new, extra) maps old+i to
 * new+i for i <= extra. Sequential copies land in sequential COW chunks, so
 * a run replaces up to 8 entries. A run never crosses a group of 8 chunks
 * (the complete table hashes chunk >> 3), which keeps every chunk of a run
 * in the run's bucket. Why 8 and not the kernel's 256: random writes make
 * no runs, and then every copied chunk of a group sits in one bucket chain;
 * with 256 a lookup walked up to 256 entries (a tenth of the CPU time of a
 * first-pass random write with 4 snapshots, measured with scripts/profile).
 * The pending table hashes every chunk apart.
 *
 * Reads without a lock: lookup_complete_lockless() may run beside writers
 * of the same bucket. Writers publish a new run with a release store of the
 * link to it, and grow a run by storing its new old_chunk before its new
 * extra (release); the reader loads extra (acquire) before old_chunk. So
 * the bounds a reader sees are the old ones, the new ones, or the new start
 * with the old length: never a chunk that is not complete. Both stores are
 * releases and both loads acquires, so whatever its writer did before
 * publishing a chunk is visible to a reader that finds it (see
 * Snapshot::reads_draining()). Removal
 * (merging) and destruction do not keep readers safe: their callers keep
 * lock-free readers away (see the function).
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

#include "format.h"

namespace dmxx::snap {

/*
 * A run: old_chunk + i is in COW chunk old_chunk + i + cow_offset, for
 * i <= extra. The offset (modulo 2^64) stays fixed while the run grows or
 * shrinks at either end, so a lock-free reader that sees a run's bounds
 * mid-change still maps every chunk it finds inside them correctly.
 */
struct CompleteException {
	CompleteException() = default;
	CompleteException(chunk_t old_c, chunk_t new_c) : old_chunk(old_c), cow_offset(new_c - old_c) {}

	CompleteException *next = nullptr; /* bucket chain, ascending old_chunk */
	chunk_t old_chunk = 0;
	chunk_t cow_offset = 0;
	u32 extra = 0; /* chunks after old_chunk in this run */
};

/* The table's part of a pending exception (the snapshot embeds it). */
struct PendingLink {
	PendingLink *hash_next;
	chunk_t old_chunk;
};

class ExceptionTables {
public:
	static constexpr unsigned group_shift = 3; /* chunks per complete-table group: 8 */
	static constexpr unsigned max_stripes = 256;

	ExceptionTables() = default;
	~ExceptionTables(); /* frees every complete exception */
	ExceptionTables(const ExceptionTables &) = delete;
	ExceptionTables &operator=(const ExceptionTables &) = delete;

	/* Sized for a COW device of @cow_chunks chunks, as the kernel sizes them. */
	Result<void> init(u64 cow_chunks);
	/* Exchange contents (snapshot handover); nobody may hold or take a lock of either meanwhile. */
	void swap(ExceptionTables &other);

	/* Holds everything about one chunk. */
	class [[nodiscard]] ChunkLock {
	public:
		ChunkLock(ExceptionTables &t, chunk_t c)
			: m_complete(t.complete_lock(c)), m_pending(t.pending_lock(c))
		{
			lock();
		}
		~ChunkLock()
		{
			if (m_held)
				unlock();
		}
		ChunkLock(const ChunkLock &) = delete;
		ChunkLock &operator=(const ChunkLock &) = delete;
		void lock()
		{
			m_complete->lock();
			m_pending->lock();
			m_held = true;
		}
		void unlock()
		{
			m_pending->unlock();
			m_complete->unlock();
			m_held = false;
		}

	private:
		SpinLock *m_complete;
		SpinLock *m_pending;
		bool m_held = false;
	};

	/* ---- under ChunkLock(chunk) ---- */

	/* The COW chunk holding @chunk, or false if it was never copied. */
	bool lookup_complete(chunk_t chunk, chunk_t *new_chunk) const;

	/* ---- without a lock ---- */

	/*
	 * lookup_complete() for the hot paths, without ChunkLock: true is
	 * final (complete exceptions stay), false may be stale, so ask again
	 * under ChunkLock before acting on it. Only while no remove_complete(),
	 * swap() or destruction can run on these tables: the origin walk skips
	 * merging snapshots and holds the origin's lock (swap takes it for
	 * write); a snapshot's map is not called while it is suspended.
	 */
	bool lookup_complete_lockless(chunk_t chunk, chunk_t *new_chunk) const;
	/* Adds @e; frees it if it only extended a neighbouring run. -EEXIST if @chunk is there. */
	Result<void> insert_complete(CompleteException *e);
	/*
	 * Forget one chunk (merge): shrinks its run from either end, or splits
	 * it using *@spare (which is then consumed: set to nullptr). -ENOENT if
	 * absent, -ENOMEM if a split is needed and there is no spare.
	 */
	Result<void> remove_complete(chunk_t chunk, CompleteException **spare);

	PendingLink *lookup_pending(chunk_t chunk) const;
	void insert_pending(PendingLink *p);
	void remove_pending(PendingLink *p);

	/* Chunks in the complete table (status and tests). */
	u64 complete_chunks() const { return m_complete_chunks.load(Order::Relaxed); }

private:
	SpinLock *complete_lock(chunk_t c) { return &m_locks[complete_bucket(c) & (m_stripes - 1)]; }
	SpinLock *pending_lock(chunk_t c)
	{
		return &m_locks[m_stripes + (pending_bucket(c) & (m_stripes - 1))];
	}
	u64 complete_bucket(chunk_t c) const { return (c >> group_shift) & m_complete_mask; }
	u64 pending_bucket(chunk_t c) const { return c & m_pending_mask; }

	CompleteException **m_complete = nullptr;
	PendingLink **m_pending = nullptr;
	u64 m_complete_mask = 0;
	u64 m_pending_mask = 0;
	SpinLock *m_locks = nullptr; /* [0, stripes): complete; [stripes, 2*stripes): pending */
	unsigned m_stripes = 0;
	Atomic<u64> m_complete_chunks{0};
};

using ChunkLock = ExceptionTables::ChunkLock;

} // namespace dmxx::snap
