// SPDX-License-Identifier: GPL-2.0
/*
 * ThinMetadata's operations on an in-memory device, checked against the
 * reference model and reopened from disk after commits.
 */
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "../../../dm_thin/metadata/thin_metadata.h"
#include "../../../dm_thin/user/mem_block_device.h"
#include "pool_model.h"
#include "workload.h"

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::pdata::MemBlockDevice;

namespace {

constexpr u32 DBS = 128;

struct Pool {
	std::unique_ptr<MemBlockDevice> dev;
	std::unique_ptr<ThinMetadata> md;

	explicit Pool(block_t meta_blocks = 2048, block_t data_blocks = 10000)
		: dev(std::make_unique<MemBlockDevice>(meta_blocks))
	{
		auto r = ThinMetadata::format(*dev, DBS, data_blocks);
		EXPECT_TRUE(r.is_ok()) << r.error_code();
		if (r.is_ok())
			md.reset(r.release_value());
	}

	/* Close and reopen from what is on the device (the last commit). */
	void reopen()
	{
		md.reset();
		auto r = ThinMetadata::open(*dev, OpenOptions{DBS});
		ASSERT_TRUE(r.is_ok()) << r.error_code();
		md.reset(r.release_value());
	}

	block_t map_new(thin_id dev, block_t v)
	{
		auto b = md->alloc_data_block();
		EXPECT_TRUE(b.is_ok());
		EXPECT_TRUE(md->insert(dev, v, b.value()).is_ok());
		return b.value();
	}
};

TEST(ThinMetadata, FormatThenOpenIsEmpty)
{
	Pool p(256, 5000);
	ASSERT_TRUE(p.md);
	EXPECT_EQ(p.md->transaction_id().value(), 0u);
	EXPECT_EQ(p.md->nr_data_blocks().value(), 5000u);
	EXPECT_EQ(p.md->nr_free_data_blocks().value(), 5000u);
	EXPECT_EQ(p.md->nr_metadata_blocks().value(), 256u);
	p.reopen();
	EXPECT_EQ(p.md->nr_data_blocks().value(), 5000u);
	EXPECT_EQ(p.md->time(), 0u);
	EXPECT_EQ(p.md->metadata_snap().value(), 0u);
	EXPECT_FALSE(p.md->device_exists(0).value());
}

TEST(ThinMetadata, FormatRefusesBadArguments)
{
	MemBlockDevice dev(1024);
	EXPECT_EQ(ThinMetadata::format(dev, 100, 10).error_code(), -EINVAL); /* not 64 KiB units */
	EXPECT_EQ(ThinMetadata::format(dev, 64, 10).error_code(), -EINVAL);  /* below the minimum */
	MemBlockDevice tiny(4);
	EXPECT_EQ(ThinMetadata::format(tiny, 128, 10).error_code(), -ENOSPC);
}

TEST(ThinMetadata, CreateInsertLookupSurvivesCommit)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	EXPECT_EQ(p.md->create_thin(1).error_code(), -EEXIST);
	block_t b0 = p.map_new(1, 0);
	block_t b7 = p.map_new(1, 7);
	EXPECT_NE(b0, b7);
	EXPECT_EQ(p.md->lookup(1, 0).value().data_block, b0);
	EXPECT_EQ(p.md->lookup(1, 3).error_code(), -ENODATA);
	EXPECT_EQ(p.md->lookup(2, 0).error_code(), -ENODEV);
	EXPECT_EQ(p.md->insert(2, 0, b0).error_code(), -ENODEV);
	EXPECT_EQ(p.md->mapped_count(1).value(), 2u);
	EXPECT_EQ(p.md->highest_mapped(1).value(), 7u);
	ASSERT_TRUE(p.md->commit().is_ok());
	p.reopen();
	EXPECT_EQ(p.md->lookup(1, 7).value().data_block, b7);
	EXPECT_EQ(p.md->mapped_count(1).value(), 2u);
	EXPECT_EQ(p.md->data_block_count(b0).value(), 1u);
	EXPECT_EQ(p.md->nr_free_data_blocks().value(), 10000u - 2);
}

