// SPDX-License-Identifier: GPL-2.0
/*
 * The COW throttle: the 2019 deadlock (seed 001) reproduced under the 2018
 * semaphore design and absent from ours; writes that need no copy are not
 * held back (the 2019 design holds them); grants go one at a time and the
 * in-flight count stays within the limit.
 *
 * Every scenario is sequenced by events, not by timing: a copy is held in
 * flight by a gate on the COW device, and each step waits (with a deadline)
 * until the previous thread is observed blocked where the scenario needs it.
 */
#include "../harness/watchdog.h"
#include "snap_fixture.h"

#include <dmxx/user/watch.h>

#include <chrono>

using namespace dmxx;
using namespace dmxx::test;
using namespace std::chrono_literals;
using snap::ThrottleMode;

namespace {

/* Wait for a condition that no platform event announces (a thread going to sleep). */

class SnapThrottle : public SnapTest {};

/*
 * The 2019 report, step by step, with snapshot_cow_threshold = 1:
 *  1. W1 writes origin chunk 0: its copy starts and is held at the COW gate.
 *  2. W2 writes origin chunk 1: a second copy is over the limit, W2 waits.
 *  3. C loads a new snapshot of the same origin: it needs the origin's lock
 *     in write mode.
 *  4. The gate opens: W1's copy completes and its completion must walk the
 *     origin's snapshots again for W1's bio (read mode).
 * 2018: W2 sleeps in down() holding the lock for read, C queues for write,
 * the completion's read queues behind C (writer-preferring), and the up()
 * that would wake W2 comes after it: nothing can move, whatever the timing.
 * Ours: W2 sleeps holding nothing, C goes through, the completion grants
 * W2 its slot.
 */
struct Scenario2019 {
	SnapTest *t;
	std::unique_ptr<user::MemDisk> o, c, c2;
	std::unique_ptr<GateDisk> gate;
	std::unique_ptr<user::DmDevice> origin, s1, s2;
	std::thread w1, w2, ctr;
	std::atomic<int> done{0};

	void start_writer(std::thread &th, const char *name, sector_t sector)
	{
		th = std::thread([this, name, sector] {
			user::set_thread_name(name);
			auto data = pattern(sector, 4096, 3);
			EXPECT_EQ(user::sync_write(origin.get(), sector, data.data(), 4096), DMXX_BLK_STS_OK);
			done.fetch_add(1);
			Watchdog::poke();
		});
	}
	void join()
	{
		for (auto *th : {&w1, &w2, &ctr})
			if (th->joinable())
				th->join();
	}
};

/* Runs the scenario; returns the watchdog's verdict on "all three finished". */
Watchdog::Outcome run_2019_scenario(ThrottleMode mode, std::string *dump)
{
	snap::set_throttle_mode_for_test(mode);
	dmxx_user_param_set_uint("snapshot_cow_threshold", 1);
	Scenario2019 s;
	s.o = SnapTest::disk(1024);
	s.c = SnapTest::disk(1024);
	s.c2 = SnapTest::disk(1024);
	s.gate = std::make_unique<GateDisk>(unique_name("gate"), s.c.get(), true, false);
	s.origin = SnapTest::dm("0 1024 snapshot-origin " + s.o->dev_name());
	s.s1 = SnapTest::dm("0 1024 snapshot " + s.o->dev_name() + " " + s.gate->dev_name() + " N 8");
	EXPECT_TRUE(s.origin && s.s1);
	snap::Snapshot *s1 = snapshot_of(s.s1.get());

	s.gate->close();
	s.start_writer(s.w1, "W1", 0);
	EXPECT_TRUE(s.gate->wait_held(1)); /* W1's copy is in flight */
	s.start_writer(s.w2, "W2", 8);
	if (mode == ThrottleMode::Semaphore2018) {
		EXPECT_TRUE(eventually([&] { return s1->throttle().legacy_sleepers() == 1; }));
	} else if (mode == ThrottleMode::Ours) {
		EXPECT_TRUE(eventually([&] { return s1->throttle().sleepers() == 1; }));
	} else {
		EXPECT_TRUE(eventually([&] { return s1->throttle().legacy_sleepers() == 1 || s.gate->held() == 2; }));
	}
	s.ctr = std::thread([&] {
		user::set_thread_name("C");
		s.s2 = SnapTest::dm("0 1024 snapshot " + s.o->dev_name() + " " + s.c2->dev_name() + " N 8");
		s.done.fetch_add(1);
		Watchdog::poke();
	});
	if (mode == ThrottleMode::Semaphore2018) {
		EXPECT_TRUE(eventually([&] { return thread_blocked_in("C", "down_write"); }));
	}
	s.gate->open();

	Watchdog w(1000ms);
	auto outcome = w.wait_for([&] { return s.done.load() == 3; });
	*dump = w.dump();
	if (outcome != Watchdog::Outcome::Completed) {
		/* Un-stick the negative control: room for W2, and wake it to see it. */
		dmxx_user_param_set_uint("snapshot_cow_threshold", 100);
		s1->throttle().kick_for_test();
		EXPECT_EQ(w.wait_for([&] { return s.done.load() == 3; }), Watchdog::Outcome::Completed) << w.dump();
	}
	s.join();
	s.s2.reset();
	s.s1.reset();
	s.origin.reset();
	s.gate.reset();
	return outcome;
}

} // namespace

