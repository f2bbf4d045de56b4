// SPDX-License-Identifier: GPL-2.0
/* The copy engine (dm_core/copy/copy_engine.h) and block_io_sync, over MemDisks. */
#include "../helpers.h"

#include "block_io.h"
#include "copy_engine.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace dmxx;
using dmxx::test::pattern;
using dmxx::user::MemDisk;
using namespace std::chrono_literals;

namespace {

std::atomic<unsigned> g_id{0};

std::unique_ptr<MemDisk> disk(sector_t sectors, bool async = false)
{
	MemDisk::Options o;
	o.async = async;
	return MemDisk::create("ce" + std::to_string(g_id.fetch_add(1)), sectors, o);
}

/* Callbacks land here; waits with a deadline, never sleeps to poll. */
struct Calls {
	std::mutex lock;
	std::condition_variable cv;
	std::vector<std::pair<int, int>> seen; /* (tag, error) in callback order */
	bool may_sleep_everywhere = true;

	static void done(CopyJob *, int error, void *ctx)
	{
		auto *tc = static_cast<std::pair<Calls *, int> *>(ctx);
		Calls *c = tc->first;
		bool ok = dmxx_may_sleep() != 0;
		std::lock_guard<std::mutex> g(c->lock);
		if (!ok)
			c->may_sleep_everywhere = false;
		c->seen.push_back({tc->second, error});
		c->cv.notify_all();
	}
	bool wait_for(size_t n)
	{
		std::unique_lock<std::mutex> g(lock);
		return cv.wait_for(g, 10s, [&] { return seen.size() >= n; });
	}
};

class CopyEngineTest : public dmxx::test::DmxxTest {};

} // namespace

TEST_F(CopyEngineTest, CopiesARangeInPieces)
{
	auto src = disk(4096), dst = disk(4096);
	auto data = pattern(100, 1000 * 512, 3);
	src->write_raw(100, data.data(), data.size());
	{
		CopyEngine e;
		ASSERT_TRUE(e.init("ce-copy", {4, 64}).is_ok());
		Calls calls;
		std::pair<Calls *, int> ctx{&calls, 1};
		CopyJob job;
		e.copy(&job, {src.get(), 100, 1000}, {dst.get(), 2000, 0}, &Calls::done, &ctx);
		ASSERT_TRUE(calls.wait_for(1));
		EXPECT_EQ(calls.seen[0].second, 0);
		EXPECT_TRUE(calls.may_sleep_everywhere) << "callbacks run in process context";
		e.drain();
		/* 1000 sectors in pieces of 64: 15 full and one of 40; a read and a write each. */
		EXPECT_EQ(e.stats().pieces, 16u);
		EXPECT_EQ(e.stats().bios, 32u);
		EXPECT_LE(e.stats().max_busy_slots, 4u);
		EXPECT_EQ(e.busy_slots(), 0u);
	}
	std::vector<u8> got(data.size());
	dst->read_raw(2000, got.data(), got.size());
	EXPECT_EQ(got, data);
	/* Nothing around the destination was touched. */
	std::vector<u8> before(512), zero(512, 0);
	dst->read_raw(1999, before.data(), 512);
	EXPECT_EQ(before, zero);
	dst->read_raw(3000, before.data(), 512);
	EXPECT_EQ(before, zero);
}

TEST_F(CopyEngineTest, ZeroesARange)
{
	auto dst = disk(1024);
	auto junk = pattern(0, 1024 * 512, 9);
	dst->write_raw(0, junk.data(), junk.size());
	CopyEngine e;
	ASSERT_TRUE(e.init("ce-zero", {2, 32}).is_ok());
	Calls calls;
	std::pair<Calls *, int> ctx{&calls, 1};
	CopyJob job;
	e.zero(&job, {dst.get(), 10, 100}, &Calls::done, &ctx);
	ASSERT_TRUE(calls.wait_for(1));
	EXPECT_EQ(calls.seen[0].second, 0);
	e.drain();
	std::vector<u8> got(1024 * 512);
	dst->read_raw(0, got.data(), got.size());
	for (size_t i = 0; i < got.size(); i++) {
		bool inside = i >= 10 * 512 && i < 110 * 512;
		ASSERT_EQ(got[i], inside ? 0 : junk[i]) << "byte " << i;
	}
	EXPECT_EQ(dst->counters().reads, 0u);
}