TEST(ThinMetadata, UncommittedChangesVanishOnReopenAndAbort)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	ASSERT_TRUE(p.md->commit().is_ok());
	p.map_new(1, 5);
	ASSERT_TRUE(p.md->create_thin(2).is_ok());
	ASSERT_TRUE(p.md->abort().is_ok());
	EXPECT_EQ(p.md->lookup(1, 5).error_code(), -ENODATA);
	EXPECT_FALSE(p.md->device_exists(2).value());
	p.map_new(1, 6);
	p.reopen(); /* closing does not commit */
	EXPECT_EQ(p.md->lookup(1, 6).error_code(), -ENODATA);
	EXPECT_EQ(p.md->mapped_count(1).value(), 0u);
}

TEST(ThinMetadata, SnapshotSharesUntilWritten)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	for (block_t v = 0; v < 600; v++) /* several leaves */
		p.map_new(1, v);
	ASSERT_TRUE(p.md->commit().is_ok());
	ASSERT_TRUE(p.md->create_snap(2, 1).is_ok());
	EXPECT_EQ(p.md->time(), 1u);
	EXPECT_EQ(p.md->create_snap(3, 99).error_code(), -ENODEV);
	EXPECT_EQ(p.md->create_snap(2, 1).error_code(), -EEXIST);

	/* Both see the same blocks, flagged shared (mapped before the snapshot). */
	auto o = p.md->lookup(1, 10).value();
	auto s = p.md->lookup(2, 10).value();
	EXPECT_EQ(o.data_block, s.data_block);
	EXPECT_TRUE(o.shared);
	EXPECT_TRUE(s.shared);
	EXPECT_EQ(p.md->mapped_count(2).value(), 600u);
	/* Sharing is by subtree: data counts stay 1 until a leaf is copied. */
	EXPECT_EQ(p.md->data_block_count(o.data_block).value(), 1u);

	/* Break sharing on the origin: a new block at time 1, not shared. */
	block_t nb = p.map_new(1, 10);
	auto o2 = p.md->lookup(1, 10).value();
	EXPECT_EQ(o2.data_block, nb);
	EXPECT_EQ(o2.time, 1u);
	EXPECT_FALSE(o2.shared);
	EXPECT_EQ(p.md->lookup(2, 10).value().data_block, o.data_block);
	/* The copied leaf's other blocks are now held by both leaves. */
	EXPECT_EQ(p.md->data_block_count(p.md->lookup(1, 11).value().data_block).value(), 2u);
	/* The old block is held only by the snapshot now. */
	EXPECT_EQ(p.md->data_block_count(o.data_block).value(), 1u);

	/* Deleting the origin leaves the snapshot intact; deleting both frees everything. */
	block_t snap11 = p.md->lookup(2, 11).value().data_block;
	ASSERT_TRUE(p.md->delete_device(1).is_ok());
	EXPECT_EQ(p.md->lookup(2, 11).value().data_block, snap11);
	EXPECT_EQ(p.md->data_block_count(snap11).value(), 1u);
	EXPECT_EQ(p.md->mapped_count(2).value(), 600u);
	ASSERT_TRUE(p.md->delete_device(2).is_ok());
	ASSERT_TRUE(p.md->commit().is_ok());
	EXPECT_EQ(p.md->nr_free_data_blocks().value(), 10000u);
}

