/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One snapshot (the state behind a `snapshot` or `snapshot-merge` target).
 *
 * Life of a copy (a "pending exception"):
 *   1. A write (to the origin, or to the snapshot) finds its chunk neither
 *      copied nor being copied. Holding only the chunk's spinlock it takes
 *      a throttle slot, a COW chunk from the store and a sequence number
 *      (alloc_lock), and publishes the pending exception; the write waits
 *      on it (origin_bios / snapshot_bios). The copy goes to the engine.
 *   2. The engine calls copy_finished() on its worker. The slot is given
 *      back; pending exceptions are committed in sequence order.
 *   3. The store calls pending_complete() once the record is durable: the
 *      complete exception is published (reads go to the COW from now on),
 *      reads still in flight on the origin are waited for, the pending
 *      exception is removed and freed, snapshot writes are submitted to
 *      the COW, origin writes go to the origin's retry worker.
 *
 * Validity: Valid -> Invalidating (COW full, I/O error: the store is told
 * to persist "invalid") -> Invalid (it has). Snapshot I/O fails at once;
 * origin writes that would have needed this snapshot's copy wait for the
 * Invalid state, so an origin chunk is never overwritten uncopied while a
 * crash could still bring the snapshot back as valid.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/bio.h>
#include <dmxx/lock.h>
#include <dmxx/status.h>
#include <dmxx/table_args.h>
#include <dmxx/target.h>
#include <dmxx/wait.h>

#include "bioset.h"
#include "copy_engine.h"
#include "exception_store.h"
#include "exception_table.h"
#include "origin_registry.h"
#include "throttle.h"
#include "tracked_chunks.h"

namespace dmxx::snap {

class Snapshot;

struct PendingException : PendingLink {
	chunk_t new_chunk;
	Snapshot *snap;
	u64 seq;                    /* allocation order: commits follow it */
	PendingException *order_next; /* copy_finished's reorder list */
	PendingException *start_next; /* an origin walk's copies to start (start_copies) */
	dmxx_bio_list origin_bios;  /* guarded by the chunk lock */
	dmxx_bio_list snapshot_bios;
	bio *full_bio;              /* a snapshot write that is itself the copy */
	pf::bio_end_io_fn full_end_io;
	void *full_private;
	int copy_error;
	CopyJob job;
	CommitRequest commit;
};

enum class SnapState : u8 { Valid, Invalidating, Invalid };

/* DM's per-bio data for snapshot targets: no allocation on the I/O path. */
struct SnapPerBio {
	TrackedChunks::Node node; /* reads (and merge writes) in flight on a chunk */
	CopyJob zero_job;         /* a discard zeroing a whole copied chunk */
	Snapshot *owner;          /* set with zero_job */
};

/* How a walk of the origin's snapshots may wait (origin_write.cpp). */
enum class WalkMode : u8 {
	Map,    /* a target's map: may sleep for the throttle, with no lock held */
	Retry,  /* an admitted bio walking again: never waits for the throttle */
	Inline, /* Retry from a completion path: never waits for the rwsem or the pool */
	Extent, /* the merge making other snapshots copy a range: no bio */
};

class Snapshot {
public:
	using PerBio = SnapPerBio;

	~Snapshot(); /* not virtual: the targets delete their own final type */
	Snapshot(const Snapshot &) = delete;
	Snapshot &operator=(const Snapshot &) = delete;

	/* ---- target entry points ---- */
	MapResult map_snapshot(bio *b);
	MapResult map_merge(bio *b);
	EndioResult end_io(bio *b, u8 *status);
	Result<void> preresume();
	void resume();
	void postsuspend() { m_suspended.store(true, Order::Release); }
	void merge_presuspend();
	void merge_resume();
	void status(StatusType type, unsigned flags, StatusWriter &out);
	int iterate_devices(dmxx_iterate_fn fn, void *data);

