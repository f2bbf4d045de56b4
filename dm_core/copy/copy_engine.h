/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The copy engine: dmxx's kcopyd. Copies a range of sectors from one block
 * device to another, or writes zeroes to a range, in the background, and
 * calls the owner back when the whole range is done.
 *
 * Design, and why:
 *  - The caller owns the job's memory (a CopyJob embedded in its own
 *    object: snapshot pending exceptions, thin mappings). copy() and zero()
 *    therefore never allocate, never fail and never sleep: they may be
 *    called from a target's map function or with a spinlock held.
 *  - Work is bounded: the engine has a fixed number of slots, each with a
 *    preallocated buffer of slot_sectors. A job is cut into pieces of at
 *    most one slot; jobs wait in FIFO order for free slots. Memory use and
 *    I/O in flight never grow with the number of jobs, and because every
 *    slot's buffer exists from init, progress never depends on an
 *    allocation succeeding.
 *  - All bios come from the engine's own BioSet, one at a time: a piece's
 *    read bio is allocated and submitted, and its write bio is allocated
 *    only after the read completed and was freed. So the engine never waits
 *    for a second bio of its set while holding one (bioset.h's rule).
 *  - Everything but the bio completions runs in the engine's one work item
 *    (never two runs at once; on the submitter's CPU with one job, wherever
 *    there is room with several, see kick()): dispatching pieces, turning finished reads into writes, and
 *    the callbacks. Completions (possibly interrupt context) only record the
 *    result on an IRQ-safe list and kick the worker. No lock is held while
 *    allocating, submitting or calling back.
 *  - Callbacks run one at a time, in process context, in the order their
 *    jobs finished; they may call copy()/zero() again. A callback that would
 *    block for long should hand its work to its own worker: it holds up
 *    every other job of this engine meanwhile.
 *
 * A failed piece stops the job from dispatching further pieces; the
 * callback gets -EIO once the pieces in flight have finished, and
 * CopyJob::read_failed()/write_failed() say which side failed.
 *
 * Fan-out (kcopyd's several destinations): one copy may write its source
 * to up to max_fanout destinations, each read piece written to all of
 * them. A snapshot origin with N snapshots then reads a chunk once, not N
 * times. The further destinations are other owners' jobs, possibly of
 * other engines (attach()): each is called back on its own engine's
 * worker, which drain() there waits for, so an owner never sees a
 * callback from a thread it does not know. A destination whose write
 * failed gets -EIO alone; a read error, or a failure that stopped the copy
 * before its last piece, fails them all.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/platform.h>
#include <dmxx/result.h>
#include <dmxx/types.h>
#include <dmxx/wait.h>

#include "bioset.h"

namespace dmxx {

struct CopyRegion {
	block_device *bdev;
	sector_t sector;
	sector_t count;
};

struct CopyJob;
class CopyEngine;

/* @error: 0 or -EIO. Runs on the engine's worker (process context). */
using CopyDoneFn = void (*)(CopyJob *job, int error, void *ctx);

/* Storage for one job, owned by the caller; its fields are the engine's. */
struct CopyJob {
	bool read_failed() const { return m_read_failed; }
	bool write_failed() const { return m_write_failed; }

private:
	friend class CopyEngine;
	CopyJob *m_next;
	CopyRegion m_src;
	CopyRegion m_dst;
	sector_t m_dispatched; /* sectors handed to slots so far */
	unsigned m_outstanding; /* slots working on this job */
	bool m_zero;
	bool m_queued; /* still waiting for slots */
	bool m_read_failed;
	bool m_write_failed;
	bool m_stopped; /* a further destination's write failed: dispatch no more */
	int m_external_error; /* complete_external() jobs */
	CopyJob *m_also;      /* further destinations of this copy, chained */
	CopyEngine *m_home;   /* a further destination: whose worker calls it back */
	CopyDoneFn m_done;
	void *m_ctx;
};

class CopyEngine {
public:
	struct Options {
		unsigned slots = 16;         /* pieces in flight at most */
		unsigned slot_sectors = 128; /* piece size (64 KiB) */
	};

	CopyEngine() = default;
	/* Waits for every job to be called back first. */
	~CopyEngine();
	CopyEngine(const CopyEngine &) = delete;
	CopyEngine &operator=(const CopyEngine &) = delete;

	/* Allocates the slots' buffers, the bio set and the worker (may sleep). */
	Result<void> init(const char *name, const Options &opts);

	/* Destinations of one copy at most, its own included. */
	static constexpr unsigned max_fanout = 8;

	/*
	 * Copy @src to @dst (@dst.count is ignored: the same length as @src).
	 * @also: further destinations from attach(), at most max_fanout - 1.
	 * Any context.
	 */
	void copy(CopyJob *job, const CopyRegion &src, const CopyRegion &dst, CopyDoneFn done,
		  void *ctx, CopyJob *also = nullptr);
	/*
	 * Make @job a further destination @dst of a copy about to be started,
	 * on this engine or another one: @done(@job) is called back on THIS
	 * engine's worker, and this engine's drain() waits for it. Returns
	 * @job linked in front of @next (build the list, pass it to copy()).
	 * Any context.
	 */
	CopyJob *attach(CopyJob *job, const CopyRegion &dst, CopyDoneFn done, void *ctx,
			CopyJob *next);
	/* Write zeroes over @dst. Any context. */
	void zero(CopyJob *job, const CopyRegion &dst, CopyDoneFn done, void *ctx);
	/*
	 * Call @done(@job, @error, @ctx) on the engine's worker, in order with
	 * the other callbacks, for work done elsewhere (kcopyd's do_callback:
	 * a snapshot write that itself filled a whole chunk). Any context,
	 * including bio completion.
	 */
	void complete_external(CopyJob *job, int error, CopyDoneFn done, void *ctx);

	/*
	 * The owner's count of work in flight (a snapshot's pending exceptions),
	 * read by kick() to tell light load from heavy. Optional; set before use.
	 */
	void set_load_counter(const Atomic<u64> *load) { m_load = load; }

	/* Sleep until every job accepted so far has been called back. Process context. */
	void drain();

	struct Stats {
		u64 jobs;         /* jobs called back */
		u64 pieces;       /* slots' worth of work dispatched */
		u64 bios;         /* bios submitted */
		unsigned max_busy_slots;
	};
	Stats stats() const;
	unsigned busy_slots() const;
	/* The worker's work item and the bio set (to name them in a deadlock dump). */
	const void *work_item() const { return &m_work.work; }
	BioSet *bio_set() { return &m_bios; }

private:
	struct Slot;
	/* One destination's write of a fanned-out piece (its bio's private data). */
	struct FanWrite {
		Slot *slot;
		CopyJob *dest;
		u8 status;
	};
	struct Slot {
		Slot *next;
		CopyEngine *engine;
		CopyJob *job;
		u8 *buf;
		sector_t offset; /* into the job */
		u32 sectors;
		u8 status;
		bool writing;
		FanWrite *fan;            /* max_fanout entries */
		Atomic<u32> writes_left;  /* fan-out writes in flight (+1 while issuing) */
	};
	struct Work {
		dmxx_work work; /* first: the work function casts back */
		CopyEngine *engine;
	};

	void accept(CopyJob *job, CopyDoneFn done, void *ctx);
	void enqueue(CopyJob *job);
	void push_external(CopyJob *job);
	void push_ready(Slot *s);
	void kick();
	static void work_fn(dmxx_work *w);
	void run_exclusive();
	void run();
	bool dispatch_one();
	void issue(Slot *s);
	void issue_fanout(Slot *s);
	void submit(const CopyRegion &r, u32 opf, void *data, Slot *s, BioEndFn done,
		    void *priv);
	void fanout_result(Slot *s);
	void call_back(CopyJob *job);
	void finish_slot(Slot *s, CopyJob **done_list);
	static void bio_done(bio *b, void *priv);
	static void fan_bio_done(bio *b, void *priv);

	mutable SpinLock m_lock; /* IRQ-safe: bio completions take it */
	CopyJob *m_queue_head = nullptr; /* jobs waiting for slots, FIFO */
	CopyJob *m_queue_tail = nullptr;
	CopyJob *m_external = nullptr; /* complete_external() jobs, LIFO (reversed on take) */
	Slot *m_free = nullptr;
	Slot *m_ready = nullptr; /* slots whose bio completed, LIFO (reversed on take) */
	unsigned m_busy = 0;

	Slot *m_slots = nullptr;
	FanWrite *m_fan = nullptr;
	u8 *m_buffers = nullptr;
	u8 *m_zero_buf = nullptr;
	unsigned m_nr_slots = 0;
	u32 m_slot_sectors = 0;

	BioSet m_bios;
	dmxx_workqueue *m_wq = nullptr;        /* per-CPU: one job, run on the submitter's CPU */
	dmxx_workqueue *m_wq_spread = nullptr; /* unbound: several jobs, run beside the submitter */
	Work m_work;
	Work m_work_spread;
	static constexpr u8 run_idle = 0, run_running = 1, run_again = 2;
	Atomic<u8> m_run_state{run_idle};
	const Atomic<u64> *m_load = nullptr;

	Atomic<unsigned> m_jobs{0}; /* accepted and not yet called back */
	WaitQueue m_idle;

	Atomic<u64> m_stat_jobs{0};
	Atomic<u64> m_stat_pieces{0};
	Atomic<u64> m_stat_bios{0};
	Atomic<unsigned> m_stat_max_busy{0};
};

} // namespace dmxx
