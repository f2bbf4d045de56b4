// SPDX-License-Identifier: GPL-2.0
/* BioSet: allocation, clones, front pad, ownership, stats, failure modes, leaks, stress. */
#include "helpers.h"

#include <bioset.h>

#include <atomic>
#include <random>
#include <thread>

using namespace dmxx;
using dmxx::user::MemDisk;

namespace {

class BioSetTest : public dmxx::test::DmxxTest {};

void noop_done(bio *, void *) {}

struct Done {
	std::atomic<int> n{0};
	bio *last = nullptr;
	void *priv = nullptr;
};

void record_done(bio *b, void *priv)
{
	auto *d = static_cast<Done *>(priv);
	d->last = b;
	d->n++;
	BioSet::free(b);
}

TEST_F(BioSetTest, AllocFrontPadOwnerAndStats)
{
	auto disk = MemDisk::create("bs-api-0", 64);
	BioSet set;
	ASSERT_TRUE(set.init("bs-api", 4, 40, 2).is_ok());
	EXPECT_EQ(set.reserve_level(), 4u);
	EXPECT_EQ(set.pool_size(), 4u);
	Done d;
	bio *b = set.alloc(disk.get(), DMXX_REQ_OP_READ, 2, AllocMode::NoIO, record_done, &d);
	ASSERT_NE(b, nullptr);
	EXPECT_EQ(BioSet::owner(b), &set);
	EXPECT_EQ(bio_bdev(b), disk.get());
	EXPECT_EQ(bio_op(b), u32(DMXX_REQ_OP_READ));
	/* The front pad sits before the bio and is usable. */
	u8 *front = static_cast<u8 *>(set.front(b));
	EXPECT_LE(front + 40 + BioSet::header_bytes, reinterpret_cast<u8 *>(b));
	memset(front, 0xab, 40);
	EXPECT_EQ(BioSet::owner(b), &set); /* the header survived the pad writes */
	/* Completion goes through the set to the owner's callback. */
	bio_complete(b, DMXX_BLK_STS_OK);
	EXPECT_EQ(d.n.load(), 1);
	EXPECT_EQ(d.last, b);
	auto st = set.stats();
	EXPECT_EQ(st.allocs, 1u);
	EXPECT_EQ(st.rescues, 0u);
	/* A bio from elsewhere has no owner. */
	bio plain{};
	EXPECT_EQ(BioSet::owner(&plain), nullptr);
}

TEST_F(BioSetTest, CloneSharesDataAndTrimSelectsAPiece)
{
	auto disk = MemDisk::create("bs-api-1", 64);
	BioSet set;
	ASSERT_TRUE(set.init("bs-clone", 2, 0, 0).is_ok());
	std::vector<u8> data = dmxx::test::pattern(0, 8 * 512);
	bio src{};
	src.bi_bdev = disk.get();
	src.bi_opf = DMXX_REQ_OP_WRITE;
	src.bi_sector = 16;
	src.bi_size = 8 * 512;
	src.bi_data = data.data();
	bio *c = set.clone(&src, disk.get(), AllocMode::NoIO, noop_done, nullptr);
	ASSERT_NE(c, nullptr);
	EXPECT_EQ(c->bi_data, data.data()); /* shared, not copied */
	EXPECT_EQ(bio_sector(c), 16u);
	EXPECT_EQ(bio_size(c), 8u * 512);
	EXPECT_EQ(bio_opf(c), src.bi_opf);
	dmxx_bio_trim(c, 2, 3);
	EXPECT_EQ(bio_sector(c), 18u);
	EXPECT_EQ(bio_size(c), 3u * 512);
	EXPECT_EQ(c->bi_data, data.data() + 2 * 512);
	EXPECT_EQ(src.bi_size, 8u * 512); /* the source is untouched */
	/* Written through the clone: exactly the trimmed piece lands on disk. */
	EXPECT_EQ(user::submit_bio_wait(c), DMXX_BLK_STS_OK);
	std::vector<u8> got(3 * 512);
	disk->read_raw(18, got.data(), got.size());
	EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + 2 * 512));
	/* submit_bio_wait replaced end_io: free explicitly. */
	BioSet::free(c);
	EXPECT_EQ(set.reserve_level(), 2u);
}

