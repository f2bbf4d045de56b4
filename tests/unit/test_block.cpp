// SPDX-License-Identifier: GPL-2.0
/* The userspace block layer model: MemDisk, device lookup, submission order. */
#include "helpers.h"

#include <atomic>
#include <thread>

using namespace dmxx;
using dmxx::test::pattern;
using dmxx::user::MemDisk;

namespace {

class Block : public dmxx::test::DmxxTest {};

std::string devt(const block_device *d) { return d->dev_name(); }

} // namespace

TEST_F(Block, ReadWriteRoundTrip)
{
	auto disk = MemDisk::create("blk0", 64);
	ASSERT_TRUE(disk);
	EXPECT_EQ(dmxx_bdev_nr_sectors(disk.get()), 64u);
	EXPECT_EQ(dmxx_bdev_logical_block_size(disk.get()), 512u);
	auto data = pattern(8, 4096);
	EXPECT_EQ(user::sync_write(disk.get(), 8, data.data(), 4096), DMXX_BLK_STS_OK);
	std::vector<u8> raw(4096), back(4096);
	disk->read_raw(8, raw.data(), 4096);
	EXPECT_EQ(raw, data);
	EXPECT_EQ(user::sync_read(disk.get(), 8, back.data(), 4096), DMXX_BLK_STS_OK);
	EXPECT_EQ(back, data);
	auto c = disk->counters();
	EXPECT_EQ(c.reads, 1u);
	EXPECT_EQ(c.writes, 1u);
}

TEST_F(Block, OutOfRangeAndMisalignedIoFails)
{
	auto disk = MemDisk::create("blk0", 64, {4096, false});
	ASSERT_TRUE(disk);
	std::vector<u8> buf(8192);
	EXPECT_EQ(user::sync_read(disk.get(), 64, buf.data(), 512 * 8), DMXX_BLK_STS_IOERR);
	EXPECT_EQ(user::sync_read(disk.get(), 60, buf.data(), 8192), DMXX_BLK_STS_IOERR);
	EXPECT_EQ(user::sync_read(disk.get(), 1, buf.data(), 4096), DMXX_BLK_STS_IOERR); /* not 4k aligned */
	EXPECT_EQ(user::sync_read(disk.get(), 0, buf.data(), 512), DMXX_BLK_STS_IOERR);  /* short */
	EXPECT_EQ(user::sync_read(disk.get(), 56, buf.data(), 4096), DMXX_BLK_STS_OK);
	EXPECT_EQ(disk->counters().errors, 4u);
}

TEST_F(Block, DiscardWriteZeroesAndFlush)
{
	auto disk = MemDisk::create("blk0", 32);
	ASSERT_TRUE(disk);
	auto data = pattern(0, 32 * 512);
	disk->write_raw(0, data.data(), data.size());
	EXPECT_EQ(user::sync_io(disk.get(), DMXX_REQ_OP_DISCARD, 4, nullptr, 1024), DMXX_BLK_STS_OK);
	EXPECT_EQ(user::sync_io(disk.get(), DMXX_REQ_OP_WRITE_ZEROES, 10, nullptr, 512), DMXX_BLK_STS_OK);
	EXPECT_EQ(user::sync_io(disk.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH, 0, nullptr, 0), DMXX_BLK_STS_OK);
	EXPECT_EQ(user::sync_io(disk.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_FUA, 0, data.data(), 512), DMXX_BLK_STS_OK);
	std::vector<u8> now(32 * 512);
	disk->read_raw(0, now.data(), now.size());
	for (size_t i = 0; i < now.size(); i++) {
		bool zeroed = (i >= 4 * 512 && i < 6 * 512) || (i >= 10 * 512 && i < 11 * 512);
		ASSERT_EQ(now[i], zeroed ? 0 : data[i]) << i;
	}
	auto c = disk->counters();
	EXPECT_EQ(c.discards, 1u);
	EXPECT_EQ(c.write_zeroes, 1u);
	EXPECT_EQ(c.flushes, 1u);
	EXPECT_EQ(c.fua, 1u);
}

TEST_F(Block, InjectedIoErrors)
{
	auto disk = MemDisk::create("blk0", 64);
	ASSERT_TRUE(disk);
	std::vector<u8> buf(1024);
	disk->fail_range(10, 2, true, false);
	EXPECT_EQ(user::sync_read(disk.get(), 9, buf.data(), 1024), DMXX_BLK_STS_IOERR);
	EXPECT_EQ(user::sync_write(disk.get(), 9, buf.data(), 1024), DMXX_BLK_STS_OK);
	EXPECT_EQ(user::sync_read(disk.get(), 12, buf.data(), 1024), DMXX_BLK_STS_OK);
	disk->fail_next(2, DMXX_BLK_STS_NOSPC);
	EXPECT_EQ(user::sync_write(disk.get(), 0, buf.data(), 512), DMXX_BLK_STS_NOSPC);
	EXPECT_EQ(user::sync_read(disk.get(), 0, buf.data(), 512), DMXX_BLK_STS_NOSPC);
	EXPECT_EQ(user::sync_read(disk.get(), 0, buf.data(), 512), DMXX_BLK_STS_OK);
	disk->clear_faults();
	EXPECT_EQ(user::sync_read(disk.get(), 10, buf.data(), 512), DMXX_BLK_STS_OK);
}

