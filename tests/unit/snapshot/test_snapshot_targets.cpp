// SPDX-License-Identifier: GPL-2.0
/* snapshot-origin and snapshot in the userspace DM model: data, stores, status, lifecycle. */
#include "snap_fixture.h"

#include <thread>

#include "format.h"

using namespace dmxx;
using namespace dmxx::test;
using dmxx::snap::AreaLayout;
using dmxx::snap::decode_exception;
using dmxx::snap::decode_header;

namespace {
class SnapTargets : public SnapTest {};
} // namespace

TEST_F(SnapTargets, OriginWritesKeepTheSnapshotsView)
{
	auto o = disk(4096), c = disk(2048);
	auto before = pattern(0, 4096 * 512, 1);
	o->write_raw(0, before.data(), before.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && snap);
	EXPECT_EQ(info(snap.get()), "16/2048 16");
	EXPECT_EQ(table(snap.get()), o->dev_name() + " " + c->dev_name() + " P 8");
	EXPECT_EQ(table(origin.get()), o->dev_name());
	EXPECT_EQ(info(origin.get()), "");

	/* 60 sectors from sector 4: chunks 0..7, the first and last partially. */
	auto after = pattern(4, 60 * 512, 2);
	write(origin.get(), 4, after);
	EXPECT_EQ(raw(o.get(), 4, after.size()), after);
	EXPECT_EQ(read(origin.get(), 4, after.size()), after);
	EXPECT_EQ(read(snap.get(), 0, 4096 * 512), before);
	EXPECT_EQ(info(snap.get()), "80/2048 16"); /* 8 chunks copied */

	/* Writing the same chunks again copies nothing more. */
	write(origin.get(), 0, pattern(0, 64 * 512, 3));
	EXPECT_EQ(info(snap.get()), "80/2048 16");
	EXPECT_EQ(read(snap.get(), 0, 4096 * 512), before);

	/* The COW device holds the kernel's format. */
	auto hdr = raw(c.get(), 0, 512);
	auto h = decode_header(hdr.data());
	EXPECT_EQ(h.magic, snap::disk_magic);
	EXPECT_EQ(h.valid, 1u);
	EXPECT_EQ(h.version, 1u);
	EXPECT_EQ(h.chunk_size, 8u);
	auto area = raw(c.get(), 8, 4096);
	for (u32 i = 0; i < 8; i++) {
		auto e = decode_exception(area.data(), i);
		EXPECT_EQ(e.new_chunk, 2 + i);
		auto copied = raw(c.get(), e.new_chunk * 8, 4096);
		EXPECT_EQ(copied, std::vector<u8>(before.begin() + e.old_chunk * 4096,
						  before.begin() + (e.old_chunk + 1) * 4096));
	}
	EXPECT_EQ(decode_exception(area.data(), 8).new_chunk, 0u);
}

TEST_F(SnapTargets, SnapshotWritesLandInTheCow)
{
	auto o = disk(2048), c = disk(2048);
	auto base = pattern(0, 2048 * 512, 4);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 16"));
	ASSERT_TRUE(origin && snap);
	auto reads_before = o->counters().reads;

	/* Partial chunk: copied first, then overwritten in the COW. */
	auto part = pattern(20, 3 * 512, 5);
	write(snap.get(), 20, part);
	auto expect = base;
	std::copy(part.begin(), part.end(), expect.begin() + 20 * 512);
	EXPECT_EQ(read(snap.get(), 0, 2048 * 512), expect);
	EXPECT_EQ(raw(o.get(), 0, 2048 * 512), base);
	EXPECT_EQ(read(origin.get(), 0, 2048 * 512), base);
	EXPECT_GT(o->counters().reads, reads_before);

	/* A whole chunk is written straight to the COW: the origin is not read for it. */
	auto reads_mid = o->counters().reads;
	auto full = pattern(64, 16 * 512, 6);
	write(snap.get(), 64, full);
	EXPECT_EQ(o->counters().reads, reads_mid);
	std::copy(full.begin(), full.end(), expect.begin() + 64 * 512);
	EXPECT_EQ(read(snap.get(), 0, 2048 * 512), expect);
	EXPECT_EQ(raw(o.get(), 0, 2048 * 512), base);
	EXPECT_EQ(info(snap.get()), "64/2048 32");

	/* Into chunks it already owns: straight to their COW chunks, nothing new allocated. */
	auto again = pattern(22, 2 * 512, 7), again_full = pattern(70, 4 * 512, 8);
	write(snap.get(), 22, again);
	write(snap.get(), 70, again_full);
	std::copy(again.begin(), again.end(), expect.begin() + 22 * 512);
	std::copy(again_full.begin(), again_full.end(), expect.begin() + 70 * 512);
	EXPECT_EQ(read(snap.get(), 0, 2048 * 512), expect);
	EXPECT_EQ(raw(o.get(), 0, 2048 * 512), base);
	EXPECT_EQ(info(snap.get()), "64/2048 32");
}