TEST_F(BioSetTest, AllocFailureModes)
{
	auto disk = MemDisk::create("bs-api-2", 64);
	BioSet set;
	ASSERT_TRUE(set.init("bs-fail", 1, 0, 1).is_ok());
	/* More vecs than the set holds inline. */
	EXPECT_EQ(set.alloc(disk.get(), DMXX_REQ_OP_READ, 2, AllocMode::NoIO, noop_done, nullptr), nullptr);
	/* Reserve-only with the reserve taken: a non-sleeping allocation fails, not blocks. */
	set.set_reserve_only(true);
	bio *a = set.alloc(disk.get(), DMXX_REQ_OP_READ, 1, AllocMode::NoWait, noop_done, nullptr);
	ASSERT_NE(a, nullptr);
	EXPECT_EQ(set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::NoWait, noop_done, nullptr), nullptr);
	EXPECT_EQ(set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::Atomic, noop_done, nullptr), nullptr);
	bio src{};
	src.bi_bdev = disk.get();
	src.bi_size = 512;
	EXPECT_EQ(set.clone(&src, disk.get(), AllocMode::NoWait, noop_done, nullptr), nullptr);
	/* Allocator failing (fault injection) and reserve empty: same. */
	set.set_reserve_only(false);
	user::fail_allocs_with_mode(DMXX_ALLOC_NOWAIT);
	user::fail_allocs_with_mode(DMXX_ALLOC_ATOMIC);
	EXPECT_EQ(set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::Atomic, noop_done, nullptr), nullptr);
	user::clear_alloc_faults();
	/* With the allocator back, allocations beyond the reserve succeed and free back to it. */
	bio *b = set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::NoWait, noop_done, nullptr);
	ASSERT_NE(b, nullptr);
	BioSet::free(a);
	BioSet::free(b);
	EXPECT_EQ(set.reserve_level(), 1u);
}

/* Every allocation BioSet::init makes can fail; each failure is reported and leaks nothing. */
TEST_F(BioSetTest, InitFaultInjectionAtEveryPoint)
{
	uint64_t live = user::alloc_stats().live;
	unsigned failures = 0;
	for (uint64_t n = 0;; n++) {
		auto *set = new BioSet;
		user::fail_nth_alloc(n);
		uint64_t before = user::alloc_stats().failures;
		Result<void> r = set->init("bs-fault", 3, 16, 1);
		bool injected = user::alloc_stats().failures != before;
		user::clear_alloc_faults();
		if (r.is_ok()) {
			EXPECT_FALSE(injected) << "failure at point " << n << " was not reported";
			delete set;
			EXPECT_EQ(user::alloc_stats().live, live);
			break;
		}
		EXPECT_TRUE(injected);
		EXPECT_EQ(r.error().code(), -ENOMEM);
		failures++;
		delete set;
		EXPECT_EQ(user::alloc_stats().live, live) << "leak after failure at point " << n;
		ASSERT_LT(n, 100u);
	}
	/* the reserve's shards + 3 elements + the per-CPU allocs counter + the rescuer workqueue */
	EXPECT_EQ(failures, 6u);
}

