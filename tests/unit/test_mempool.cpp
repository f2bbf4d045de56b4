// SPDX-License-Identifier: GPL-2.0
/*
 * Mempool: the reserve guarantees progress, the first try never sleeps,
 * waiting holds no lock, and every element comes back (ASan checks leaks).
 */
#include "helpers.h"

#include <mempool.h>

#include <atomic>
#include <chrono>
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
	for (uint64_t n = 0; n < 4; n++) {
		user::AllocFaultScope faults;
		user::fail_nth_alloc(n);
		Mempool pool;
		EXPECT_EQ(pool.init(128, 3).error_code(), -ENOMEM) << "failing allocation " << n;
	}
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

} // namespace
} // namespace dmxx::test