TEST_F(SnapThrottle, Deadlock2019_SemaphoreDesignStalls)
{
	std::string dump;
	ASSERT_EQ(run_2019_scenario(ThrottleMode::Semaphore2018, &dump), Watchdog::Outcome::Stalled);
	/* The cycle, as the dump shows it: C waits to write-lock, the copy's completion to read-lock. */
	EXPECT_NE(dump.find("thread C: BLOCKED in down_write"), std::string::npos) << dump;
	EXPECT_NE(dump.find("BLOCKED in down_read"), std::string::npos) << dump;
	EXPECT_NE(dump.find("thread W2: BLOCKED in wait_sleep"), std::string::npos) << dump;
}

TEST_F(SnapThrottle, Deadlock2019_OursCompletes)
{
	std::string dump;
	EXPECT_EQ(run_2019_scenario(ThrottleMode::Ours, &dump), Watchdog::Outcome::Completed) << dump;
}

TEST_F(SnapThrottle, Deadlock2019_KernelFixCompletes)
{
	std::string dump;
	EXPECT_EQ(run_2019_scenario(ThrottleMode::Kernel2019, &dump), Watchdog::Outcome::Completed) << dump;
}

namespace {

/*
 * Threshold 1, two copies wanted (chunks 0 and 1), a third chunk (5)
 * copied beforehand. Returns whether a write to chunk 5 -- which needs no
 * copy -- was held in the throttle while the copies were in flight.
 */
bool nocopy_write_was_delayed(ThrottleMode mode)
{
	snap::set_throttle_mode_for_test(mode);
	dmxx_user_param_set_uint("snapshot_cow_threshold", 1);
	auto o = SnapTest::disk(1024), c = SnapTest::disk(1024);
	auto gate = std::make_unique<GateDisk>(unique_name("gate"), c.get(), true, false);
	auto origin = SnapTest::dm("0 1024 snapshot-origin " + o->dev_name());
	auto sd = SnapTest::dm("0 1024 snapshot " + o->dev_name() + " " + gate->dev_name() + " N 8");
	snap::Snapshot *s = snapshot_of(sd.get());
	auto data = pattern(0, 4096, 9);
	EXPECT_EQ(user::sync_write(origin.get(), 40, data.data(), 4096), DMXX_BLK_STS_OK); /* chunk 5 copied */

	gate->close();
	std::atomic<int> done{0};
	auto writer = [&](sector_t sector) {
		return std::thread([&, sector] {
			auto d = pattern(sector, 4096, 10);
			EXPECT_EQ(user::sync_write(origin.get(), sector, d.data(), 4096), DMXX_BLK_STS_OK);
			done.fetch_add(1);
		});
	};
	std::thread a = writer(0);
	EXPECT_TRUE(gate->wait_held(1));
	std::thread b = writer(8);
	if (mode == ThrottleMode::Ours) {
		EXPECT_TRUE(eventually([&] { return s->throttle().sleepers() == 1; })); /* b waits for a slot */
	} else {
		EXPECT_TRUE(gate->wait_held(2)); /* 2019 lets the second copy through (limit + 1) */
	}

	/* A write to the copied chunk, and one joining chunk 0's copy in flight. */
	std::thread nocopy = writer(40);
	std::thread joiner = writer(0);
	bool delayed;
	if (mode == ThrottleMode::Ours) {
		/* It completes with both copies still held at the gate. */
		delayed = !eventually([&] { return done.load() >= 1; });
		/* The joiner never asked for a slot: still only b sleeps in the throttle. */
		EXPECT_EQ(s->throttle().sleepers(), 1u);
		EXPECT_LE(s->throttle().max_in_flight(), 1u);
	} else {
		delayed = eventually([&] { return s->throttle().legacy_sleepers() >= 1; });
		EXPECT_EQ(done.load(), 0);
	}
	gate->open();
	for (auto *t : {&a, &b, &nocopy, &joiner})
		t->join();
	EXPECT_EQ(done.load(), 4);
	sd.reset();
	origin.reset();
	return delayed;
}

} // namespace