TEST_F(SnapTargets, PersistentStoreSurvivesReload)
{
	auto o = disk(2048), c = disk(1024);
	auto base = pattern(0, 2048 * 512, 7);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && snap);
	for (sector_t s = 0; s < 2048; s += 96)
		write(origin.get(), s, pattern(s, 4096, 8));
	auto view = read(snap.get(), 0, 2048 * 512);
	EXPECT_EQ(view, base);
	std::string st = info(snap.get());
	snap.reset();

	/* Chunk size 0: take it from the disk. */
	snap = dm(snap_table(o.get(), c.get(), "P 0"));
	ASSERT_TRUE(snap);
	EXPECT_EQ(table(snap.get()), o->dev_name() + " " + c->dev_name() + " P 8");
	EXPECT_EQ(info(snap.get()), st);
	EXPECT_EQ(read(snap.get(), 0, 2048 * 512), base);
	/* A different table chunk size: the disk's wins, with a warning. */
	snap.reset();
	user::log_clear();
	snap = dm(snap_table(o.get(), c.get(), "p 32"));
	ASSERT_TRUE(snap);
	EXPECT_EQ(table(snap.get()), o->dev_name() + " " + c->dev_name() + " P 8");
	EXPECT_TRUE(user::log_contains("chunk size 8 in device metadata overrides table chunk size of 32."));
	EXPECT_EQ(read(snap.get(), 0, 2048 * 512), base);
	/* And it keeps working after the reload. */
	write(origin.get(), 1000, pattern(1000, 8 * 512, 9));
	EXPECT_EQ(read(snap.get(), 0, 2048 * 512), base);
}

TEST_F(SnapTargets, TransientStoreForgetsOnReload)
{
	auto o = disk(1024), c = disk(512);
	auto base = pattern(0, 1024 * 512, 10);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "N 8"));
	ASSERT_TRUE(origin && snap);
	EXPECT_EQ(info(snap.get()), "0/512 0");
	EXPECT_EQ(table(snap.get()), o->dev_name() + " " + c->dev_name() + " N 8");
	auto now = pattern(0, 16 * 512, 11);
	write(origin.get(), 0, now);
	EXPECT_EQ(info(snap.get()), "16/512 0");
	EXPECT_EQ(read(snap.get(), 0, 1024 * 512), base);
	/* No header: the COW's first chunk is copied data. */
	EXPECT_EQ(raw(c.get(), 0, 4096), std::vector<u8>(base.begin(), base.begin() + 4096));
	snap.reset();
	snap = dm(snap_table(o.get(), c.get(), "N 8"));
	ASSERT_TRUE(snap);
	auto current = base;
	std::copy(now.begin(), now.end(), current.begin());
	EXPECT_EQ(read(snap.get(), 0, 1024 * 512), current);
}