/* Many jobs, few slots, disks completing on their own thread: bounded and all correct. */
TEST_F(CopyEngineTest, InFlightNeverExceedsTheSlots)
{
	auto src = disk(8192, true), dst = disk(8192, true);
	auto data = pattern(0, 8192 * 512, 5);
	src->write_raw(0, data.data(), data.size());
	CopyEngine e;
	ASSERT_TRUE(e.init("ce-bound", {3, 16}).is_ok());
	constexpr int n = 64;
	Calls calls;
	std::vector<std::pair<Calls *, int>> ctx(n);
	std::vector<CopyJob> jobs(n);
	for (int i = 0; i < n; i++) {
		ctx[i] = {&calls, i};
		e.copy(&jobs[i], {src.get(), sector_t(i) * 128, 128}, {dst.get(), sector_t(i) * 128, 0},
		       &Calls::done, &ctx[i]);
	}
	ASSERT_TRUE(calls.wait_for(n));
	e.drain();
	EXPECT_LE(e.stats().max_busy_slots, 3u);
	EXPECT_EQ(e.stats().jobs, u64(n));
	/* Slots are handed out FIFO and each job fills them in turn: callbacks in order. */
	for (int i = 0; i < n; i++) {
		EXPECT_EQ(calls.seen[i].first, i);
		EXPECT_EQ(calls.seen[i].second, 0);
	}
	std::vector<u8> got(data.size());
	dst->read_raw(0, got.data(), got.size());
	EXPECT_EQ(got, data);
	EXPECT_EQ(e.bio_set()->stats().allocs, e.stats().bios);
}

TEST_F(CopyEngineTest, ReadAndWriteErrorsReachTheCallback)
{
	auto src = disk(1024), dst = disk(1024);
	CopyEngine e;
	ASSERT_TRUE(e.init("ce-err", {2, 8}).is_ok());
	Calls calls;
	std::pair<Calls *, int> c1{&calls, 1}, c2{&calls, 2}, c3{&calls, 3};
	CopyJob j1, j2, j3;

	src->fail_range(40, 8, true, false);
	e.copy(&j1, {src.get(), 0, 64}, {dst.get(), 0, 0}, &Calls::done, &c1);
	ASSERT_TRUE(calls.wait_for(1));
	EXPECT_EQ(calls.seen[0], std::make_pair(1, -EIO));
	EXPECT_TRUE(j1.read_failed());
	EXPECT_FALSE(j1.write_failed());
	src->clear_faults();

	dst->fail_range(500, 8, false, true);
	e.copy(&j2, {src.get(), 480, 64}, {dst.get(), 480, 0}, &Calls::done, &c2);
	ASSERT_TRUE(calls.wait_for(2));
	EXPECT_EQ(calls.seen[1], std::make_pair(2, -EIO));
	EXPECT_FALSE(j2.read_failed());
	EXPECT_TRUE(j2.write_failed());

	/* The engine keeps working after failures. */
	dst->clear_faults();
	e.copy(&j3, {src.get(), 0, 64}, {dst.get(), 0, 0}, &Calls::done, &c3);
	ASSERT_TRUE(calls.wait_for(3));
	EXPECT_EQ(calls.seen[2], std::make_pair(3, 0));
	e.drain();
	EXPECT_EQ(e.busy_slots(), 0u);
}

/*
 * Fan-out: one read per piece, a write per destination; each further
 * destination is called back on its own engine, whose drain() waits for it.
 */
TEST_F(CopyEngineTest, FanOutReadsOnceAndWritesEveryDestination)
{
	auto src = disk(4096, true);
	std::unique_ptr<MemDisk> dst[3] = {disk(4096, true), disk(4096, true), disk(4096, true)};
	auto data = pattern(0, 200 * 512, 31);
	src->write_raw(300, data.data(), data.size());
	CopyEngine lead, home1, home2;
	ASSERT_TRUE(lead.init("ce-fan0", {4, 64}).is_ok());
	ASSERT_TRUE(home1.init("ce-fan1", {1, 8}).is_ok());
	ASSERT_TRUE(home2.init("ce-fan2", {1, 8}).is_ok());
	Calls calls;
	std::pair<Calls *, int> c0{&calls, 0}, c1{&calls, 1}, c2{&calls, 2};
	CopyJob j0, j1, j2;
	CopyJob *also = home2.attach(&j2, {dst[2].get(), 30, 0}, &Calls::done, &c2, nullptr);
	also = home1.attach(&j1, {dst[1].get(), 20, 0}, &Calls::done, &c1, also);
	lead.copy(&j0, {src.get(), 300, 200}, {dst[0].get(), 10, 0}, &Calls::done, &c0, also);
	home1.drain(); /* returns only once its destination was called back */
	home2.drain();
	lead.drain();
	ASSERT_TRUE(calls.wait_for(3));
	for (auto &[tag, error] : calls.seen)
		EXPECT_EQ(error, 0) << "destination " << tag;
	EXPECT_TRUE(calls.may_sleep_everywhere);
	/* 200 sectors in pieces of 64: 4 pieces, each read once and written three times. */
	EXPECT_EQ(src->counters().reads, 4u);
	EXPECT_EQ(lead.stats().pieces, 4u);
	EXPECT_EQ(lead.stats().bios, 16u);
	EXPECT_EQ(lead.stats().jobs, 1u);
	EXPECT_EQ(home1.stats().jobs, 1u);
	EXPECT_EQ(home1.stats().bios, 0u);
	EXPECT_EQ(home2.stats().jobs, 1u);
	const sector_t at[3] = {10, 20, 30};
	for (int i = 0; i < 3; i++) {
		std::vector<u8> got(data.size());
		dst[i]->read_raw(at[i], got.data(), got.size());
		EXPECT_EQ(got, data) << "destination " << i;
		EXPECT_EQ(dst[i]->counters().writes, 4u);
	}
}

