// SPDX-License-Identifier: GPL-2.0
/* Userspace platform: locks, completions and wait queues across threads. */
#include <dmxx/lock.h>

#include "helpers.h"

#include <atomic>
#include <chrono>
#include <thread>

using namespace dmxx;

namespace {

class Sync : public dmxx::test::DmxxTest {};

/* wait_event() as the core writes it: prepare, check, sleep, finish. */
template <typename Cond> void wait_event(dmxx_waitq *q, Cond cond)
{
	dmxx_wait_entry e;
	dmxx_wait_entry_init(&e);
	for (;;) {
		dmxx_wait_prepare(q, &e);
		if (cond())
			break;
		dmxx_wait_sleep(&e);
	}
	dmxx_wait_finish(q, &e);
}

} // namespace

TEST_F(Sync, LocksSerialiseCounters)
{
	SpinLock spin;
	Mutex mutex;
	RwSem sem;
	long a = 0, b = 0, c = 0;
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; t++)
		threads.emplace_back([&] {
			for (int i = 0; i < 2000; i++) {
				{
					Guard<SpinLock> g(spin);
					a++;
				}
				{
					IrqGuard g(spin);
					a++;
				}
				{
					Guard<Mutex> g(mutex);
					b++;
				}
				{
					Guard<RwSem> g(sem);
					c++;
				}
				{
					SharedGuard<RwSem> g(sem);
					(void)c;
				}
			}
		});
	for (auto &t : threads)
		t.join();
	EXPECT_EQ(a, 16000);
	EXPECT_EQ(b, 8000);
	EXPECT_EQ(c, 8000);
}

TEST_F(Sync, RwSemAllowsConcurrentReaders)
{
	RwSem sem;
	std::atomic<int> inside{0};
	std::atomic<bool> both{false};
	auto reader = [&] {
		SharedGuard<RwSem> g(sem);
		inside++;
		auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
		while (inside.load() < 2 && std::chrono::steady_clock::now() < deadline)
			std::this_thread::yield();
		if (inside.load() == 2)
			both = true;
	};
	std::thread r1(reader), r2(reader);
	r1.join();
	r2.join();
	EXPECT_TRUE(both.load());
}

TEST_F(Sync, CompletionBeforeWaitIsNotLost)
{
	dmxx_completion c;
	dmxx_completion_init(&c);
	dmxx_complete(&c);
	dmxx_wait_for_completion(&c);
	EXPECT_EQ(dmxx_wait_for_completion_timeout_ms(&c, 10), 0); /* consumed */
	dmxx_completion_destroy(&c);
}

TEST_F(Sync, CompletionWakesWaiterInAnotherThread)
{
	dmxx_completion c;
	dmxx_completion_init(&c);
	std::atomic<bool> done{false};
	std::thread t([&] {
		dmxx_wait_for_completion(&c);
		done = true;
	});
	std::this_thread::sleep_for(std::chrono::milliseconds(20));
	EXPECT_FALSE(done.load());
	dmxx_complete(&c);
	t.join();
	EXPECT_TRUE(done.load());
	dmxx_completion_destroy(&c);
}

TEST_F(Sync, CompleteCountsAndCompleteAllReleasesEveryone)
{
	dmxx_completion c;
	dmxx_completion_init(&c);
	dmxx_complete(&c);
	dmxx_complete(&c);
	EXPECT_EQ(dmxx_wait_for_completion_timeout_ms(&c, 0), 1);
	EXPECT_EQ(dmxx_wait_for_completion_timeout_ms(&c, 0), 1);
	EXPECT_EQ(dmxx_wait_for_completion_timeout_ms(&c, 0), 0);

	std::vector<std::thread> waiters;
	std::atomic<int> woken{0};
	for (int i = 0; i < 4; i++)
		waiters.emplace_back([&] {
			dmxx_wait_for_completion(&c);
			woken++;
		});
	dmxx_complete_all(&c);
	for (auto &t : waiters)
		t.join();
	EXPECT_EQ(woken.load(), 4);
	EXPECT_EQ(dmxx_wait_for_completion_timeout_ms(&c, 0), 1); /* stays done */
	dmxx_completion_destroy(&c);
}

