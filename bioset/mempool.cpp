// SPDX-License-Identifier: GPL-2.0
#include "mempool.h"

namespace dmxx {

/*
 * More shards than this would make the "every shard full/empty" checks
 * (two reads per shard) cost more than the contention they avoid; CPUs
 * beyond share shards.
 */
static constexpr unsigned max_shards = 64;

/*
 * One CPU's part of the reserve: a stack of up to @capacity elements, whose
 * slots follow the struct on the same cache lines (and no other shard's).
 *
 * @state is (changes << 32) | count. It is written only under @lock, but
 * read without it: to skip shards that cannot help, and to decide that
 * every shard is full or empty (visit_shards). The change counter, bumped
 * by every push and pop, is what makes that decision safe: a count alone
 * can read "full" on every shard while room moves from one to another
 * during the scan. Writes are release stores and unlocked reads acquire
 * loads (visit_shards needs no more); a push's store is sequentially
 * consistent because the lost-wakeup argument needs it (wake_a_waiter).
 * The lock is taken with interrupts off: free() runs from bio completion,
 * which on real hardware is interrupt context, and an interrupt completing
 * a bio on a CPU that holds the lock would otherwise spin on it forever.
 */
struct Mempool::Shard {
	Atomic<u64> state{0}; /* first, so it shares a line with the lock word */
	unsigned capacity = 0;
	SpinLock lock;

	static constexpr u32 count_of(u64 st) { return u32(st); }
	static constexpr u64 changes_of(u64 st) { return st >> 32; }

	void **slots() { return reinterpret_cast<void **>(this + 1); }

	static constexpr u64 next(u64 old, u32 count) { return ((changes_of(old) + 1) << 32) | count; }

	bool push(void *element)
	{
		IrqGuard g(lock);
		u64 st = state.load(Order::Relaxed);
		u32 n = count_of(st);
		if (n == capacity)
			return false;
		slots()[n] = element;
		state.store(next(st, n + 1), Order::SeqCst); /* publishes: see wake_a_waiter */
		return true;
	}

	void *pop()
	{
		IrqGuard g(lock);
		u64 st = state.load(Order::Relaxed);
		u32 n = count_of(st);
		if (!n)
			return nullptr;
		void *element = slots()[n - 1];
		state.store(next(st, n - 1), Order::Release);
		return element;
	}