TEST_F(Block, LookupByNamePathAndDevt)
{
	auto disk = MemDisk::create("lookme", 8);
	ASSERT_TRUE(disk);
	EXPECT_EQ(user::lookup_bdev("lookme"), disk.get());
	EXPECT_EQ(user::lookup_bdev("/dev/lookme"), disk.get());
	EXPECT_EQ(user::lookup_bdev(devt(disk.get())), disk.get());
	EXPECT_EQ(disk->dev_major(), 7u);
	EXPECT_EQ(user::lookup_bdev("/dev/nothere"), nullptr);
	EXPECT_EQ(user::lookup_bdev("7:"), nullptr);
	EXPECT_EQ(user::lookup_bdev("999:999"), nullptr);
	EXPECT_FALSE(MemDisk::create("lookme", 8)) << "names are unique";
	disk.reset();
	EXPECT_EQ(user::lookup_bdev("lookme"), nullptr);
}

TEST_F(Block, AsyncCompletionFromAnotherThread)
{
	auto disk = MemDisk::create("async0", 256, {512, true});
	ASSERT_TRUE(disk);
	std::vector<std::thread> threads;
	std::atomic<int> bad{0};
	for (int t = 0; t < 4; t++)
		threads.emplace_back([&, t] {
			for (int i = 0; i < 50; i++) {
				sector_t s = sector_t(t * 64 + (i % 8) * 8);
				auto data = pattern(s, 4096, unsigned(i));
				std::vector<u8> back(4096);
				if (user::sync_write(disk.get(), s, data.data(), 4096) ||
				    user::sync_read(disk.get(), s, back.data(), 4096) || back != data)
					bad++;
			}
		});
	for (auto &t : threads)
		t.join();
	EXPECT_EQ(bad.load(), 0);
}

namespace {

/* A device that splits each bio in two halves sent to a lower device, recording order. */
struct Splitter final : block_device {
	block_device *lower;
	std::vector<std::string> *log;
	Splitter(block_device *l, std::vector<std::string> *lg) : block_device("split", 250, 0, 512), lower(l), log(lg) {}
	struct Parent {
		bio *orig;
		std::atomic<int> pending{2};
		bio halves[2];
	};
	static void half_done(bio *b)
	{
		auto *p = static_cast<Parent *>(b->bi_private);
		if (b->bi_status)
			p->orig->bi_status = b->bi_status;
		if (--p->pending == 0) {
			bio *o = p->orig;
			delete p;
			dmxx_bio_endio(o);
		}
	}
	void submit(bio *b) override
	{
		log->push_back("split enter");
		auto *p = new Parent;
		p->orig = b;
		for (int i = 0; i < 2; i++) {
			bio &h = p->halves[i];
			h = bio{};
			h.bi_bdev = lower;
			h.bi_opf = b->bi_opf;
			h.bi_size = b->bi_size / 2;
			h.bi_sector = b->bi_sector + i * (h.bi_size >> 9);
			h.bi_data = b->bi_data + i * h.bi_size;
			h.bi_end_io = half_done;
			h.bi_private = p;
			dmxx_submit_bio(&h);
		}
		log->push_back("split leave");
	}
};

struct Recorder final : block_device {
	std::vector<std::string> *log;
	explicit Recorder(std::vector<std::string> *lg) : block_device("rec", 251, 0, 512), log(lg) {}
	void submit(bio *b) override
	{
		log->push_back("lower " + std::to_string(b->bi_sector) + (dmxx_may_sleep() ? "" : " atomic?"));
		dmxx::bio_complete(b, DMXX_BLK_STS_OK);
	}
};

void expect_atomic(bio *b)
{
	*static_cast<int *>(b->bi_private) = dmxx_may_sleep() ? 1 : 2;
}

} // namespace

TEST_F(Block, SubmissionIsDepthFirstNotRecursive)
{
	std::vector<std::string> log;
	Recorder rec(&log);
	Splitter split(&rec, &log);
	std::vector<u8> buf(4096);
	EXPECT_EQ(user::sync_read(&split, 0, buf.data(), 4096), DMXX_BLK_STS_OK);
	std::vector<std::string> want = {"split enter", "split leave", "lower 0", "lower 4"};
	EXPECT_EQ(log, want);
}

TEST_F(Block, EndIoRunsInAtomicContext)
{
	auto disk = MemDisk::create("blk0", 8);
	ASSERT_TRUE(disk);
	int seen = 0;
	std::vector<u8> buf(512);
	bio b{};
	b.bi_bdev = disk.get();
	b.bi_opf = DMXX_REQ_OP_READ;
	b.bi_size = 512;
	b.bi_data = buf.data();
	b.bi_end_io = expect_atomic;
	b.bi_private = &seen;
	dmxx_submit_bio(&b);
	EXPECT_EQ(seen, 2) << "end_io must run where sleeping is forbidden";
	EXPECT_TRUE(dmxx_may_sleep());
}