TEST_F(SnapTargets, SnapshotsOfDifferentChunkSizes)
{
	auto o = disk(4096), c1 = disk(2048), c2 = disk(4096), c3 = disk(2048);
	auto v0 = pattern(0, 4096 * 512, 12);
	o->write_raw(0, v0.data(), v0.size());
	auto origin = dm(origin_table(o.get()));
	auto s1 = dm(snap_table(o.get(), c1.get(), "P 8"));
	auto s2 = dm(snap_table(o.get(), c2.get(), "P 128"));
	ASSERT_TRUE(origin && s1 && s2);
	/* Resume the origin so it splits at the smallest chunk size (LVM does that). */
	ASSERT_TRUE(origin->suspend().ok());
	ASSERT_TRUE(origin->resume().ok());

	/* One 64 KiB write crossing chunk boundaries of both. */
	auto w1 = pattern(100, 128 * 512, 13);
	write(origin.get(), 100, w1);
	auto v1 = v0;
	std::copy(w1.begin(), w1.end(), v1.begin() + 100 * 512);
	EXPECT_EQ(read(s1.get(), 0, v0.size()), v0);
	EXPECT_EQ(read(s2.get(), 0, v0.size()), v0);

	auto s3 = dm(snap_table(o.get(), c3.get(), "P 16"));
	ASSERT_TRUE(s3);
	auto w2 = pattern(90, 200 * 512, 14);
	write(origin.get(), 90, w2);
	auto v2 = v1;
	std::copy(w2.begin(), w2.end(), v2.begin() + 90 * 512);
	EXPECT_EQ(read(s1.get(), 0, v0.size()), v0);
	EXPECT_EQ(read(s2.get(), 0, v0.size()), v0);
	EXPECT_EQ(read(s3.get(), 0, v0.size()), v1);
	EXPECT_EQ(read(origin.get(), 0, v0.size()), v2);
}

TEST_F(SnapTargets, CowFullInvalidatesAndTheOriginGoesOn)
{
	auto o = disk(2048), c = disk(64); /* header, area, 6 data chunks of 8 sectors */
	auto base = pattern(0, 2048 * 512, 15);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && snap);
	user::log_clear();
	auto events = snap->event_nr();
	for (sector_t s = 0; s < 6 * 8; s += 8)
		write(origin.get(), s, pattern(s, 4096, 16));
	EXPECT_EQ(info(snap.get()), "64/64 16");
	/* The seventh copy does not fit. */
	auto last = pattern(48, 4096, 16);
	write(origin.get(), 48, last);
	EXPECT_EQ(info(snap.get()), "Invalid");
	EXPECT_GT(snap->event_nr(), events);
	EXPECT_TRUE(user::log_contains("Invalidating snapshot: Unable to allocate exception."));
	EXPECT_EQ(raw(o.get(), 48, 4096), last);
	u8 st;
	read(snap.get(), 0, 4096, &st);
	EXPECT_EQ(st, DMXX_BLK_STS_IOERR);
	EXPECT_EQ(user::sync_write(snap.get(), 0, base.data(), 4096), DMXX_BLK_STS_IOERR);
	write(origin.get(), 100, pattern(100, 4096, 17));
	/* The invalid mark is on disk: a reload keeps it. */
	EXPECT_EQ(decode_header(raw(c.get(), 0, 512).data()).valid, 0u);
	snap.reset();
	snap = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(snap);
	EXPECT_EQ(info(snap.get()), "Invalid");
	read(snap.get(), 0, 4096, &st);
	EXPECT_EQ(st, DMXX_BLK_STS_IOERR);
}