TEST_F(SnapThrottle, WritesNeedingNoCopyAreNotDelayed) { EXPECT_FALSE(nocopy_write_was_delayed(ThrottleMode::Ours)); }

TEST_F(SnapThrottle, Kernel2019DelaysWritesNeedingNoCopy)
{
	EXPECT_TRUE(nocopy_write_was_delayed(ThrottleMode::Kernel2019));
}

/* Eight writers, two slots: each finished copy wakes exactly one writer, and never a third copy. */
TEST_F(SnapThrottle, GrantsOneAtATimeWithinTheLimit)
{
	dmxx_user_param_set_uint("snapshot_cow_threshold", 2);
	auto o = disk(1024), c = disk(1024);
	auto gate = std::make_unique<GateDisk>(unique_name("gate"), c.get(), true, false);
	auto origin = dm(origin_table(o.get()));
	auto sd = dm("0 1024 snapshot " + o->dev_name() + " " + gate->dev_name() + " N 8");
	snap::Snapshot *s = snapshot_of(sd.get());
	gate->close();
	constexpr int n = 8;
	std::vector<std::thread> ws;
	std::atomic<int> done{0};
	for (int i = 0; i < n; i++)
		ws.emplace_back([&, i] {
			auto d = pattern(i * 8, 4096, 11);
			EXPECT_EQ(user::sync_write(origin.get(), sector_t(i) * 8, d.data(), 4096), DMXX_BLK_STS_OK);
			done.fetch_add(1);
		});
	ASSERT_TRUE(eventually([&] { return gate->held() == 2 && s->throttle().sleepers() == n - 2; }));
	for (int k = n - 2; k > 0; k--) {
		gate->release(1); /* one copy finishes... */
		/* ...one sleeper is granted, its copy takes the freed place. */
		ASSERT_TRUE(eventually([&] { return s->throttle().sleepers() == unsigned(k - 1) && gate->held() == 2; }))
			<< "sleepers " << s->throttle().sleepers() << " held " << gate->held();
		EXPECT_EQ(s->throttle().in_flight(), 2u);
	}
	gate->open();
	for (auto &t : ws)
		t.join();
	EXPECT_EQ(done.load(), n);
	EXPECT_EQ(s->throttle().max_in_flight(), 2u);
	EXPECT_EQ(s->throttle().in_flight(), 0u);
	auto snapview = read(sd.get(), 0, n * 4096);
	EXPECT_EQ(snapview, std::vector<u8>(n * 4096, 0));
	sd.reset();
	origin.reset();
}

/* The threshold is read at each decision: raising it at runtime releases sleepers. */
TEST_F(SnapThrottle, ThresholdIsReadLive)
{
	dmxx_user_param_set_uint("snapshot_cow_threshold", 1);
	auto o = disk(1024), c = disk(1024);
	auto gate = std::make_unique<GateDisk>(unique_name("gate"), c.get(), true, false);
	auto origin = dm(origin_table(o.get()));
	auto sd = dm("0 1024 snapshot " + o->dev_name() + " " + gate->dev_name() + " N 8");
	snap::Snapshot *s = snapshot_of(sd.get());
	gate->close();
	std::vector<std::thread> ws;
	for (int i = 0; i < 3; i++)
		ws.emplace_back([&, i] {
			auto d = pattern(i * 8, 4096, 12);
			EXPECT_EQ(user::sync_write(origin.get(), sector_t(i) * 8, d.data(), 4096), DMXX_BLK_STS_OK);
		});
	ASSERT_TRUE(eventually([&] { return gate->held() == 1 && s->throttle().sleepers() == 2; }));
	dmxx_user_param_set_uint("snapshot_cow_threshold", 3);
	gate->release(1); /* the release hands out every slot the new limit allows */
	ASSERT_TRUE(eventually([&] { return s->throttle().sleepers() == 0; }));
	gate->open();
	for (auto &t : ws)
		t.join();
	sd.reset();
	origin.reset();
}
