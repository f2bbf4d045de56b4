// SPDX-License-Identifier: GPL-2.0
/*
 * Mempool: the reserve guarantees progress, the first try never sleeps,
 * waiting holds no lock, and every element comes back (ASan checks leaks).
 * The reserve is split into per-CPU shards: tests force the CPU hint
 * (user::set_cpu_hint_for_test) to free on one "CPU" and take on another,
 * and pause free() at fixed points (Mempool::FreeHookForTest) to run the
 * interleavings a naive design gets wrong, each with that naive design as
 * its negative control.
 */
#include "helpers.h"

#include <dmxx/percpu_counter.h>
#include <dmxx/user/watch.h>
#include <mempool.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <thread>

namespace dmxx::test {
namespace {

class MempoolTest : public DmxxTest {};

TEST_F(MempoolTest, ReserveServesWhenAllocatorFails)
{
	Mempool pool;
	ASSERT_TRUE(pool.init(64, 3).is_ok());
	EXPECT_EQ(pool.reserve_level(), 3u);
	user::fail_allocs_from(0);
	void *a = pool.alloc(AllocMode::NoWait);
	void *b = pool.alloc(AllocMode::NoWait);
	void *c = pool.alloc(AllocMode::NoWait);
	ASSERT_TRUE(a && b && c);
	EXPECT_EQ(pool.reserve_level(), 0u);
	EXPECT_EQ(pool.alloc(AllocMode::NoWait), nullptr) << "empty reserve, allocator failing";
	EXPECT_EQ(pool.alloc(AllocMode::Atomic), nullptr);
	pool.free(a);
	pool.free(b);
	pool.free(c);
	EXPECT_EQ(pool.reserve_level(), 3u);
}

TEST_F(MempoolTest, ReserveOnlySkipsTheAllocator)
{
	Mempool pool;
	ASSERT_TRUE(pool.init(32, 1).is_ok());
	pool.set_reserve_only(true);
	uint64_t before = user::alloc_stats().attempts;
	void *a = pool.alloc(AllocMode::NoWait);
	ASSERT_NE(a, nullptr);
	EXPECT_EQ(pool.alloc(AllocMode::NoWait), nullptr);
	EXPECT_EQ(user::alloc_stats().attempts, before) << "reserve-only must not call the allocator";
	pool.free(a);
}

TEST_F(MempoolTest, FreeBeyondReserveGoesBackToTheAllocator)
{
	Mempool pool;
	ASSERT_TRUE(pool.init(16, 1).is_ok());
	void *a = pool.alloc(AllocMode::Sleep); /* from the allocator: reserve stays full */
	void *b = pool.alloc(AllocMode::Sleep);
	EXPECT_EQ(pool.reserve_level(), 1u);
	pool.free(a);
	pool.free(b);
	EXPECT_EQ(pool.reserve_level(), 1u);
}

TEST_F(MempoolTest, SleepingAllocWaitsForAFreeAndHoldsNoLockMeanwhile)
{
	Mempool pool;
	ASSERT_TRUE(pool.init(64, 1).is_ok());
	pool.set_reserve_only(true);
	void *held = pool.alloc(AllocMode::Sleep);
	ASSERT_NE(held, nullptr);

	std::atomic<bool> got{false};
	std::thread waiter([&] {
		void *e = pool.alloc(AllocMode::Sleep); /* blocks: reserve empty */
		got = true;
		pool.free(e);
	});
	/* Bounded wait for the waiter to block (no fixed sleep decides the outcome). */
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
	while (pool.waits() == 0 && std::chrono::steady_clock::now() < deadline)
		std::this_thread::yield();
	EXPECT_GE(pool.waits(), 1u);
	EXPECT_FALSE(got.load());
	/* reserve_level() takes the pool lock: it must be free while the waiter sleeps. */
	EXPECT_EQ(pool.reserve_level(), 0u);
	pool.free(held);
	waiter.join();
	EXPECT_TRUE(got.load());
	EXPECT_EQ(pool.reserve_level(), 1u);
}

TEST_F(MempoolTest, InitFailureIsReportedAndLeaksNothing)
{
	/* The shards' memory, then the 3 elements. */
	for (uint64_t n = 0; n < 4; n++) {
		user::AllocFaultScope faults;
		user::fail_nth_alloc(n);
		Mempool pool;
		EXPECT_EQ(pool.init(128, 3).error_code(), -ENOMEM) << "failing allocation " << n;
	}
	user::AllocFaultScope faults;
	user::fail_nth_alloc(4);
	Mempool pool;
	EXPECT_TRUE(pool.init(128, 3).is_ok()) << "init makes exactly 4 allocations";
}

TEST_F(MempoolTest, ManyThreadsShareATinyReserve)
{
	Mempool pool;
	ASSERT_TRUE(pool.init(64, 2).is_ok());
	pool.set_reserve_only(true);
	constexpr int threads = 8, rounds = 2000;
	std::vector<std::thread> ts;
	std::atomic<int> done{0};
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&] {
			for (int i = 0; i < rounds; i++) {
				void *e = pool.alloc(AllocMode::Sleep);
				ASSERT_NE(e, nullptr);
				static_cast<char *>(e)[0] = char(i);
				pool.free(e);
			}
			done++;
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(done.load(), threads);
	EXPECT_EQ(pool.reserve_level(), 2u);
}


/* ---- shards ------------------------------------------------------------------ */

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/* Polls @pred (yielding) until it holds or @limit passes; a bound, not a sleep. */
template <typename Pred> bool eventually(Pred pred, std::chrono::milliseconds limit = 10s)
{
	auto deadline = Clock::now() + limit;
	while (!pred()) {
		if (Clock::now() > deadline)
			return false;
		std::this_thread::yield();
	}
	return true;
}

/* True while some thread sleeps in wait_sleep on @pool (its wait queue named @name). */
bool asleep_on(const std::string &name)
{
	for (const auto &t : user::thread_reports())
		if (t.blocked && t.state.find("wait_sleep on [" + name + "]") != std::string::npos)
			return true;
	return false;
}

TEST_F(MempoolTest, ElementsAreSplitEvenlyOverOneShardPerCpu)
{
	user::CpuHintScope cpus;
	user::set_nr_cpus_for_test(4);
	Mempool pool;
	ASSERT_TRUE(pool.init(32, 10).is_ok());
	ASSERT_EQ(pool.shard_count(), 4u);
	EXPECT_EQ(pool.shard_level(0), 3u);
	EXPECT_EQ(pool.shard_level(1), 3u);
	EXPECT_EQ(pool.shard_level(2), 2u);
	EXPECT_EQ(pool.shard_level(3), 2u);
	EXPECT_EQ(pool.reserve_level(), 10u);

	/* Never more shards than elements: a shard of capacity 0 would only be scanned. */
	Mempool small;
	ASSERT_TRUE(small.init(32, 2).is_ok());
	EXPECT_EQ(small.shard_count(), 2u);
	Mempool none;
	ASSERT_TRUE(none.init(32, 0).is_ok());
	EXPECT_EQ(none.shard_count(), 0u);
	none.set_reserve_only(true);
	EXPECT_EQ(none.alloc(AllocMode::NoWait), nullptr);
}

TEST_F(MempoolTest, FreedOnOneCpuTakenOnAnother)
{
	user::CpuHintScope cpus;
	user::set_nr_cpus_for_test(4);
	Mempool pool;
	ASSERT_TRUE(pool.init(32, 8).is_ok()); /* 4 shards of 2 */
	pool.set_reserve_only(true);

	/* CPU 0 takes its own two, then the next shard's. */
	user::set_cpu_hint_for_test(0);
	void *a = pool.alloc(AllocMode::NoWait);
	void *b = pool.alloc(AllocMode::NoWait);
	void *c = pool.alloc(AllocMode::NoWait);
	ASSERT_TRUE(a && b && c);
	EXPECT_EQ(pool.shard_level(0), 0u);
	EXPECT_EQ(pool.shard_level(1), 1u);

	/* CPU 3's shard is full: its frees go to the next shards with room. */
	user::set_cpu_hint_for_test(3);
	pool.free(a);
	EXPECT_EQ(pool.shard_level(0), 1u);
	pool.free(b);
	EXPECT_EQ(pool.shard_level(0), 2u);
	/* CPU 1 frees into its own shard. */
	user::set_cpu_hint_for_test(1);
	pool.free(c);
	EXPECT_EQ(pool.shard_level(1), 2u);

	/* Elements freed on CPUs 1 and 3 are taken on CPU 2 once its shard is dry. */
	user::set_cpu_hint_for_test(2);
	std::vector<void *> all;
	for (int i = 0; i < 8; i++) {
		void *e = pool.alloc(AllocMode::NoWait);
		ASSERT_NE(e, nullptr) << "allocation " << i;
		all.push_back(e);
	}
	EXPECT_EQ(pool.reserve_level(), 0u);
	EXPECT_EQ(pool.alloc(AllocMode::NoWait), nullptr);
	for (void *e : all)
		pool.free(e); /* all on CPU 2: its shard fills, the rest spill over */
	for (unsigned i = 0; i < 4; i++)
		EXPECT_EQ(pool.shard_level(i), 2u) << "shard " << i;
}

/*
 * The reserve guarantee, unchanged by the split: min_nr allocations succeed
 * from one CPU although the elements were freed to other CPUs' shards, the
 * next one fails (NoWait) or waits (Sleep), and a free on yet another CPU
 * wakes the waiter.
 */
TEST_F(MempoolTest, ReserveGuaranteeHoldsAcrossShards)
{
	user::CpuHintScope cpus;
	user::set_nr_cpus_for_test(8);
	constexpr unsigned min_nr = 8;
	Mempool pool;
	ASSERT_TRUE(pool.init(48, min_nr).is_ok());
	ASSERT_EQ(pool.shard_count(), 8u);
	pool.set_reserve_only(true);
	user::name_object(pool.wait_channel(), "guarantee-pool");

	std::vector<void *> held;
	user::set_cpu_hint_for_test(0);
	for (unsigned i = 0; i < min_nr; i++)
		held.push_back(pool.alloc(AllocMode::NoWait));
	for (void *e : held)
		ASSERT_NE(e, nullptr);
	/* Freed from CPUs 5, 6 and 7 only: they end up spread over every shard. */
	for (unsigned i = 0; i < min_nr; i++) {
		user::set_cpu_hint_for_test(int(5 + i % 3));
		pool.free(held[i]);
	}
	held.clear();
	EXPECT_EQ(pool.reserve_level(), min_nr);

	user::set_cpu_hint_for_test(0);
	for (unsigned i = 0; i < min_nr; i++) {
		void *e = pool.alloc(AllocMode::NoWait);
		ASSERT_NE(e, nullptr) << "allocation " << i << " of the reserve's " << min_nr;
		held.push_back(e);
	}
	EXPECT_EQ(pool.alloc(AllocMode::NoWait), nullptr);
	EXPECT_EQ(pool.alloc(AllocMode::Atomic), nullptr);

	/* The (min_nr+1)th sleeping allocation waits, on CPU 0... */
	auto got = std::async(std::launch::async, [&pool] {
		user::set_cpu_hint_for_test(0);
		return pool.alloc(AllocMode::Sleep);
	});
	ASSERT_TRUE(eventually([&] { return asleep_on("guarantee-pool"); })) << "the allocation did not wait";
	EXPECT_EQ(pool.waiting(), 1u);
	/* ...and a free on CPU 3 wakes it. */
	user::set_cpu_hint_for_test(3);
	void *freed = held.back();
	held.pop_back();
	pool.free(freed);
	ASSERT_EQ(got.wait_for(10s), std::future_status::ready) << "free on another CPU did not wake the waiter";
	void *e = got.get();
	EXPECT_EQ(e, freed);
	EXPECT_EQ(pool.waits(), 1u);
	held.push_back(e);
	for (void *h : held)
		pool.free(h);
	EXPECT_EQ(pool.reserve_level(), min_nr);
	user::forget_object(pool.wait_channel());
}

/*
 * The lost-wakeup argument (mempool.cpp, wake_a_waiter), run on the one
 * interleaving that matters: an allocation starts waiting while a free is
 * between its two steps. free() pauses just before it publishes the
 * element; meanwhile an allocation finds the reserve empty and goes to
 * sleep; then free() goes on. Correct order (publish, then look for
 * waiters): free sees the waiter and wakes it. Naive order (look, then
 * publish): free looked before the waiter announced itself, so nobody
 * wakes it although the element sits in the reserve. Deterministic: the
 * naive run has no wake-up to deliver at all, so the bounded wait below
 * only decides how long the test takes, never its outcome.
 */
struct LostWakeupRun {
	bool woken;          /* the waiter got the element before kick() */
	bool stranded;       /* element in the reserve while the waiter slept */
};

LostWakeupRun run_free_against_a_new_waiter(bool check_waiters_first, const std::string &name)
{
	Mempool pool;
	EXPECT_TRUE(pool.init(64, 1).is_ok());
	pool.set_reserve_only(true);
	user::name_object(pool.wait_channel(), name);
	void *held = pool.alloc(AllocMode::NoWait);
	EXPECT_NE(held, nullptr);

	struct Pause {
		std::promise<void> reached;
		std::promise<void> resume;
	} pause;
	auto before_publish = [](void *arg) {
		auto *p = static_cast<Pause *>(arg);
		p->reached.set_value();
		p->resume.get_future().wait();
	};
	Mempool::FreeHookForTest hook{&pause, before_publish, check_waiters_first, nullptr, false};
	pool.set_free_hook_for_test(&hook);

	std::thread freer([&] { pool.free(held); });
	pause.reached.get_future().wait(); /* free() is paused before publishing */

	auto got = std::async(std::launch::async, [&pool] { return pool.alloc(AllocMode::Sleep); });
	EXPECT_TRUE(eventually([&] { return asleep_on(name); })) << "the allocation did not go to sleep";
	pause.resume.set_value();
	freer.join(); /* the element is published; free() returned */

	LostWakeupRun run{};
	/* Correct design: woken within the bound. Naive: no wake-up exists to come. */
	run.woken = got.wait_for(check_waiters_first ? 300ms : 10s) == std::future_status::ready;
	if (!run.woken) {
		run.stranded = pool.reserve_level() == 1 && asleep_on(name);
		pool.kick(); /* recovery: the waiter retries and takes the element */
	}
	void *e = got.get();
	EXPECT_NE(e, nullptr);
	pool.set_free_hook_for_test(nullptr);
	pool.free(e);
	EXPECT_EQ(pool.reserve_level(), 1u);
	user::forget_object(pool.wait_channel());
	return run;
}

TEST_F(MempoolTest, FreeWakesAWaiterThatStartsWaitingMidFree)
{
	LostWakeupRun run = run_free_against_a_new_waiter(false, "wakeup-pool");
	EXPECT_TRUE(run.woken) << "publish-then-check must wake the new waiter";
}

TEST_F(MempoolTest, NegativeControlCheckingWaitersBeforePublishingLosesTheWakeup)
{
	LostWakeupRun run = run_free_against_a_new_waiter(true, "naive-wakeup-pool");
	EXPECT_FALSE(run.woken) << "the naive order must be caught losing the wakeup";
	EXPECT_TRUE(run.stranded) << "the element must sit in the reserve while the waiter sleeps";
}

/*
 * "Every shard is full" must be true at one instant, not shard by shard
 * during the scan, or a free drops an element the reserve needed. Two
 * shards of one element; CPU 0 holds one, shard 1 holds the other. CPU 0
 * frees from CPU 1's side: its scan reads shard 1 (full), and just then
 * another allocation takes shard 1's element and frees it on CPU 0, into
 * shard 0. The scan then reads shard 0: full too. One look believes it and
 * hands the element to the allocator: the reserve is one short forever
 * (reserve-only: nothing refills it). The second look at the change
 * counters sees that both shards moved and scans again.
 */
struct MovingRoom {
	Mempool *pool;
	bool fired = false;
};

unsigned free_while_room_moves(bool single_look)
{
	user::CpuHintScope cpus;
	user::set_nr_cpus_for_test(2);
	Mempool pool;
	EXPECT_TRUE(pool.init(64, 2).is_ok());
	EXPECT_EQ(pool.shard_count(), 2u);
	pool.set_reserve_only(true);
	user::set_cpu_hint_for_test(0);
	void *mine = pool.alloc(AllocMode::NoWait); /* shard 0's element */
	EXPECT_EQ(pool.shard_level(0), 0u);

	MovingRoom move{&pool};
	auto shard_full = [](void *arg) {
		auto *m = static_cast<MovingRoom *>(arg);
		if (m->fired)
			return;
		m->fired = true; /* the scan has read shard 1 full; move the room */
		user::set_cpu_hint_for_test(1);
		void *other = m->pool->alloc(AllocMode::NoWait); /* empties shard 1 */
		user::set_cpu_hint_for_test(0);
		m->pool->free(other); /* fills shard 0 */
		user::set_cpu_hint_for_test(1);
	};
	Mempool::FreeHookForTest hook{&move, nullptr, false, shard_full, single_look};
	pool.set_free_hook_for_test(&hook);
	user::set_cpu_hint_for_test(1);
	pool.free(mine);
	pool.set_free_hook_for_test(nullptr);
	EXPECT_TRUE(move.fired);
	return pool.reserve_level();
}

TEST_F(MempoolTest, FreeFindsRoomThatMovesAheadOfItsScan)
{
	EXPECT_EQ(free_while_room_moves(false), 2u);
}

TEST_F(MempoolTest, NegativeControlOneLookFullCheckDropsAReserveElement)
{
	EXPECT_EQ(free_while_room_moves(true), 1u) << "one look must be caught dropping the element";
}

/*
 * Many threads on a reserve-only pool, each on a changing CPU hint, taking
 * one element (sleeping) and sometimes a second without waiting: every
 * element stays in the pool (none to the allocator, none lost), the shards
 * end full, and every allocation is matched by a free.
 */
TEST_F(MempoolTest, StressReserveOnlyAcrossShardsExactAccounting)
{
	user::CpuHintScope cpus;
	user::set_nr_cpus_for_test(4);
	constexpr unsigned min_nr = 6; /* shards of 2, 2, 1, 1 */
	Mempool pool;
	ASSERT_TRUE(pool.init(64, min_nr).is_ok());
	pool.set_reserve_only(true);
	uint64_t live = user::alloc_stats().live;
	constexpr int threads = 8, rounds = 4000;
	std::atomic<uint64_t> allocs{0}, frees{0}, second{0};
	std::vector<std::thread> ts;
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&, t] {
			std::minstd_rand rng(unsigned(t) + 1);
			for (int i = 0; i < rounds; i++) {
				user::set_cpu_hint_for_test(int(rng() % 4));
				auto *e = static_cast<u64 *>(pool.alloc(AllocMode::Sleep));
				ASSERT_NE(e, nullptr);
				allocs++;
				*e = u64(t) << 32 | unsigned(i); /* ours alone while held */
				void *extra = nullptr;
				if (rng() % 4 == 0 && (extra = pool.alloc(AllocMode::NoWait)) != nullptr) {
					allocs++;
					second++;
				}
				user::set_cpu_hint_for_test(int(rng() % 4));
				ASSERT_EQ(*e, u64(t) << 32 | unsigned(i));
				pool.free(e);
				frees++;
				if (extra) {
					pool.free(extra);
					frees++;
				}
			}
			user::set_cpu_hint_for_test(-1);
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(allocs.load(), frees.load());
	EXPECT_GT(second.load(), 0u);
	EXPECT_EQ(pool.reserve_level(), min_nr);
	for (unsigned i = 0; i < pool.shard_count(); i++)
		EXPECT_EQ(pool.shard_level(i), i < 2 ? 2u : 1u) << "shard " << i;
	EXPECT_EQ(user::alloc_stats().live, live) << "a reserve element went to the allocator";
	EXPECT_EQ(pool.waiting(), 0u);
}

/* ---- per-CPU counter ---------------------------------------------------------- */

TEST_F(MempoolTest, PercpuCounterSumsEveryCpusAddsExactly)
{
	user::CpuHintScope cpus;
	user::set_nr_cpus_for_test(3);
	PercpuCounter c;
	ASSERT_TRUE(c.init().is_ok());
	EXPECT_EQ(c.sum(), 0u);
	constexpr int threads = 4, per = 20000;
	std::vector<std::thread> ts;
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&c, t] {
			for (int i = 0; i < per; i++) {
				/* Hints beyond nr_cpus, and threads sharing a slot: still exact. */
				user::set_cpu_hint_for_test((t + i) % 5);
				c.add(2);
			}
			user::set_cpu_hint_for_test(-1);
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(c.sum(), u64(threads) * per * 2);
}

TEST_F(MempoolTest, PercpuCounterInitFailureIsReported)
{
	user::AllocFaultScope faults;
	user::fail_nth_alloc(0);
	PercpuCounter c;
	EXPECT_EQ(c.init().error_code(), -ENOMEM);
}

} // namespace
} // namespace dmxx::test
