// SPDX-License-Identifier: GPL-2.0
/* snapshot-merge: merging the COW back into the origin, with I/O, suspend, reload and errors. */
#include "snap_fixture.h"

#include <dmxx/user/watch.h>

#include <chrono>
#include <random>

using namespace dmxx;
using namespace dmxx::test;
using namespace std::chrono_literals;

namespace {

bool blocked(const std::string &name)
{
	for (const auto &t : user::thread_reports())
		if (t.name == name && t.blocked)
			return true;
	return false;
}

/* "a/b c" -> a == c: only the metadata is left, the merge is done. */
bool merged(const std::string &st)
{
	unsigned long long a, b, c;
	return sscanf(st.c_str(), "%llu/%llu %llu", &a, &b, &c) == 3 && a == c;
}

unsigned long long allocated(const std::string &st)
{
	unsigned long long a = 0, b, c;
	sscanf(st.c_str(), "%llu/%llu %llu", &a, &b, &c);
	return a;
}

class SnapMerge : public SnapTest {
protected:
	static constexpr sector_t size = 2048;
	std::unique_ptr<user::MemDisk> o, c;
	std::vector<u8> view; /* the snapshot's view, which the merge must produce */

	/* An origin with a snapshot, origin writes (scattered and runs) and snapshot writes. */
	void make_history(const char *store = "P 8")
	{
		o = disk(size);
		c = disk(size);
		auto base = pattern(0, size * 512, 30);
		o->write_raw(0, base.data(), base.size());
		auto origin = dm(origin_table(o.get()));
		auto sn = dm(snap_table(o.get(), c.get(), store));
		ASSERT_TRUE(origin && sn);
		for (sector_t s = 0; s < 400; s += 24) /* every third chunk: runs of one */
			write(origin.get(), s, pattern(s, 8 * 512, 31));
		write(origin.get(), 800, pattern(800, 160 * 512, 32)); /* one run of 20 chunks */
		write(sn.get(), 1500, pattern(1500, 12 * 512, 33));     /* snapshot writes */
		write(sn.get(), 1603, pattern(1603, 1 * 512, 34));
		view = read(sn.get(), 0, size * 512);
		sn.reset();
		origin.reset();
	}
	std::unique_ptr<user::DmDevice> merge_dev(block_device *origin_dev, user::DmResult *r = nullptr)
	{
		return dm(snap_table(origin_dev, c.get(), "P 8", "snapshot-merge"), r);
	}
};

} // namespace

TEST_F(SnapMerge, MergesToTheSnapshotsView)
{
	make_history();
	auto m = merge_dev(o.get());
	ASSERT_TRUE(m);
	ASSERT_TRUE(eventually([&] { return merged(info(m.get())); })) << info(m.get());
	EXPECT_EQ(info(m.get()), "16/2048 16");
	EXPECT_EQ(raw(o.get(), 0, size * 512), view);
	EXPECT_EQ(read(m.get(), 0, size * 512), view);
	EXPECT_EQ(m->target(0)->num_flush_bios, 2u);
	EXPECT_EQ(m->status(DMXX_STATUSTYPE_TABLE),
		  "0 2048 snapshot-merge " + o->dev_name() + " " + c->dev_name() + " P 8");
	/* The store is empty now: a snapshot loaded on it copies afresh. */
	m.reset();
	auto origin = dm(origin_table(o.get()));
	auto sn = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && sn);
	EXPECT_EQ(info(sn.get()), "16/2048 16");
	EXPECT_EQ(read(sn.get(), 0, size * 512), view);
}