TEST_F(SnapTargets, OverflowOnSnapshotWritesWithPO)
{
	auto o = disk(1024), c = disk(48); /* 4 data chunks */
	auto base = pattern(0, 1024 * 512, 18);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "PO 8"));
	ASSERT_TRUE(origin && snap);
	EXPECT_EQ(table(snap.get()), o->dev_name() + " " + c->dev_name() + " PO 8");
	for (sector_t s = 0; s < 32; s += 8)
		write(snap.get(), s, pattern(s, 4096, 19));
	user::log_clear();
	EXPECT_EQ(user::sync_write(snap.get(), 200, base.data(), 4096), DMXX_BLK_STS_IOERR);
	EXPECT_EQ(info(snap.get()), "Overflow");
	EXPECT_TRUE(user::log_contains("Snapshot overflowed: Unable to allocate exception."));
	/* Reads still work; writes to copied chunks too are refused, as the kernel does. */
	EXPECT_EQ(read(snap.get(), 0, 4096), pattern(0, 4096, 19));
	EXPECT_EQ(read(snap.get(), 300, 4096), std::vector<u8>(base.begin() + 300 * 512, base.begin() + 308 * 512));
	EXPECT_EQ(user::sync_write(snap.get(), 0, base.data(), 4096), DMXX_BLK_STS_IOERR);
	/* An origin write needing a copy still invalidates. */
	write(origin.get(), 500, pattern(500, 4096, 20));
	EXPECT_EQ(info(snap.get()), "Invalid");
}

TEST_F(SnapTargets, StatusFormats)
{
	auto o = disk(1024), c = disk(1024);
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 8 2 discard_zeroes_cow discard_passdown_origin"));
	ASSERT_TRUE(origin && snap);
	EXPECT_EQ(snap->status(DMXX_STATUSTYPE_TABLE),
		  "0 1024 snapshot " + o->dev_name() + " " + c->dev_name() + " P 8 2 discard_zeroes_cow discard_passdown_origin");
	EXPECT_EQ(snap->status(DMXX_STATUSTYPE_INFO), "0 1024 snapshot 16/1024 16");
	EXPECT_EQ(snap->target_status(DMXX_STATUSTYPE_IMA)[0],
		  "target_name=snapshot,target_version=1.16.0,snap_origin_name=" + o->dev_name() +
			  ",snap_cow_name=" + c->dev_name() + ",snap_valid=y,snap_merge_failed=n,snapshot_overflowed=n;");
	EXPECT_EQ(origin->target_status(DMXX_STATUSTYPE_IMA)[0], "") << "6.1's origin reports nothing";
	EXPECT_EQ(snap->target(0)->max_io_len, 8u);
	EXPECT_EQ(snap->target(0)->num_flush_bios, 1u);
	EXPECT_EQ(snap->target(0)->num_discard_bios, 2u);
	auto areas = snap->iterate_devices(0);
	ASSERT_EQ(areas.size(), 2u);
	EXPECT_EQ(areas[0].dev, o->dev_name());
	EXPECT_EQ(areas[1].len, 1024u);
	auto c2 = disk(512);
	auto s2 = dm(snap_table(o.get(), c2.get(), "n 16 1 DISCARD_ZEROES_COW"));
	ASSERT_TRUE(s2);
	EXPECT_EQ(table(s2.get()), o->dev_name() + " " + c2->dev_name() + " N 16 1 discard_zeroes_cow");
	s2.reset();
}

TEST_F(SnapTargets, FlushesPassAndDefaultChunkSize)
{
	auto o = disk(1024), c = disk(1024);
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 0"));
	ASSERT_TRUE(origin && snap);
	EXPECT_EQ(table(snap.get()), o->dev_name() + " " + c->dev_name() + " P 32");
	auto of = o->counters().flushes, cf = c->counters().flushes;
	EXPECT_EQ(user::sync_io(origin.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH, 0, nullptr, 0), DMXX_BLK_STS_OK);
	EXPECT_EQ(o->counters().flushes, of + 1);
	EXPECT_EQ(user::sync_io(snap.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH, 0, nullptr, 0), DMXX_BLK_STS_OK);
	EXPECT_EQ(c->counters().flushes, cf + 1);
}