/*
 * A destination whose write fails is the only one to fail; a failed read
 * fails them all; a write failure that stops the copy before its last
 * piece leaves no destination whole, so all fail.
 */
TEST_F(CopyEngineTest, FanOutErrorsFailTheDestinationsThatLackTheData)
{
	auto src = disk(1024), d0 = disk(1024), d1 = disk(1024);
	CopyEngine lead, home;
	ASSERT_TRUE(lead.init("ce-fanerr0", {1, 8}).is_ok());
	ASSERT_TRUE(home.init("ce-fanerr1", {1, 8}).is_ok());
	Calls calls;
	std::vector<std::pair<Calls *, int>> ctx(6);
	for (int i = 0; i < 6; i++)
		ctx[i] = {&calls, i};
	CopyJob j[6];
	auto run = [&](int first, sector_t count) {
		CopyJob *also = home.attach(&j[first + 1], {d1.get(), 0, 0}, &Calls::done, &ctx[first + 1], nullptr);
		lead.copy(&j[first], {src.get(), 0, count}, {d0.get(), 0, 0}, &Calls::done, &ctx[first], also);
		lead.drain();
		home.drain();
	};
	auto error_of = [&](int tag) {
		std::lock_guard<std::mutex> g(calls.lock);
		for (auto &[t, e] : calls.seen)
			if (t == tag)
				return e;
		return 1;
	};

	/* One piece, the further destination's write fails: only it fails. */
	d1->fail_range(0, 8, false, true);
	run(0, 8);
	EXPECT_EQ(error_of(0), 0);
	EXPECT_EQ(error_of(1), -EIO);
	EXPECT_TRUE(j[1].write_failed());
	d1->clear_faults();

	/* The read fails: both do. */
	src->fail_range(0, 8, true, false);
	run(2, 8);
	EXPECT_EQ(error_of(2), -EIO);
	EXPECT_EQ(error_of(3), -EIO);
	EXPECT_TRUE(j[2].read_failed());
	src->clear_faults();

	/* Three pieces through one slot; the first piece's write to d1 fails: the copy stops, both fail. */
	d1->fail_range(0, 8, false, true);
	run(4, 24);
	EXPECT_EQ(error_of(4), -EIO);
	EXPECT_EQ(error_of(5), -EIO);
	EXPECT_EQ(lead.stats().pieces, 1u + 1u + 1u) << "no piece dispatched after the failure";
	EXPECT_EQ(lead.busy_slots(), 0u);
	EXPECT_EQ(calls.seen.size(), 6u);
}

namespace {
struct Chain {
	CopyEngine *e;
	block_device *src, *dst;
	CopyJob job;
	int remaining;
	std::atomic<bool> finished{false};
	static void done(CopyJob *job, int error, void *ctx)
	{
		auto *c = static_cast<Chain *>(ctx);
		if (error || --c->remaining == 0) {
			c->finished.store(true);
			return;
		}
		sector_t s = sector_t(c->remaining) * 8;
		c->e->copy(job, {c->src, s, 8}, {c->dst, s, 0}, &Chain::done, c);
	}
};
} // namespace

/* A callback may start the next job with the same storage (the merge loop does). */
TEST_F(CopyEngineTest, CallbacksMayQueueMoreWork)
{
	auto src = disk(1024), dst = disk(1024);
	auto data = pattern(0, 1024 * 512, 2);
	src->write_raw(0, data.data(), data.size());
	CopyEngine e;
	ASSERT_TRUE(e.init("ce-chain", {1, 8}).is_ok());
	Chain c{&e, src.get(), dst.get(), {}, 20};
	c.e->copy(&c.job, {src.get(), 20 * 8, 8}, {dst.get(), 20 * 8, 0}, &Chain::done, &c);
	e.drain();
	EXPECT_TRUE(c.finished.load());
	std::vector<u8> got(21 * 8 * 512), want(data.begin() + 8 * 512, data.begin() + 21 * 8 * 512);
	dst->read_raw(8, got.data(), 20 * 8 * 512);
	got.resize(20 * 8 * 512);
	EXPECT_EQ(got, want);
}

