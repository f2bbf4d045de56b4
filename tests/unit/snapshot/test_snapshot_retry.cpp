// SPDX-License-Identifier: GPL-2.0
/*
 * The completion path of a copy: at queue depth 1 the commit and the
 * resubmission of the origin write that waited for it happen on the thread
 * that finished the copy (no worker hops), and fall back to the workers
 * whenever that thread would have to sleep -- above all for the origin's
 * rwsem, where sleeping in the completion path is the 2018/2019 deadlock.
 */
#include "persistent_store.h"
#include "snap_fixture.h"

#include <dmxx/user/watch.h>

#include <chrono>

using namespace dmxx;
using namespace dmxx::test;
using namespace std::chrono_literals;

namespace {

class SnapRetry : public SnapTest {};

/* One write at a time: every commit is inline, every released write resubmitted inline. */
TEST_F(SnapRetry, DepthOneCommitsAndResubmitsInline)
{
	auto o = disk(1024), c = disk(1024);
	auto gate = std::make_unique<GateDisk>(unique_name("gate"), c.get(), true, false);
	auto origin = dm(origin_table(o.get()));
	auto s = dm(snap_table(o.get(), gate.get(), "P 8"));
	ASSERT_TRUE(origin && s);
	auto *ps = static_cast<snap::PersistentStore *>(snapshot_of(s.get())->store());
	u64 inline0 = snap::g_registry->retried_inline.load(), worker0 = snap::g_registry->retried_by_worker.load();

	/* The gate holds each copy until the write surely waits on it (else it may never wait). */
	for (sector_t sec = 0; sec < 64; sec += 8) {
		gate->close();
		std::thread w([&] {
			user::set_thread_name("W");
			write(origin.get(), sec, pattern(sec, 4096, 7));
		});
		ASSERT_TRUE(gate->wait_held(1));
		/* Mapped and parked on the pending exception: the writer waits for its bio. */
		ASSERT_TRUE(eventually([&] { return thread_blocked_in("W", "wait_for_completion"); }));
		gate->open();
		w.join();
	}

	EXPECT_EQ(snap::g_registry->retried_inline.load() - inline0, 8u);
	EXPECT_EQ(snap::g_registry->retried_by_worker.load() - worker0, 0u);
	EXPECT_EQ(ps->inline_commits(), 8u);
	EXPECT_EQ(ps->worker_commits(), 0u);
	/* And it is all still right: the snapshot reads the old data, the origin the new. */
	EXPECT_EQ(read(s.get(), 0, 4096), std::vector<u8>(4096, 0));
	EXPECT_EQ(read(origin.get(), 56, 4096), pattern(56, 4096, 7));
}

/*
 * A table load holds (or waits for) the origin's rwsem in write mode when a
 * copy finishes: the completing thread must not wait for it. The released
 * write goes to the retry worker, which completes it once the lock is free.
 * (A completion path that took the rwsem with a sleeping down_read would
 * leave retried_by_worker at 0 -- and, with a writer-preferring rwsem and a
 * writer that waits for this copy, deadlock.)
 */
TEST_F(SnapRetry, WriterOnTheRwsemSendsTheWriteToTheRetryWorker)
{
	auto o = disk(1024), c = disk(1024);
	auto gate = std::make_unique<GateDisk>(unique_name("gate"), c.get(), true, false);
	auto origin = dm(origin_table(o.get()));
	auto s = dm(snap_table(o.get(), gate.get(), "P 8"));
	ASSERT_TRUE(origin && s);
	u64 inline0 = snap::g_registry->retried_inline.load(), worker0 = snap::g_registry->retried_by_worker.load();

	gate->close();
	std::atomic<bool> done{false};
	std::thread w([&] {
		write(origin.get(), 0, pattern(0, 4096, 9));
		done = true;
	});
	ASSERT_TRUE(gate->wait_held(1)); /* the copy's COW write */

	auto entry = snap::origin_get(o.get());
	ASSERT_TRUE(entry.is_ok());
	snap::OriginEntry *e = entry.value();
	e->lock.lock(); /* what a snapshot constructor does */
	gate->open();
	EXPECT_TRUE(eventually([&] { return snap::g_registry->retried_by_worker.load() - worker0 == 1; }));
	EXPECT_EQ(snap::g_registry->retried_inline.load() - inline0, 0u);
	EXPECT_FALSE(done.load()); /* the retry worker waits for the lock */
	e->lock.unlock();
	w.join();
	EXPECT_TRUE(done.load());
	snap::origin_put(e);
	EXPECT_EQ(read(s.get(), 0, 4096), std::vector<u8>(4096, 0));
	EXPECT_EQ(read(origin.get(), 0, 4096), pattern(0, 4096, 9));
}

/*
 * Many copies at once: commits are grouped on the worker, not done one by
 * one inline. The gate lets the 16 copies through but holds the first area
 * write, so every other commit queues behind it: two area writes in all.
 */
TEST_F(SnapRetry, ConcurrentCopiesAreGroupCommitted)
{
	auto o = disk(4096), c = disk(4096);
	auto gate = std::make_unique<GateDisk>(unique_name("gate"), c.get(), true, false);
	auto origin = dm(origin_table(o.get()));
	auto s = dm(snap_table(o.get(), gate.get(), "P 8"));
	ASSERT_TRUE(origin && s);
	auto *ps = static_cast<snap::PersistentStore *>(snapshot_of(s.get())->store());

	gate->close();
	std::vector<std::thread> ws;
	for (int i = 0; i < 16; i++)
		ws.emplace_back([&, i] { write(origin.get(), sector_t(i) * 8, pattern(sector_t(i) * 8, 4096, 3)); });
	ASSERT_TRUE(gate->wait_held(16)); /* every copy's COW write is held */
	gate->release(16);
	ASSERT_TRUE(gate->wait_held(1)); /* the first area write */
	ASSERT_TRUE(eventually([&] { return snapshot_of(s.get())->engine().stats().jobs == 16; }));
	gate->open();
	for (auto &t : ws)
		t.join();
	EXPECT_EQ(snapshot_of(s.get())->complete_chunks(), 16u);
	EXPECT_LE(ps->inline_commits() + ps->worker_commits(), 2u);
	EXPECT_EQ(ps->inline_commits(), 0u);
	for (int i = 0; i < 16; i++)
		EXPECT_EQ(read(s.get(), sector_t(i) * 8, 4096), std::vector<u8>(4096, 0));
}

/*
 * The pending-exception pool runs dry: the origin write sleeps for an
 * element holding no lock (a snapshot can be loaded meanwhile, which takes
 * the origin's rwsem for write), and completes once an element is freed.
 */
TEST_F(SnapRetry, DryPoolSleepsHoldingNothing)
{
	auto o = disk(1024), c = disk(1024), c2 = disk(1024);
	auto origin = dm(origin_table(o.get()));
	auto s = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && s);
	Mempool &pool = snap::g_registry->pending_pool;
	pool.set_reserve_only(true);
	std::vector<void *> taken;
	while (void *e = pool.alloc(AllocMode::NoWait))
		taken.push_back(e);
	ASSERT_EQ(taken.size(), pool.min_nr());

	std::atomic<bool> done{false};
	std::thread w([&] {
		user::set_thread_name("W");
		write(origin.get(), 0, pattern(0, 4096, 5));
		done = true;
	});
	ASSERT_TRUE(eventually([&] { return pool.waiting() == 1; }));
	auto s2 = dm(snap_table(o.get(), c2.get(), "P 8")); /* needs the rwsem in write mode */
	EXPECT_TRUE(s2);
	EXPECT_FALSE(done.load());
	pool.free(taken.back());
	taken.pop_back();
	w.join();
	EXPECT_TRUE(done.load());
	pool.set_reserve_only(false);
	for (void *e : taken)
		pool.free(e);
	EXPECT_EQ(read(s.get(), 0, 4096), std::vector<u8>(4096, 0));
	EXPECT_EQ(read(origin.get(), 0, 4096), pattern(0, 4096, 5));
}

} // namespace