TEST_F(SnapTargets, DiscardZeroesCopiedChunks)
{
	auto o = disk(1024), c = disk(1024);
	auto base = pattern(0, 1024 * 512, 21);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 8 1 discard_zeroes_cow"));
	ASSERT_TRUE(origin && snap);
	write(origin.get(), 0, pattern(0, 8 * 512, 22)); /* chunk 0 copied */
	EXPECT_EQ(user::sync_io(snap.get(), DMXX_REQ_OP_DISCARD, 0, nullptr, 16 * 512), DMXX_BLK_STS_OK);
	/* Chunk 0's copy is zeroed; chunk 1 had none, so the snapshot still shows the origin. */
	EXPECT_EQ(read(snap.get(), 0, 4096), std::vector<u8>(4096, 0));
	EXPECT_EQ(read(snap.get(), 8, 4096), std::vector<u8>(base.begin() + 4096, base.begin() + 8192));
	EXPECT_EQ(raw(o.get(), 8, 4096), std::vector<u8>(base.begin() + 4096, base.begin() + 8192));
}

TEST_F(SnapTargets, RemovingASnapshotUnderOriginWrites)
{
	auto o = disk(4096), c = disk(4096);
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && snap);
	std::atomic<bool> stop{false};
	std::thread writer([&] {
		for (sector_t s = 0; !stop.load(); s = (s + 8) % 4096)
			write(origin.get(), s, pattern(s, 4096, 23));
	});
	for (int i = 0; i < 3; i++) {
		snap.reset();
		snap = dm(snap_table(o.get(), c.get(), "N 8"));
		ASSERT_TRUE(snap);
	}
	snap.reset();
	stop.store(true);
	writer.join();
}

/* A failing COW device (dm-flakey below it) invalidates the snapshot; the origin goes on. */
/*
 * Snapshots of one chunk size copy a chunk with one origin read and a
 * write to each COW (the kernel reads it once per snapshot). A COW whose
 * write fails invalidates that snapshot only.
 */
TEST_F(SnapTargets, SnapshotsShareOneOriginReadPerChunk)
{
	auto o = disk(4096);
	std::unique_ptr<user::MemDisk> c[4] = {disk(2048), disk(2048), disk(2048), disk(2048)};
	auto before = pattern(0, 4096 * 512, 41);
	o->write_raw(0, before.data(), before.size());
	auto origin = dm(origin_table(o.get()));
	std::unique_ptr<user::DmDevice> s[4];
	for (int i = 0; i < 4; i++)
		s[i] = dm(snap_table(o.get(), c[i].get(), i % 2 ? "P 8" : "N 8"));
	ASSERT_TRUE(origin && s[0] && s[1] && s[2] && s[3]);

	/* 60 sectors from sector 4: chunks 0..7, one read each. */
	auto reads = o->counters().reads;
	auto after = pattern(4, 60 * 512, 42);
	write(origin.get(), 4, after);
	EXPECT_EQ(o->counters().reads - reads, 8u);
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(read(s[i].get(), 0, before.size()), before) << "snapshot " << i;
		EXPECT_EQ(info(s[i].get()), i % 2 ? "80/2048 16" : "64/2048 0") << "snapshot " << i;
	}

	/* The next copy's write to the third COW fails: that snapshot alone goes. */
	c[2]->fail_range(0, 2048, false, true);
	auto now = pattern(64, 4096, 43);
	write(origin.get(), 64, now);
	EXPECT_EQ(raw(o.get(), 64, 4096), now);
	EXPECT_EQ(info(s[2].get()), "Invalid");
	for (int i : {0, 1, 3}) {
		EXPECT_EQ(read(s[i].get(), 0, before.size()), before) << "snapshot " << i;
		EXPECT_EQ(info(s[i].get()), i % 2 ? "88/2048 16" : "72/2048 0") << "snapshot " << i;
	}
}

/*
 * A snapshot read of a chunk not yet copied reads the origin. An origin
 * write to that chunk must not overtake it: the copy may finish, but the
 * write waits until the read is done, or the read returns the new data.
 * Nor may a second write that comes once the copy is published (it finds
 * the chunk copied, but the copy is still waiting for the read): the
 * kernel's writer checks pending exceptions first and so waits; ours must
 * too, on its lock-free paths as well.
 */