TEST_F(Sync, CompletionTimeoutWaits)
{
	dmxx_completion c;
	dmxx_completion_init(&c);
	auto t0 = dmxx_now_ns();
	EXPECT_EQ(dmxx_wait_for_completion_timeout_ms(&c, 30), 0);
	EXPECT_GE(dmxx_now_ns() - t0, 29ull * 1000 * 1000);
	dmxx_completion_destroy(&c);
}

TEST_F(Sync, WaitQueueWakeAll)
{
	dmxx_waitq q;
	dmxx_waitq_init(&q);
	std::atomic<bool> flag{false};
	std::atomic<int> out{0};
	std::vector<std::thread> waiters;
	for (int i = 0; i < 3; i++)
		waiters.emplace_back([&] {
			wait_event(&q, [&] { return flag.load(); });
			out++;
		});
	std::this_thread::sleep_for(std::chrono::milliseconds(20));
	EXPECT_EQ(out.load(), 0);
	flag = true;
	dmxx_wake_up_all(&q);
	for (auto &t : waiters)
		t.join();
	EXPECT_EQ(out.load(), 3);
	dmxx_waitq_destroy(&q);
}

TEST_F(Sync, WaitQueueWakeOneWakesExactlyOne)
{
	dmxx_waitq q;
	dmxx_waitq_init(&q);
	std::atomic<int> ready{0};
	std::atomic<int> woken{0};
	/* The condition is true from the start: only a wake-up can end a sleep. */
	auto sleeper = [&] {
		dmxx_wait_entry e;
		dmxx_wait_entry_init(&e);
		dmxx_wait_prepare(&q, &e);
		ready++;
		dmxx_wait_sleep(&e);
		dmxx_wait_finish(&q, &e);
		woken++;
	};
	std::thread a(sleeper), b(sleeper);
	while (ready.load() < 2)
		std::this_thread::yield();
	dmxx_wake_up_one(&q);
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
	while (woken.load() < 1 && std::chrono::steady_clock::now() < deadline)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	std::this_thread::sleep_for(std::chrono::milliseconds(30));
	EXPECT_EQ(woken.load(), 1);
	dmxx_wake_up_one(&q);
	a.join();
	b.join();
	EXPECT_EQ(woken.load(), 2);
	dmxx_waitq_destroy(&q);
}

TEST_F(Sync, WakeBetweenPrepareAndSleepIsNotLost)
{
	dmxx_waitq q;
	dmxx_waitq_init(&q);
	dmxx_wait_entry e;
	dmxx_wait_entry_init(&e);
	dmxx_wait_prepare(&q, &e);
	dmxx_wake_up_one(&q);
	dmxx_wait_sleep(&e); /* returns at once */
	dmxx_wait_finish(&q, &e);
	/* finish without a wake-up unlinks the entry, so the queue can go */
	dmxx_wait_prepare(&q, &e);
	dmxx_wait_finish(&q, &e);
	dmxx_waitq_destroy(&q);
}

TEST_F(Sync, WaitEventWithProducerThread)
{
	dmxx_waitq q;
	dmxx_waitq_init(&q);
	SpinLock lock;
	int items = 0;
	int consumed = 0;
	std::thread producer([&] {
		for (int i = 0; i < 500; i++) {
			{
				Guard<SpinLock> g(lock);
				items++;
			}
			dmxx_wake_up_all(&q);
		}
	});
	while (consumed < 500) {
		wait_event(&q, [&] {
			Guard<SpinLock> g(lock);
			return items > 0;
		});
		Guard<SpinLock> g(lock);
		consumed += items;
		items = 0;
	}
	producer.join();
	EXPECT_EQ(consumed, 500);
	dmxx_waitq_destroy(&q);
}

using SyncDeathTest = Sync;

TEST_F(SyncDeathTest, DestroyingAQueueWithWaitersIsFatal)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			dmxx_waitq q;
			dmxx_waitq_init(&q);
			dmxx_wait_entry e;
			dmxx_wait_entry_init(&e);
			dmxx_wait_prepare(&q, &e);
			dmxx_waitq_destroy(&q);
		},
		"waiters remain");
}

TEST_F(SyncDeathTest, UnlockingAMutexHeldByAnotherThreadIsFatal)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			dmxx_mutex m;
			dmxx_mutex_init(&m);
			dmxx_mutex_unlock(&m);
		},
		"not held|unlock of an unlocked mutex");
}