	/* ---- used by the origin walk ---- */
	bool active() const { return m_active.load(Order::Acquire); }
	SnapState state() const { return SnapState(m_state.load(Order::Acquire)); }
	bool is_merge() const { return m_merge; }
	sector_t end_sector() const { return m_end; }
	u32 chunk_shift() const { return m_store->chunk_shift(); }
	u32 chunk_size() const { return m_store->chunk_size(); }
	ExceptionTables &tables() { return m_tables; }
	const ExceptionTables &tables() const { return m_tables; }
	CowThrottle &throttle() { return m_throttle; }
	/*
	 * A copied chunk whose copy has not finished waiting for snapshot
	 * reads of the origin may be in this snapshot's table: an origin write
	 * that found its chunk copied without the chunk lock must then take
	 * the locked path, where the pending exception still holds it back.
	 * Load after the lock-free lookup that found the chunk.
	 */
	bool reads_draining() const { return m_draining.load(Order::Acquire) != 0; }

	/* Publish a pending exception for @chunk: a COW chunk and a sequence number. Chunk lock held. */
	Result<void> prepare_pending(PendingException *pe, chunk_t chunk);
	void start_copy(PendingException *pe);
	/*
	 * Start the copies an origin walk prepared, @list linked by start_next
	 * with each snapshot's in ascending chunk order: the same origin range
	 * wanted by several snapshots is read once and written to each COW.
	 */
	static void start_copies(PendingException *list);
	void invalidate(int error);
	/* Queue @b until the invalidation is durable; false if it already is (or never began). */
	bool wait_for_invalidation(bio *b);
	/* Keep this snapshot alive across a sleep with no lock held (throttle waits). */
	void get() { m_users.fetch_add(1, Order::Relaxed); }
	void put() { quiesce_dec(m_users); }

	Snapshot *next_in_origin = nullptr; /* guarded by the origin entry's lock */

	/* Test hooks. */
	u64 pending_count() const { return m_pending.load(Order::Relaxed); }
	u64 complete_chunks() const { return m_tables.complete_chunks(); }
	CopyEngine &engine() { return m_engine; }
	ExceptionStore *store() { return m_store; }

protected:
	Snapshot(dm_target *ti, bool merge);
	/* The constructor proper; on failure ti->error is set and the destructor cleans up. */
	Result<void> setup(TableArgs &args);

private:
	Result<void> parse_features(TableArgs &args);
	Result<void> register_with_origin(TableArgs &args);
	void unregister_from_origin();
	static Result<void> add_loaded(void *ctx, chunk_t old_chunk, chunk_t new_chunk);

	void remap_cow(bio *b, chunk_t chunk, chunk_t old_base, chunk_t new_base);
	CopyRegion copy_source(const PendingException *pe) const;
	CopyRegion copy_dest(const PendingException *pe) const;
	static void start_group(PendingException **group, unsigned n);
	MapResult snapshot_write(bio *b, chunk_t chunk);
	void start_full_bio(PendingException *pe, bio *b);
	MapResult discard(bio *b, SnapPerBio *pb, chunk_t chunk);
	static void zero_done(CopyJob *job, int error, void *ctx);
	void reposition_in_origin();
	void take_over_from_source();
	void quiesce_dec(Atomic<u64> &count);
	static void full_bio_end_io(bio *b);
	static void copy_done(CopyJob *job, int error, void *ctx);
	void copy_finished(PendingException *pe, int error);
	static void commit_done(CommitRequest *req, bool success);
	void pending_complete(PendingException *pe, bool success);
	void retry_origin_bios(dmxx_bio_list &bios);
	static void invalidation_durable(void *ctx);
	void free_pending(PendingException *pe);

	/* merge.cpp */
	static void merge_work_fn(dmxx_work *w);
	void merge_loop();
	bool merge_step();
	void start_merge();
	void stop_merge();
	void end_merge_range(bool failed);