TEST(ThinMetadata, SnapshotOfSnapshotAndTimes)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	p.map_new(1, 0);
	ASSERT_TRUE(p.md->create_snap(2, 1).is_ok());
	p.map_new(2, 1);
	ASSERT_TRUE(p.md->create_snap(3, 2).is_ok());
	EXPECT_EQ(p.md->time(), 2u);
	auto d1 = p.md->device_info(1).value();
	auto d2 = p.md->device_info(2).value();
	auto d3 = p.md->device_info(3).value();
	EXPECT_EQ(d1.snapshotted_time, 1u);
	EXPECT_EQ(d2.creation_time, 1u);
	EXPECT_EQ(d2.snapshotted_time, 2u);
	EXPECT_EQ(d3.creation_time, 2u);
	EXPECT_EQ(d3.mapped_blocks, 2u);
	auto m = p.md->lookup(3, 1).value();
	EXPECT_EQ(m.time, 1u);
	EXPECT_TRUE(m.shared);
	ASSERT_TRUE(p.md->commit().is_ok());
	p.reopen();
	EXPECT_EQ(p.md->device_info(2).value().snapshotted_time, 2u);
	EXPECT_EQ(p.md->time(), 2u);
}

TEST(ThinMetadata, RemoveAndRemoveRange)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(4).is_ok());
	for (block_t v = 0; v < 1000; v++)
		p.map_new(4, v);
	EXPECT_EQ(p.md->remove(4, 5000).error_code(), -ENODATA);
	ASSERT_TRUE(p.md->remove(4, 0).is_ok());
	EXPECT_EQ(p.md->remove_range(4, 100, 900).value(), 800u);
	EXPECT_EQ(p.md->remove_range(4, 100, 900).value(), 0u);
	EXPECT_EQ(p.md->mapped_count(4).value(), 199u);
	EXPECT_EQ(p.md->highest_mapped(4).value(), 999u);
	EXPECT_EQ(p.md->remove_range(4, 0, 2000).value(), 199u);
	EXPECT_EQ(p.md->highest_mapped(4).error_code(), -ENODATA);
	ASSERT_TRUE(p.md->commit().is_ok());
	EXPECT_EQ(p.md->nr_free_data_blocks().value(), 10000u);
}

TEST(ThinMetadata, OverwriteConsumesTheCallersReference)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	block_t a = p.map_new(1, 0);
	/* Remap onto the same block: the caller's extra reference is consumed. */
	ASSERT_TRUE(p.md->inc_data_block(a).is_ok());
	ASSERT_TRUE(p.md->insert(1, 0, a).is_ok());
	EXPECT_EQ(p.md->data_block_count(a).value(), 1u);
	/* Remap elsewhere: the old block is released. */
	block_t b = p.map_new(1, 0);
	EXPECT_EQ(p.md->data_block_count(a).value(), 0u);
	EXPECT_EQ(p.md->data_block_count(b).value(), 1u);
	EXPECT_EQ(p.md->mapped_count(1).value(), 1u);
	EXPECT_EQ(p.md->insert(1, 1, 10000).error_code(), -EINVAL); /* beyond the data device */
}

TEST(ThinMetadata, FreedBlocksAreNotReusedBeforeCommit)
{
	Pool p(1024, 4);
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	for (block_t v = 0; v < 4; v++)
		p.map_new(1, v);
	ASSERT_TRUE(p.md->commit().is_ok());
	ASSERT_TRUE(p.md->remove(1, 0).is_ok());
	/* The committed mapping still points at that block: not reusable yet. */
	EXPECT_EQ(p.md->alloc_data_block().error_code(), -ENOSPC);
	ASSERT_TRUE(p.md->commit().is_ok());
	EXPECT_TRUE(p.md->alloc_data_block().is_ok());
}

TEST(ThinMetadata, TransactionId)
{
	Pool p;
	EXPECT_EQ(p.md->set_transaction_id(5, 6).error_code(), -EINVAL);
	ASSERT_TRUE(p.md->set_transaction_id(0, 42).is_ok());
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	EXPECT_EQ(p.md->device_info(1).value().transaction_id, 42u);
	ASSERT_TRUE(p.md->commit().is_ok());
	p.reopen();
	EXPECT_EQ(p.md->transaction_id().value(), 42u);
}

