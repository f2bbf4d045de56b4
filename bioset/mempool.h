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
 * A free refills the reserve first (up to min_nr elements) and wakes one
 * waiter if there is one; a free that finds the reserve full goes back to
 * the allocator. The reserve makes progress certain only if every element
 * taken is eventually freed without needing a second element from the
 * same pool: a caller must never wait for a second element while holding
 * one (rule enforced by tests).
 *
 * Unlike the kernel's, the reserve is split into shards, one per CPU (at
 * most one per element), each on its own cache lines with its own lock: a
 * CPU takes from and frees to its own shard, so CPUs using the reserve at
 * the same time do not pass one lock and one counter back and forth. The
 * split changes no guarantee: the shards hold min_nr elements in total,
 * an allocation looks in every shard before it fails or waits, and a free
 * puts its element in any shard with room. "Every shard is full" and
 * "every shard is empty" are decided on a consistent view (see
 * mempool.cpp), so a free never drops an element the reserve had room for
 * and a non-sleeping allocation never fails while the reserve held one.
 *
 * set_reserve_only(true) skips the allocator entirely, so tests and the
 * kernel's forced-rescue module parameter can drive the pool to empty with
 * a handful of elements.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/new.h>
#include <dmxx/percpu_counter.h>
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
	/* Elements in the reserve, all shards. */
	unsigned reserve_level() const;
	unsigned min_nr() const { return m_min_nr; }
	usize element_size() const { return m_size; }
	/* Allocations that had to wait for a free element. */
	u64 waits() const { return m_waits.load(Order::Relaxed); }
	/* Callers waiting right now (for a deadlock harness's dump). */
	unsigned waiting() const { return m_waiting.load(Order::Relaxed); }
	/* What a waiting caller sleeps on (names it in a harness's dump). */
	const void *wait_channel() const { return const_cast<WaitQueue &>(m_wait).raw(); }

	/* For tests: how the reserve is split. */
	unsigned shard_count() const { return m_nshards; }
	unsigned shard_level(unsigned shard) const;

	/*
	 * Test only: pause points inside free(), and the naive designs the
	 * tests must catch. nullptr: back to normal (free() pays one
	 * predictable branch for this).
	 */
	struct FreeHookForTest {
		void *arg;
		/*
		 * Just before free() puts the element in the reserve. Normally
		 * free() then looks for a waiter to wake; with
		 * @check_waiters_first it has looked already (the naive order),
		 * so an allocation that starts waiting here is never woken.
		 */
		void (*before_publish)(void *arg);
		bool check_waiters_first;
		/*
		 * After free()'s scan found a shard without room (no lock held).
		 * With @single_look the scan believes one pass that found every
		 * shard full, which drops an element the reserve had room for
		 * when room moves ahead of the scan.
		 */
		void (*shard_full)(void *arg);
		bool single_look;
	};
	void set_free_hook_for_test(const FreeHookForTest *hook) { m_free_hook = hook; }

private:
	struct Shard;

	Shard &shard(unsigned i) const;
	unsigned home_shard() const;
	template <typename TryShard>
	bool visit_shards(TryShard try_shard, const FreeHookForTest *hook = nullptr) const;
	u64 changes_sum() const;
	void *try_allocator(AllocMode mode);
	void *take_reserve();
	bool put_reserve(void *element, const FreeHookForTest *hook = nullptr);
	bool reserve_has_element() const;
	void wake_a_waiter();
	void free_with_hook(void *element);

	CacheAlignedMemory m_shard_mem; /* m_nshards shards, m_shard_stride bytes apart */
	usize m_shard_stride = 0;
	unsigned m_nshards = 0;
	unsigned m_min_nr = 0;
	usize m_size = 0;
	WaitQueue m_wait;
	Atomic<bool> m_reserve_only{false};
	Atomic<u64> m_waits{0};
	Atomic<unsigned> m_waiting{0};
	const FreeHookForTest *m_free_hook = nullptr;
};

} // namespace dmxx
