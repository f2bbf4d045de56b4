/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A bio set: bios from a mempool reserve, with a rescuer.
 *
 * Every bio our targets create (clones, split pieces, copy and metadata I/O)
 * comes from a BioSet. Each element is laid out as
 *     [front pad][Header][struct bio][inline vecs]
 * so per-bio state needs no second allocation. Completion goes through the
 * set: bi_end_io is bioset_end_io, which calls the owner's callback; the
 * callback frees the bio (BioSet::free) when it is done with it.
 *
 * Forward progress (the 2012 deadlock, seed 002): a driver runs inside bio
 * submission, where the bios it submits wait on the task's pending lists
 * until it returns. If it allocates a second bio from a set whose reserve
 * is exhausted, and the bio it already submitted is what would refill the
 * reserve, it waits forever. So inside submission with bios pending, the
 * first allocation attempt must not block; if it fails, the bios of THIS
 * set are taken off the pending lists and handed to this set's rescuer
 * thread, which submits them, and only then do we block. Bios of other sets
 * stay put: handing a higher device's bio to our rescuer could make the
 * rescuer wait on an allocation from our own set (seed 002's comment).
 *
 * The rules callers keep: allocate one bio at a time and submit it before
 * allocating the next; never wait for a second element while holding one.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/bio.h>
#include <dmxx/lock.h>
#include <dmxx/percpu_counter.h>
#include <dmxx/platform.h>
#include <dmxx/result.h>

#include "mempool.h"

namespace dmxx {

class BioSet;
void bioset_end_io(bio *b);

/* Called in completion context (may be interrupt context: must not sleep). */
using BioEndFn = void (*)(bio *b, void *priv);

/*
 * What the allocator does when it would block inside submission. Only
 * PerSet is correct; the others exist so tests can run the old designs
 * through the same harness and watch them stall.
 */
enum class RescuePolicy : u8 {
	PerSet,       /* punt this set's bios from both pending lists (the fix) */
	None,         /* block with bios pending (before 2012: deadlocks) */
	AllBios,      /* punt every pending bio of both lists, any set (rescuer can wait on itself) */
	CurrentLevel, /* punt every bio of list [0] only, any set (DM's 2017 strategy; sound
			 only because submission is depth-first) */
};

class BioSet {
public:
	BioSet() = default;
	~BioSet();
	BioSet(const BioSet &) = delete;
	BioSet &operator=(const BioSet &) = delete;

	/*
	 * @pool_size bios are reserved; @front_pad bytes of per-bio state sit
	 * before each bio; @inline_vecs vecs after it. @name names the rescuer.
	 */
	Result<void> init(const char *name, unsigned pool_size, unsigned front_pad,
			  unsigned inline_vecs);

	/* A fresh bio for @bdev; nullptr only if @mode cannot sleep. */
	bio *alloc(block_device *bdev, u32 opf, unsigned nr_vecs, AllocMode mode, BioEndFn done,
		   void *priv);
	/* A clone of @src (sharing its data) for @bdev; nullptr if @mode cannot sleep or on error. */
	bio *clone(bio *src, block_device *bdev, AllocMode mode, BioEndFn done, void *priv);

	/* Return a bio from any BioSet to its set. */
	static void free(bio *b);
	/* The owner of a bio, or nullptr if it did not come from a BioSet. */
	static BioSet *owner(const bio *b);
	/* The @front_pad bytes in front of a bio of this set. */
	void *front(bio *b) const;

	void set_rescue_policy(RescuePolicy p) { m_policy = p; }
	/*
	 * Run rescues on @wq instead of this set's own rescuer (nullptr: back
	 * to our own). Only for tests that reproduce the old shared-worker
	 * design (seed 000), which must be seen to stall.
	 */
	void set_rescue_workqueue_for_test(dmxx_workqueue *wq) { m_rescue_target = wq; }
	void set_reserve_only(bool on) { m_pool.set_reserve_only(on); }
	unsigned reserve_level() const { return m_pool.reserve_level(); }
	/*
	 * Let a stalled allocation through (allocator back on, waiters woken).
	 * Only for a deadlock harness that has caught a stall and must clean up.
	 */
	void unstall()
	{
		m_pool.set_reserve_only(false);
		m_pool.kick();
	}

	struct Stats {
		u64 allocs;       /* summed over CPUs: exact once the allocating threads are done */
		u64 rescues;      /* times bios were punted to the rescuer */
		u64 rescued_bios; /* bios the rescuer submitted */
		u64 pool_waits;   /* times an allocation waited for a free */
	};
	Stats stats() const;

	/* For a deadlock harness's dump. */
	unsigned pool_size() const { return m_pool.min_nr(); }
	unsigned pool_waiting() const { return m_pool.waiting(); }
	const void *pool_wait_channel() const { return m_pool.wait_channel(); }
	/* Bios handed to the rescuer and not yet submitted by it. */
	unsigned rescue_backlog() const;
	/* The rescuer's work item (to name it in a dump). */
	const void *rescue_work() const { return &m_rescue_work.work; }
	RescuePolicy rescue_policy() const { return m_policy; }
	/* sizeof(Header): the bytes between the front pad and the bio. */
	static constexpr unsigned header_bytes = 4 * sizeof(void *);

private:
	struct Header;
	struct RescueWork {
		dmxx_work work; /* first: the work callback gets this address */
		BioSet *set;
	};

	void *alloc_element(AllocMode mode);
	bio *setup(void *element, BioEndFn done, void *priv);
	void punt_to_rescuer();
	static void rescue_work_fn(dmxx_work *w);
	friend void bioset_end_io(bio *b);

	Mempool m_pool;
	unsigned m_front_pad = 0;
	unsigned m_inline_vecs = 0;
	unsigned m_header_off = 0; /* front pad rounded up */
	unsigned m_bio_off = 0;
	RescuePolicy m_policy = RescuePolicy::PerSet;

	mutable SpinLock m_rescue_lock;
	dmxx_bio_list m_rescue_list = {}; /* guarded by m_rescue_lock */
	RescueWork m_rescue_work;
	dmxx_workqueue *m_rescue_wq = nullptr;
	dmxx_workqueue *m_rescue_target = nullptr; /* test override of m_rescue_wq */

	PercpuCounter m_allocs; /* every allocation: one line per CPU, not one for all */
	Atomic<u64> m_rescues{0};
	Atomic<u64> m_rescued_bios{0};
};

} // namespace dmxx