TEST(ThinMetadata, ResizeDataAndMetadata)
{
	Pool p(512, 100);
	EXPECT_EQ(p.md->resize_data(50).error_code(), -EINVAL);
	ASSERT_TRUE(p.md->resize_data(50000).is_ok());
	EXPECT_EQ(p.md->resize_metadata(4096).error_code(), -EINVAL); /* device not grown yet */
	p.dev->resize(40000);
	ASSERT_TRUE(p.md->resize_metadata(40000).is_ok());
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	for (block_t v = 0; v < 3000; v++)
		p.map_new(1, v);
	ASSERT_TRUE(p.md->commit().is_ok());
	p.reopen();
	EXPECT_EQ(p.md->nr_data_blocks().value(), 50000u);
	EXPECT_EQ(p.md->nr_metadata_blocks().value(), 40000u);
	EXPECT_EQ(p.md->mapped_count(1).value(), 3000u);
}

TEST(ThinMetadata, MetadataSnapshotHoldsTheCommittedTrees)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	block_t b = p.map_new(1, 0);
	EXPECT_EQ(p.md->release_metadata_snap().error_code(), -EINVAL);
	ASSERT_TRUE(p.md->reserve_metadata_snap().is_ok());
	block_t held = p.md->metadata_snap().value();
	EXPECT_NE(held, 0u);
	EXPECT_EQ(p.md->reserve_metadata_snap().error_code(), -EBUSY);
	/* The pool moves on; the held copy's blocks stay allocated. */
	ASSERT_TRUE(p.md->remove(1, 0).is_ok());
	ASSERT_TRUE(p.md->delete_device(1).is_ok());
	ASSERT_TRUE(p.md->commit().is_ok());
	p.reopen();
	EXPECT_EQ(p.md->metadata_snap().value(), held);
	ASSERT_TRUE(p.md->release_metadata_snap().is_ok());
	ASSERT_TRUE(p.md->commit().is_ok());
	(void)b;
	EXPECT_EQ(p.md->nr_free_data_blocks().value(), 10000u);
	/* Everything but the superblock and the space maps' and trees' roots is free again. */
	block_t used = p.md->nr_metadata_blocks().value() - p.md->nr_free_metadata_blocks().value();
	Pool fresh;
	block_t used_fresh = fresh.md->nr_metadata_blocks().value() -
			     fresh.md->nr_free_metadata_blocks().value();
	EXPECT_LE(used, used_fresh + 4);
}

TEST(ThinMetadata, ReadOnlyOpenRefusesChanges)
{
	Pool p;
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	ASSERT_TRUE(p.md->commit().is_ok());
	p.md.reset();
	u64 writes = p.dev->nr_writes();
	auto r = ThinMetadata::open(*p.dev, OpenOptions{DBS, true});
	ASSERT_TRUE(r.is_ok());
	std::unique_ptr<ThinMetadata> ro(r.release_value());
	EXPECT_TRUE(ro->device_exists(1).value());
	EXPECT_EQ(ro->create_thin(2).error_code(), -EPERM);
	EXPECT_EQ(ro->commit().error_code(), -EPERM);
	ro.reset();
	EXPECT_EQ(p.dev->nr_writes(), writes);
}

TEST(ThinMetadata, NeedsCheckRefusesReadWriteOpen)
{
	Pool p;
	ASSERT_TRUE(p.md->set_needs_check().is_ok());
	EXPECT_TRUE(p.md->needs_check());
	p.md.reset();
	SuperblockProblem why;
	auto r = ThinMetadata::open(*p.dev, OpenOptions{DBS}, &why);
	EXPECT_EQ(r.error_code(), -EINVAL);
	EXPECT_EQ(why, SuperblockProblem::NeedsCheck);
	auto ro = ThinMetadata::open(*p.dev, OpenOptions{DBS, true}, &why);
	ASSERT_TRUE(ro.is_ok());
	delete ro.release_value();
}