TEST_F(SnapTargets, SnapshotReadsOfTheOriginAreNotOvertaken)
{
	auto o = disk(1024);
	auto cow = disk(1024);
	auto before = pattern(0, 1024 * 512, 51);
	o->write_raw(0, before.data(), before.size());
	auto gate = std::make_unique<GateDisk>(unique_name("rgate"), o.get(), false, true);
	auto origin = dm(origin_table(gate.get()));
	auto s = dm(snap_table(gate.get(), cow.get(), "P 8"));
	ASSERT_TRUE(origin && s);
	gate->close(); /* origin reads wait here */

	std::vector<u8> got;
	std::thread reader([&] { got = read(s.get(), 24, 4096); }); /* chunk 3, whole */
	ASSERT_TRUE(gate->wait_held(1)); /* the snapshot read, at the origin */
	auto first = pattern(24, 2048, 52);
	std::thread writer([&] { write(origin.get(), 24, first); });
	ASSERT_TRUE(gate->wait_held(2)); /* the copy's read of the same chunk */
	gate->release_newest(1);

	/* The copy lands, commits and is published; the origin write must still wait for the reader. */
	ASSERT_TRUE(eventually([&] { return snapshot_of(s.get())->complete_chunks() == 1; }));
	auto second = pattern(28, 2048, 53);
	std::thread writer2([&] { write(origin.get(), 28, second); });
	EXPECT_FALSE(eventually([&] { return raw(o.get(), 24, 2048) == first || raw(o.get(), 28, 2048) == second; },
				std::chrono::milliseconds(300)))
		<< "an origin write overtook a snapshot read of the origin";
	gate->open();
	reader.join();
	writer.join();
	writer2.join();
	EXPECT_EQ(got, std::vector<u8>(before.begin() + 24 * 512, before.begin() + 32 * 512));
	EXPECT_EQ(raw(o.get(), 24, 2048), first);
	EXPECT_EQ(raw(o.get(), 28, 2048), second);
	EXPECT_EQ(read(s.get(), 24, 4096), got);
}

TEST_F(SnapTargets, CowErrorsInvalidate)
{
	auto o = disk(1024), c = disk(1024);
	auto base = pattern(0, 1024 * 512, 24);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && snap);
	write(origin.get(), 0, pattern(0, 4096, 25));
	c->fail_range(24, 64, false, true); /* the next copy lands at chunk 3: its write fails */
	user::log_clear();
	auto events = snap->event_nr();
	auto now = pattern(8, 4096, 26);
	write(origin.get(), 8, now); /* needs a copy, whose write fails */
	EXPECT_EQ(raw(o.get(), 8, 4096), now);
	EXPECT_EQ(info(snap.get()), "Invalid");
	EXPECT_GT(snap->event_nr(), events);
	EXPECT_TRUE(user::log_contains("Invalidating snapshot: Error reading/writing."));
	u8 st;
	read(snap.get(), 0, 4096, &st);
	EXPECT_EQ(st, DMXX_BLK_STS_IOERR);
	write(origin.get(), 16, pattern(16, 4096, 27));
	c->clear_faults();
	/* Durably invalid. */
	snap.reset();
	snap = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(snap);
	EXPECT_EQ(info(snap.get()), "Invalid");
}

/* The origin failing a copy's read is the same story. */
TEST_F(SnapTargets, OriginReadErrorsInvalidateTheSnapshotOnly)
{
	auto o = disk(1024), c = disk(1024);
	auto origin = dm(origin_table(o.get()));
	auto snap = dm(snap_table(o.get(), c.get(), "N 8"));
	ASSERT_TRUE(origin && snap);
	o->fail_range(0, 8, true, false);
	write(origin.get(), 0, pattern(0, 4096, 28));
	EXPECT_EQ(info(snap.get()), "Invalid");
	o->clear_faults();
	EXPECT_EQ(read(origin.get(), 0, 4096), pattern(0, 4096, 28));
}