	dm_target *m_ti;
	bool m_merge;
	dm_dev *m_origin_dev = nullptr;
	dm_dev *m_cow_dev = nullptr;
	block_device *m_origin = nullptr;
	block_device *m_cow = nullptr;
	sector_t m_end = 0; /* origin writes at or past this need no copy here */
	bool m_discard_zeroes_cow = false;
	bool m_discard_passdown_origin = false;
	ExceptionStore *m_store = nullptr;
	OriginEntry *m_entry = nullptr;
	bool m_registered = false;
	/*
	 * Exception handover (a table reload, or a snapshot becoming a merge):
	 * a second table on an active snapshot's COW device takes the first
	 * one's exceptions and store at its resume instead of reading the store.
	 */
	bool m_handover_dest = false;     /* guarded by the origin entry's lock */
	u32 m_handover_chunk = 0;
	Atomic<bool> m_suspended{true};   /* a table is suspended until its first resume */

	ExceptionTables m_tables;
	CowThrottle m_throttle;
	CopyEngine m_engine;
	bool m_engine_ready = false;
	TrackedChunks m_tracked;
	BioSet m_sync_bios; /* the merge's origin flushes */

	Atomic<u8> m_state{u8(SnapState::Valid)};
	Atomic<bool> m_active{false};
	Atomic<bool> m_overflowed{false};
	Atomic<bool> m_merge_failed{false};
	SpinLock m_state_lock;                    /* invalidation hand-over */
	dmxx_bio_list m_invalidation_waiters = {}; /* guarded by m_state_lock */

	u64 m_next_seq = 0;              /* guarded by the store's alloc_lock */
	u64 m_commit_seq = 0;            /* engine worker only */
	PendingException *m_reorder = nullptr; /* engine worker only, ascending seq */

	Atomic<u64> m_pending{0};        /* pending exceptions alive */
	Atomic<u32> m_draining{0};       /* copies published, maybe waiting for origin reads */
	Atomic<u64> m_users{0};          /* sleepers referencing us, discards zeroing */
	SpinLock m_quiesce_lock;         /* the last decrement and its wake-up, vs the destructor */
	WaitQueue m_quiesce;             /* m_pending and m_users reached 0 */

	/* Merge (snapshot-merge only). */
	struct MergeWork {
		dmxx_work work; /* first: the work function casts back */
		Snapshot *snap;
	} m_merge_work;
	dmxx_workqueue *m_merge_wq = nullptr;
	SpinLock m_merge_lock;           /* the range below and the queued bios */
	chunk_t m_merging_first = 0;
	u32 m_merging_count = 0;
	dmxx_bio_list m_merge_queued = {};
	Atomic<bool> m_merge_running{false};
	Atomic<bool> m_merge_stop{false};
	WaitQueue m_merge_idle;

	friend MapResult origin_write(OriginEntry *o, bio *b, WalkMode mode);
};

/*
 * An origin write (or a snapshot-merge write to an uncopied chunk): make
 * every active snapshot of @o hold a copy of the chunk(s) @b covers before
 * @b reaches the origin. Remapped: go ahead now. Submitted: @b waits on a
 * pending exception (or an invalidation) and will be resubmitted.
 */
MapResult origin_write(OriginEntry *o, bio *b, WalkMode mode);
/*
 * A bio released by a finished exception, walked again in the completion
 * path itself (no hop to the retry worker). WouldBlock: it needed a sleep
 * (the rwsem, the pending pool); hand it to the retry worker.
 */
enum class RetryResult : u8 { Remapped, Queued, WouldBlock };
RetryResult origin_write_inline(OriginEntry *o, bio *b);
/* The merge's variant: start copies of [sector, sector + sectors) everywhere; true if any is in flight. */
bool origin_write_extent(OriginEntry *o, sector_t sector, sector_t sectors);
/* Resubmit-or-wait for a bio released by a pending exception (retry worker). */
void origin_retry_work(dmxx_work *w);

/* The pending-exception pool. */
PendingException *alloc_pending();
PendingException *alloc_pending_nowait(); /* nullptr rather than sleep */
void free_pending_memory(PendingException *pe);

/* Negative-control switch for tests: the throttle mode snapshots are built with. */
void set_throttle_mode_for_test(ThrottleMode mode);
/* Whether a snapshot with the 2019 throttle was ever built (never outside tests). */
bool kernel2019_throttle_built();

} // namespace dmxx::snap