TEST(ThinMetadata, ManyDevicesWithScatteredIds)
{
	Pool p(4096, 100000);
	for (thin_id id = 0; id < 400; id++) {
		thin_id dev = (id * 2654435761u) & 0xffffff;
		ASSERT_TRUE(p.md->create_thin(dev).is_ok()) << dev;
		p.map_new(dev, id);
	}
	ASSERT_TRUE(p.md->commit().is_ok());
	p.reopen();
	for (thin_id id = 0; id < 400; id++) {
		thin_id dev = (id * 2654435761u) & 0xffffff;
		EXPECT_EQ(p.md->mapped_count(dev).value(), 1u);
		EXPECT_TRUE(p.md->lookup(dev, id).is_ok());
	}
}

/*
 * Thread-safety smoke test (run under TSan by tests/unit/run.sh): lookups
 * share the root lock with each other while a writer inserts and commits.
 * Readers check what they see: blocks mapped before the run never change.
 */
TEST(ThinMetadataConcurrency, LookupsRunAlongsideInsertsAndCommits)
{
	Pool p(4096, 100000);
	ASSERT_TRUE(p.md->create_thin(1).is_ok());
	std::vector<block_t> stable(500);
	for (block_t v = 0; v < 500; v++)
		stable[v] = p.map_new(1, v);
	ASSERT_TRUE(p.md->commit().is_ok());

	std::atomic<bool> stop{false};
	std::atomic<u64> lookups[2] = {0, 0};
	std::atomic<u64> wrong{0};
	auto reader = [&](int idx) {
		u64 x = 88172645463325252ull + idx;
		while (!stop.load(std::memory_order_acquire)) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			block_t v = x % 1500;
			auto r = p.md->lookup(1, v);
			if (v < 500 && (r.is_error() || r.value().data_block != stable[v]))
				wrong++;
			if (v >= 500 && r.is_error() && r.error_code() != -ENODATA)
				wrong++;
			lookups[idx]++;
		}
	};
	std::thread r0(reader, 0), r1(reader, 1);
	/* No ASSERT while the readers run: returning early would leave them joinable. */
	for (block_t v = 500; v < 1500; v++) {
		p.map_new(1, v);
		if (v % 250 == 0) {
			EXPECT_TRUE(p.md->commit().is_ok());
		}
	}
	EXPECT_TRUE(p.md->commit().is_ok());
	/* Let each reader have done some work (bounded wait, no sleeps as synchronisation). */
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
	while ((lookups[0] == 0 || lookups[1] == 0) && std::chrono::steady_clock::now() < deadline)
		std::this_thread::yield();
	stop.store(true, std::memory_order_release);
	r0.join();
	r1.join();
	EXPECT_EQ(wrong.load(), 0u);
	EXPECT_GT(lookups[0].load(), 0u);
	EXPECT_GT(lookups[1].load(), 0u);
	EXPECT_EQ(p.md->mapped_count(1).value(), 1500u);
}

/* Randomized workloads against the model, with reopen checks (no external tools). */
class ThinWorkload : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ThinWorkload, MatchesModelAcrossCommitsAndReopen)
{
	auto dev = std::make_unique<MemBlockDevice>(3000);
	auto f = ThinMetadata::format(*dev, DBS, 6000);
	ASSERT_TRUE(f.is_ok());
	std::unique_ptr<ThinMetadata> md(f.release_value());
	test::PoolModel model(DBS, 6000);
	test::WorkloadOptions o;
	o.seed = GetParam();
	o.steps = 1500;
	o.metadata_snaps = true;
	test::Workload w(*md, model, o, dev.get());
	std::string e = w.run();
	ASSERT_EQ(e, "");
	ASSERT_EQ(w.commit(), "");
	ASSERT_EQ(test::compare_with_model(*md, *dev, model), "");
	md.reset();
	auto r = ThinMetadata::open(*dev, OpenOptions{DBS});
	ASSERT_TRUE(r.is_ok());
	md.reset(r.release_value());
	ASSERT_EQ(test::compare_with_model(*md, *dev, model), "");
}

INSTANTIATE_TEST_SUITE_P(Seeds, ThinWorkload, ::testing::Values(1, 2, 3, 17, 4242));

} // namespace