	u32 level()
	{
		IrqGuard g(lock);
		return count_of(state.load(Order::Relaxed));
	}
};

Mempool::Shard &Mempool::shard(unsigned i) const
{
	return *reinterpret_cast<Shard *>(m_shard_mem.get() + usize(i) * m_shard_stride);
}

unsigned Mempool::home_shard() const
{
	unsigned cpu = dmxx_this_cpu();
	return cpu < m_nshards ? cpu : cpu % m_nshards;
}

Result<void> Mempool::init(usize size, unsigned min_nr)
{
	m_size = size;
	m_min_nr = min_nr;
	if (!min_nr)
		return {};
	unsigned n = dmxx_nr_cpus();
	if (n > min_nr)
		n = min_nr; /* a shard of capacity 0 would only be scanned */
	if (n > max_shards)
		n = max_shards;
	if (!n)
		n = 1;
	/* Shard i holds min_nr / n elements, one more for the first min_nr % n. */
	unsigned per = min_nr / n, extra = min_nr % n;
	usize most = per + (extra ? 1 : 0);
	static_assert(sizeof(Shard) % alignof(void *) == 0, "slots follow the shard");
	m_shard_stride = round_up_to_line(sizeof(Shard) + most * sizeof(void *));
	TRY(m_shard_mem.init(m_shard_stride * n));
	for (unsigned i = 0; i < n; i++) {
		Shard *s = new (in_place, m_shard_mem.get() + usize(i) * m_shard_stride) Shard;
		s->capacity = per + (i < extra ? 1 : 0);
	}
	m_nshards = n;
	for (unsigned i = 0; i < min_nr; i++) {
		void *e = dmxx_alloc(size, DMXX_ALLOC_SLEEP);
		if (!e)
			return err(ENOMEM); /* the destructor frees what was taken */
		if (!shard(i % n).push(e))
			dmxx_fatal("mempool: shard capacities do not add up to min_nr");
	}
	return {};
}

Mempool::~Mempool()
{
	for (unsigned i = 0; i < m_nshards; i++)
		while (void *e = shard(i).pop())
			dmxx_free(e);
}

u64 Mempool::changes_sum() const
{
	u64 sum = 0;
	for (unsigned i = 0; i < m_nshards; i++)
		sum += Shard::changes_of(shard(i).state.load(Order::Acquire));
	return sum;
}

/*
 * Offers each shard, this CPU's first, to @try_shard(shard, state), which
 * returns true once it has taken or placed an element. Returns false only
 * if a whole pass found nothing to do AND a second look finds the change
 * counters where the pass saw them. Without that second look a free could
 * read "full" on every shard although room existed the whole time, moving
 * ahead of the scan (another CPU pops from a shard already read, a third
 * pushes into one not read yet), and drop an element the reserve needed.
 *
 * Why two looks suffice, in the memory model's terms. Let C be everything
 * that happens-before the point between the two passes. Each first read
 * of a shard took its value from some write W (a release store under the
 * lock; the read acquires), so W is in C, and so is every earlier write of
 * that shard (they are ordered by its lock). A later write of the shard
 * cannot be in C: it would happen-before the second read, which would then
 * have to see it (write-read coherence), but the second read saw W's
 * change count again. So C is a consistent state of the whole program
 * (closed under happens-before) in which every shard is exactly as the
 * first pass saw it: all full, or all empty, at once. So a free hands an
 * element to the allocator only if the reserve really was full at one
 * moment (which cannot be while that element is one of the reserve's
 * min_nr), as the kernel's single counter would have said, and a
 * non-sleeping allocation fails only if the reserve really was empty at
 * one moment. (The counters are 32 bits and only grow, so equal
 * sums mean equal counters unless some shard changed 2^32 times in one
 * pass.)
 *
 * A retry means that another CPU pushed or popped meanwhile, so the loop
 * ends as soon as the reserve holds still for one pass; it is not bounded
 * against an adversary that changes a shard within every pass forever.
 */
template <typename TryShard>
bool Mempool::visit_shards(TryShard try_shard, const FreeHookForTest *hook) const
{
	if (!m_nshards)
		return false;
	unsigned home = home_shard();
	for (;;) {
		u64 seen = 0;
		unsigned i = home;
		for (unsigned k = 0; k < m_nshards; k++) {
			Shard &s = shard(i);
			u64 st = s.state.load(Order::Acquire);
			if (try_shard(s, st))
				return true;
			seen += Shard::changes_of(st);
			if (hook && hook->shard_full) [[unlikely]]
				hook->shard_full(hook->arg);
			if (++i == m_nshards)
				i = 0;
		}
		if (hook && hook->single_look) [[unlikely]]
			return false;
		if (changes_sum() == seen)
			return false;
	}
}

void *Mempool::take_reserve()
{
	void *element = nullptr;
	visit_shards([&element](Shard &s, u64 st) {
		/* An empty shard is skipped without its lock. */
		if (!Shard::count_of(st))
			return false;
		element = s.pop();
		return element != nullptr;
	});
	return element;
}

/*
 * The unlocked "full" reads see the take that handed this element out,
 * because the element reached this caller through something that orders
 * (a lock, a completion, a release/acquire pair): so an element that came
 * from the reserve always finds its room. (The kernel's mempool_free has an
 * smp_rmb for callers that pass elements through plain racy stores; in C++
 * such a hand-off is a data race, which TSan would report.)
 */
bool Mempool::put_reserve(void *element, const FreeHookForTest *hook)
{
	return visit_shards(
		[element](Shard &s, u64 st) {
			if (Shard::count_of(st) >= s.capacity)
				return false;
			return s.push(element);
		},
		hook);
}

bool Mempool::reserve_has_element() const
{
	for (unsigned i = 0; i < m_nshards; i++)
		if (Shard::count_of(shard(i).state.load(Order::SeqCst)))
			return true;
	return false;
}

unsigned Mempool::reserve_level() const
{
	unsigned n = 0;
	for (unsigned i = 0; i < m_nshards; i++)
		n += shard(i).level();
	return n;
}

unsigned Mempool::shard_level(unsigned i) const { return i < m_nshards ? shard(i).level() : 0; }

void *Mempool::try_allocator(AllocMode mode)
{
	if (m_reserve_only.load(Order::Relaxed))
		return nullptr;
	return dmxx_alloc(m_size, static_cast<dmxx_alloc_mode>(mode));
}

void *Mempool::alloc(AllocMode mode)
{
	bool may_sleep = mode == AllocMode::Sleep || mode == AllocMode::NoIO;
	bool waited = false;
	for (bool first = true;; first = false) {
		/* The first try never sleeps: a full reserve should not wait on reclaim. */
		if (void *e = try_allocator(first ? AllocMode::NoWait : mode))
			return e;
		if (void *e = take_reserve())
			return e;
		if (!may_sleep)
			return nullptr;
		if (first)
			continue; /* one more allocator try with the caller's full mode */
		if (!waited) {
			waited = true; /* count allocations that waited, not sleeps */
			m_waits.fetch_add(1, Order::Relaxed);
		}
		/*
		 * Announce the wait before the last look at the shards (inside
		 * wait_once, after queueing): see wake_a_waiter. No lock held
		 * here: the freeing side takes the shard locks to refill.
		 */
		m_waiting.fetch_add(1, Order::SeqCst);
		m_wait.wait_once([this] { return reserve_has_element(); });
		m_waiting.fetch_sub(1, Order::Relaxed);
	}
}

/*
 * Called after free() published an element. Taking the wait queue's lock
 * on every free would put one shared lock back on the path the shards
 * took it off, so we wake only if m_waiting says someone waits. Why that
 * loses no wakeup:
 *   free:  publish the element (shard state, SeqCst store), then read
 *          m_waiting (SeqCst load);
 *   alloc: m_waiting += 1 (SeqCst), then wait_once() queues itself on
 *          m_wait and only then reads the shard states (SeqCst) and
 *          sleeps only if all were empty.
 * Being sequentially consistent, these have one total order. If free's
 * read misses the increment, the publication came before the increment,
 * hence before the waiter's reads, which see the element (or see it taken
 * by another allocation: progress either way). If free's read sees the
 * increment, it wakes: a waiter already queued is woken (a wake between
 * queueing and sleeping is kept: dmxx_wait_prepare/sleep in both
 * platforms), and a waiter that queues after the wake took the wait
 * queue's lock after the waker did, so its reads see the publication.
 * The SeqCst store/load pair is the full fence of this pattern; a fence
 * instruction would do, but TSan cannot check fences (GCC rejects them
 * under -fsanitize=thread). The negative control (check_waiters_first)
 * shows the wakeup lost when free reads m_waiting before publishing.
 */
void Mempool::wake_a_waiter()
{
	if (m_waiting.load(Order::SeqCst))
		m_wait.wake_one();
}

void Mempool::free(void *element)
{
	if (!element)
		return;
	if (m_free_hook) [[unlikely]] {
		free_with_hook(element);
		return;
	}
	if (!put_reserve(element)) {
		dmxx_free(element); /* the reserve is full: back to the allocator, no lock taken */
		return;
	}
	wake_a_waiter();
}

void Mempool::free_with_hook(void *element)
{
	const FreeHookForTest *hook = m_free_hook;
	bool waiter = hook->check_waiters_first && m_waiting.load(Order::SeqCst) != 0;
	if (hook->before_publish)
		hook->before_publish(hook->arg);
	if (!put_reserve(element, hook)) {
		dmxx_free(element);
		return;
	}
	if (!hook->check_waiters_first)
		wake_a_waiter();
	else if (waiter)
		m_wait.wake_one();
}

} // namespace dmxx
