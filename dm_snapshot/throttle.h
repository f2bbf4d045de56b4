/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The COW throttle: at most snapshot_cow_threshold chunk copies in flight
 * per snapshot (module parameter, default 2048, read at each decision so a
 * sysfs write takes effect at once).
 *
 * History (seed 001). 2018: a semaphore, down() in the origin write path
 * with the global origins lock held for read, up() by the copy completion
 * after it had retried the waiting origin bios, which takes that lock for
 * read. A snapshot constructor queueing for the lock in write mode made the
 * retry wait behind it (rwsems prefer writers), the constructor wait for
 * the sleeping writer, the writer wait for up(): deadlock. 2019: count
 * copies, and before every origin write sleep with no lock held while the
 * count is over the limit; but every write waits, even one needing no
 * copy, and every copy completion wakes all sleepers at once.
 *
 * Ours: a writer asks for a slot only when it is about to create a copy
 * (its chunk is not copied and no copy of it is in flight), with nothing
 * locked but the chunk's spinlock, and without sleeping: try_acquire().
 * If that fails the writer drops every lock and reference it holds and
 * sleeps in wait_for_grant() on its own completion, in a FIFO. A finished
 * copy hands its slot straight to the first sleeper (the count does not
 * drop, so nobody can overtake), wakes that one writer only, and a writer
 * that finds it no longer needs the slot passes it on with release(). So
 * the count never exceeds the limit; only the retry of already-admitted
 * bios and the merge may add a copy beyond it (acquire_forced()).
 *
 * The 2018 and 2019 behaviours stay selectable (ThrottleMode) so the tests
 * can show the same scenarios deadlocking or stalling under them.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/types.h>
#include <dmxx/wait.h>

namespace dmxx::snap {

enum class ThrottleMode : u8 {
	Ours = 0,
	Semaphore2018 = 1, /* negative control: deadlocks with a waiting writer (seed 001) */
	Kernel2019 = 2,    /* negative control: delays writes that need no copy */
};

class CowThrottle {
public:
	static constexpr unsigned default_threshold = 2048;
	/* snapshot_cow_threshold, now. 0 would stop every copy: it means 1. */
	static unsigned limit();

	explicit CowThrottle(ThrottleMode mode) : m_mode(mode) {}
	CowThrottle(const CowThrottle &) = delete;
	CowThrottle &operator=(const CowThrottle &) = delete;

	ThrottleMode mode() const { return m_mode; }

	/* ---- ours ---- */
	/* A slot if one is free and nobody queues for one. Never sleeps. */
	bool try_acquire();
	/* A slot regardless of the limit (admitted work that must not wait). */
	void acquire_forced();
	/* Give a slot back: to the first sleeper if the limit allows, else to the pool. */
	void release();
	enum class Wait { Granted, Closed };
	/*
	 * Sleep until a slot is handed to us (Granted: we hold it) or the
	 * throttle is closed. The caller must hold no lock.
	 */
	Wait wait_for_grant();
	/* The snapshot is going away: wake every sleeper with Closed, refuse new ones. */
	void close();

	/* ---- 2018: semaphore ---- */
	/* down(): sleeps until a slot is free and takes it, whatever the caller holds. */
	void legacy_down();

	/* ---- 2019: count, and make every writer wait over the limit ---- */
	bool over_limit_2019() const;
	/* Sleep until the count is at most the limit (all sleepers wake together). */
	void wait_2019();

	unsigned in_flight() const;
	unsigned sleepers() const;
	unsigned max_in_flight() const { return m_max.load(Order::Relaxed); }
	/* Writers asleep in legacy_down() or wait_2019() right now. */
	unsigned legacy_sleepers() const { return m_legacy_sleepers.load(Order::Relaxed); }
	/* Wake the legacy sleepers to re-check (a test un-sticking its negative control). */
	void kick_for_test() { m_legacy_wait.wake_all(); }

private:
	struct Sleeper {
		Sleeper *next;
		Completion done;
		bool granted = false;
	};
	void note_max(unsigned n);

	ThrottleMode m_mode;
	mutable SpinLock m_lock;
	unsigned m_in_flight = 0;     /* slots held: copies plus grants not yet used */
	Sleeper *m_head = nullptr;    /* FIFO of writers waiting for a grant */
	Sleeper *m_tail = nullptr;
	unsigned m_sleepers = 0;
	bool m_closed = false;
	WaitQueue m_legacy_wait;      /* 2018 and 2019 sleepers */
	Atomic<unsigned> m_max{0};
	Atomic<unsigned> m_legacy_sleepers{0};
};

} // namespace dmxx::snap