/* Many threads, a tiny reserve, random split counts: everything completes and the pool refills. */
TEST_F(BioSetTest, StressTinyReserveRandomSplits)
{
	auto disk = MemDisk::create("bs-api-3", 1024);
	BioSet set;
	ASSERT_TRUE(set.init("bs-stress", 2, 8, 0).is_ok());
	set.set_reserve_only(true);
	struct Dev final : public block_device {
		block_device *lower;
		BioSet *set;
		std::atomic<unsigned> seed{1};
		Dev(block_device *l, BioSet *s) : block_device("bs-stress-dev", 251, 0, 512), lower(l), set(s) {}
		struct Parent {
			bio *orig;
			std::atomic<int> left;
		};
		static void done(bio *c, void *priv)
		{
			auto *p = static_cast<Parent *>(priv);
			BioSet::free(c);
			if (p->left.fetch_sub(1) == 1) {
				bio *o = p->orig;
				delete p;
				bio_complete(o, DMXX_BLK_STS_OK);
			}
		}
		void submit(bio *b) override
		{
			unsigned sectors = b->bi_size >> 9;
			unsigned n = 1 + seed.fetch_add(7) % sectors;
			auto *p = new Parent{b, {int(n)}};
			unsigned off = 0;
			for (unsigned i = 0; i < n; i++) {
				unsigned len = i + 1 == n ? sectors - off : 1;
				bio *c = set->clone(b, lower, AllocMode::NoIO, done, p);
				memset(set->front(c), 0x5a, 8);
				dmxx_bio_trim(c, off, len);
				off += len;
				dmxx_submit_bio(c);
			}
		}
	} dev(disk.get(), &set);
	constexpr int threads = 4, per = 200;
	std::atomic<int> ok{0};
	std::vector<std::thread> ts;
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&, t] {
			for (int i = 0; i < per; i++) {
				auto data = dmxx::test::pattern(0, 8 * 512, unsigned(t * per + i));
				if (user::sync_write(&dev, sector_t((t * per + i) % 128) * 8, data.data(), 8 * 512) ==
				    DMXX_BLK_STS_OK)
					ok++;
			}
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(ok.load(), threads * per);
	EXPECT_EQ(set.reserve_level(), 2u);
	EXPECT_EQ(set.stats().allocs, set.stats().allocs); /* read under TSan */
	EXPECT_GT(set.stats().rescues, 0u);
}


/*
 * allocs is a per-CPU counter now: after the threads are joined it is exact,
 * whichever CPU each allocation counted on; and a bio freed on one CPU is
 * allocated on another (the reserve's shards).
 */
TEST_F(BioSetTest, AllocsCountExactlyAcrossCpusAndReserveCrossesShards)
{
	user::CpuHintScope cpus;
	user::set_nr_cpus_for_test(4);
	auto disk = MemDisk::create("bs-api-4", 64);
	BioSet set;
	ASSERT_TRUE(set.init("bs-cpus", 4, 16, 0).is_ok());
	set.set_reserve_only(true);

	/* CPU 0 takes all four, CPUs 1..3 free them, CPU 2 takes all four again. */
	std::vector<bio *> bios;
	user::set_cpu_hint_for_test(0);
	for (int i = 0; i < 4; i++)
		bios.push_back(set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::NoWait, noop_done, nullptr));
	for (bio *b : bios)
		ASSERT_NE(b, nullptr);
	EXPECT_EQ(set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::NoWait, noop_done, nullptr), nullptr);
	for (size_t i = 0; i < bios.size(); i++) {
		user::set_cpu_hint_for_test(int(1 + i % 3));
		BioSet::free(bios[i]);
	}
	bios.clear();
	user::set_cpu_hint_for_test(2);
	for (int i = 0; i < 4; i++) {
		bio *b = set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::NoWait, noop_done, nullptr);
		ASSERT_NE(b, nullptr) << "allocation " << i;
		bios.push_back(b);
	}
	for (bio *b : bios)
		BioSet::free(b);
	EXPECT_EQ(set.stats().allocs, 8u);

	/* Threads on changing CPUs, sleeping allocations on a reserve of 4. */
	constexpr int threads = 6, per = 3000;
	std::vector<std::thread> ts;
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&, t] {
			for (int i = 0; i < per; i++) {
				user::set_cpu_hint_for_test((t + i) % 4);
				bio *b = set.alloc(disk.get(), DMXX_REQ_OP_READ, 0, AllocMode::NoIO, noop_done, nullptr);
				ASSERT_NE(b, nullptr);
				user::set_cpu_hint_for_test((t + 2 * i + 1) % 4);
				BioSet::free(b);
			}
			user::set_cpu_hint_for_test(-1);
		});
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(set.stats().allocs, 8u + threads * per);
	EXPECT_EQ(set.reserve_level(), 4u);
}

} // namespace