/* I/O through the merging device: whatever the merge is doing, the result is the view plus the writes. */
TEST_F(SnapMerge, WritesDuringTheMerge)
{
	make_history();
	auto gate = std::make_unique<GateDisk>(unique_name("ogate"), o.get(), true, false);
	gate->close(); /* the merge's first copy to the origin waits here */
	auto m = merge_dev(gate.get());
	ASSERT_TRUE(m);
	ASSERT_TRUE(gate->wait_held(1));
	auto expect = view;
	std::mt19937 rng(7);
	std::atomic<bool> writes_done{false};
	std::thread writer([&] {
		for (int i = 0; i < 200; i++) {
			sector_t s = rng() % (size - 16);
			u32 n = 1 + rng() % 16;
			auto d = pattern(s, n * 512, 100 + i);
			EXPECT_EQ(user::sync_write(m.get(), s, d.data(), n * 512), DMXX_BLK_STS_OK);
			std::copy(d.begin(), d.end(), expect.begin() + s * 512);
			auto got = read(m.get(), s, n * 512);
			EXPECT_EQ(got, d) << "read back at " << s;
		}
		writes_done.store(true);
	});
	/* Let the merge trickle while the writer runs. */
	while (!writes_done.load()) {
		gate->release(1);
		std::this_thread::yield();
	}
	writer.join();
	gate->open();
	ASSERT_TRUE(eventually([&] { return merged(info(m.get())); })) << info(m.get());
	EXPECT_EQ(read(m.get(), 0, size * 512), expect);
	m.reset();
	EXPECT_EQ(raw(o.get(), 0, size * 512), expect);
}

TEST_F(SnapMerge, SuspendStopsAndResumeOrReloadContinues)
{
	make_history();
	auto gate = std::make_unique<GateDisk>(unique_name("ogate"), o.get(), true, false);
	gate->close();
	auto m = merge_dev(gate.get());
	ASSERT_TRUE(m);
	ASSERT_TRUE(gate->wait_held(1));
	auto start = allocated(info(m.get()));

	/* Suspend waits for the step in flight, then the merge rests. */
	std::atomic<bool> done{false};
	std::thread susp([&] {
		user::set_thread_name("suspender");
		EXPECT_TRUE(m->suspend().ok());
		done.store(true);
	});
	/* Only once suspend waits for the step in flight may that step go on. */
	ASSERT_TRUE(eventually([] { return blocked("suspender"); }));
	while (!done.load()) { /* the step's copy and flush go through the gate */
		gate->release(1);
		std::this_thread::yield();
	}
	susp.join();
	auto paused = allocated(info(m.get()));
	EXPECT_LT(paused, start);
	gate->open();
	EXPECT_EQ(allocated(info(m.get())), paused) << "no merging while suspended";
	EXPECT_EQ(gate->held(), 0u);

	/* Resume: it goes on, then stop it again by removing the device mid-way. */
	gate->close();
	ASSERT_TRUE(m->resume().ok());
	ASSERT_TRUE(gate->wait_held(1));
	done.store(false);
	std::thread removal([&] {
		user::set_thread_name("remover");
		m.reset();
		done.store(true);
	});
	ASSERT_TRUE(eventually([] { return blocked("remover"); }));
	while (!done.load()) {
		gate->release(1);
		std::this_thread::yield();
	}
	removal.join();
	gate->open();

	/* A fresh table restarts where the store says it stopped, and finishes. */
	m = merge_dev(o.get());
	ASSERT_TRUE(m);
	EXPECT_LE(allocated(info(m.get())), paused);
	ASSERT_TRUE(eventually([&] { return merged(info(m.get())); })) << info(m.get());
	m.reset();
	EXPECT_EQ(raw(o.get(), 0, size * 512), view);
}

TEST_F(SnapMerge, ReadErrorsFailTheMerge)
{
	make_history();
	c->fail_range(8, size - 8, true, false); /* data and areas unreadable, header fine */
	/* Loading reads the areas: that fails first. */
	auto r = dm_error(snap_table(o.get(), c.get(), "P 8", "snapshot-merge"));
	EXPECT_EQ(r.error, "Failed to read snapshot metadata");
	/*
	 * Now only the copied data is unreadable (the header and the one
	 * metadata area load). The faults go in before the table: the merge
	 * starts when the table is resumed, and on a quick run it had merged
	 * everything before a suspend could stop it to inject them.
	 */
	c->clear_faults();
	c->fail_range(16, size - 16, true, false);
	user::log_clear();
	auto m = merge_dev(o.get());
	ASSERT_TRUE(m);
	ASSERT_TRUE(eventually([&] { return info(m.get()) == "Merge failed"; })) << info(m.get());
	EXPECT_TRUE(user::log_contains("Read error: shutting down merge."));
	c->clear_faults();
}

TEST_F(SnapMerge, TransientStoresCannotMerge)
{
	o = disk(256);
	c = disk(256);
	auto r = dm_error(snap_table(o.get(), c.get(), "N 8", "snapshot-merge"));
	EXPECT_EQ(r.error, "Snapshot exception store does not support snapshot-merge.");
}