/* complete_external from completion (atomic) context runs the callback on the worker. */
TEST_F(CopyEngineTest, ExternalCompletionsRunOnTheWorker)
{
	CopyEngine e;
	ASSERT_TRUE(e.init("ce-ext", {1, 8}).is_ok());
	Calls calls;
	std::pair<Calls *, int> c1{&calls, 7}, c2{&calls, 8};
	CopyJob j1, j2;
	{
		user::AtomicScope atomic;
		e.complete_external(&j1, 0, &Calls::done, &c1);
		e.complete_external(&j2, -EIO, &Calls::done, &c2);
	}
	ASSERT_TRUE(calls.wait_for(2));
	EXPECT_EQ(calls.seen[0], std::make_pair(7, 0));
	EXPECT_EQ(calls.seen[1], std::make_pair(8, -EIO));
	EXPECT_TRUE(calls.may_sleep_everywhere);
	e.drain();
}

TEST_F(CopyEngineTest, InitFailuresLeakNothing)
{
	for (uint64_t n = 0; n < 6; n++) {
		user::AllocFaultScope scope;
		user::fail_nth_alloc(n);
		CopyEngine e;
		(void)e.init("ce-fail", {2, 8});
	}
}

TEST_F(CopyEngineTest, ConcurrentSubmitters)
{
	auto src = disk(16384, true), dst = disk(16384, true);
	auto data = pattern(0, 16384 * 512, 11);
	src->write_raw(0, data.data(), data.size());
	CopyEngine e;
	ASSERT_TRUE(e.init("ce-mt", {8, 32}).is_ok());
	constexpr int threads = 4, per = 64;
	Calls calls;
	std::vector<std::pair<Calls *, int>> ctx(threads * per);
	std::vector<CopyJob> jobs(threads * per);
	std::vector<std::thread> ts;
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&, t] {
			for (int i = 0; i < per; i++) {
				int k = t * per + i;
				ctx[k] = {&calls, k};
				e.copy(&jobs[k], {src.get(), sector_t(k) * 64, 64}, {dst.get(), sector_t(k) * 64, 0},
				       &Calls::done, &ctx[k]);
			}
		});
	for (auto &t : ts)
		t.join();
	ASSERT_TRUE(calls.wait_for(threads * per));
	e.drain();
	std::vector<u8> got(data.size());
	dst->read_raw(0, got.data(), got.size());
	EXPECT_EQ(got, data);
	EXPECT_LE(e.stats().max_busy_slots, 8u);
}

TEST_F(CopyEngineTest, BlockIoSyncSplitsAndFlushes)
{
	auto d = disk(1024);
	BioSet set;
	ASSERT_TRUE(set.init("bio-sync", 2, 0, block_io_vecs(8192)).is_ok());
	std::vector<u8> buf = pattern(16, 40 * 512, 4);
	auto *mem = static_cast<u8 *>(dmxx_kvalloc(buf.size(), DMXX_ALLOC_SLEEP));
	memcpy(mem, buf.data(), buf.size());
	auto before = d->counters();
	ASSERT_TRUE(block_io_sync(set, d.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH | DMXX_REQ_FUA, 16, mem,
				  buf.size(), 8192)
			    .is_ok());
	auto after = d->counters();
	EXPECT_EQ(after.writes - before.writes, 3u); /* 20 KiB in 8 KiB bios */
	EXPECT_EQ(after.flushes - before.flushes, 1u);
	EXPECT_EQ(after.fua - before.fua, 3u);
	memset(mem, 0, buf.size());
	ASSERT_TRUE(block_io_sync(set, d.get(), DMXX_REQ_OP_READ, 16, mem, buf.size(), 8192).is_ok());
	EXPECT_EQ(memcmp(mem, buf.data(), buf.size()), 0);
	ASSERT_TRUE(block_flush_sync(set, d.get()).is_ok());
	EXPECT_EQ(d->counters().flushes - after.flushes, 1u);
	d->fail_range(30, 1, true, false);
	EXPECT_EQ(block_io_sync(set, d.get(), DMXX_REQ_OP_READ, 16, mem, buf.size(), 8192).error_code(), -EIO);
	dmxx_kvfree(mem);
}
