/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A mempool: fixed-size elements with a guaranteed reserve.
 *
 * Semantics follow the kernel's mempool, because forward-progress arguments
 * are built on them:
 *   1. try the allocator without sleeping;
 *   2. else take an element from the reserve;
 *   3. else, if the caller may sleep, retry the allocator with the caller's
 *      full mode once, then wait for an element to be freed back (no lock
 *      held while waiting) and go to 1.
 * A free refills the reserve first and wakes one waiter. The reserve makes
 * progress certain only if every element taken is eventually freed without
 * needing a second element from the same pool: a caller must never wait
 * for a second element while holding one (rule enforced by tests).
 *
 * set_reserve_only(true) skips the allocator entirely, so tests and the
 * kernel's forced-rescue module parameter can drive the pool to empty with
 * a handful of elements.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/new.h>
#include <dmxx/result.h>
#include <dmxx/wait.h>

namespace dmxx {

class Mempool {
public:
	Mempool() = default;
	~Mempool();
	Mempool(const Mempool &) = delete;
	Mempool &operator=(const Mempool &) = delete;

	/* Preallocates @min_nr elements of @size bytes. */
	Result<void> init(usize size, unsigned min_nr);

	/* nullptr only if @mode cannot sleep and both allocator and reserve are empty. */
	void *alloc(AllocMode mode);
	void free(void *element);

	void set_reserve_only(bool on) { m_reserve_only.store(on, Order::Relaxed); }
	/* Wake every waiter to retry (after set_reserve_only(false)): test harness recovery. */
	void kick() { m_wait.wake_all(); }
	unsigned reserve_level() const;
	unsigned min_nr() const { return m_min_nr; }
	usize element_size() const { return m_size; }
	/* Allocations that had to wait for a free element. */
	u64 waits() const { return m_waits.load(Order::Relaxed); }
	/* Callers waiting right now (for a deadlock harness's dump). */
	unsigned waiting() const { return m_waiting.load(Order::Relaxed); }
	/* What a waiting caller sleeps on (names it in a harness's dump). */
	const void *wait_channel() const { return const_cast<WaitQueue &>(m_wait).raw(); }

private:
	void *try_allocator(AllocMode mode);
	void *take_reserve();

	mutable SpinLock m_lock;
	WaitQueue m_wait;
	void **m_elements = nullptr; /* reserve stack, capacity m_min_nr */
	unsigned m_curr = 0;         /* guarded by m_lock */
	unsigned m_min_nr = 0;
	usize m_size = 0;
	Atomic<bool> m_reserve_only{false};
	Atomic<u64> m_waits{0};
	Atomic<unsigned> m_waiting{0};
};

} // namespace dmxx
