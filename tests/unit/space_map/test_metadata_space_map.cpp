// SPDX-License-Identifier: GPL-2.0
// The self-hosting metadata space map: counts of the blocks the test owns
// against a reference array, and after every commit a thin_check-style
// recount of every block (superblock, the map's own index, bitmaps and
// overflow nodes, the test's blocks).
#include <random>

#include "sm_env.h"

using namespace dmxx::pdata;
using namespace dmxx::pdata::test;
using namespace dmxx;

namespace {

const block_t E = RefCounts::entries_per_bitmap;

/* Every block's current count through the map (the open transaction). */
std::vector<u32> current_counts(MetadataSpaceMap &sm)
{
	block_t n = sm.nr_blocks().value();
	std::vector<u32> v(n);
	for (block_t b = 0; b < n; b++) {
		auto r = sm.get_count(b);
		EXPECT_TRUE(r.is_ok()) << "get_count(" << b << ")";
		v[b] = r.is_ok() ? r.value() : 0;
	}
	return v;
}

/* nr_free() must count exactly the blocks free now and at the last commit. */
void expect_exact_nr_free(MetadataSpaceMap &sm, const std::vector<u32> &committed)
{
	std::vector<u32> cur = current_counts(sm);
	u64 usable = 0;
	for (block_t b = 0; b < cur.size(); b++)
		usable += cur[b] == 0 && (b >= committed.size() || committed[b] == 0);
	EXPECT_EQ(sm.nr_free().value(), usable);
}

} // namespace

TEST(MetadataSpaceMap, FormatCountsItsOwnBlocks)
{
	SmEnv env(1000, 0);
	ASSERT_TRUE(env.msm);
	EXPECT_EQ(env.msm->nr_blocks().value(), 1000u);
	std::vector<u32> committed = env.check_committed();
	u64 used = 0;
	for (u32 c : committed)
		used += c > 0;
	/* Superblock, index block, one bitmap, the overflow root. */
	EXPECT_EQ(used, 4u);
	EXPECT_EQ(env.msm->nr_free().value(), 1000u - used);
	EXPECT_EQ(env.msm->get_count(0).value(), 1u);
	ASSERT_OK(env.reopen());
	EXPECT_EQ(env.msm->nr_free().value(), 1000u - used);
	env.check_committed();
}

TEST(MetadataSpaceMap, FormatRefusesABadSuperblockLocation)
{
	SparseBlockDevice disk(10);
	BlockCache cache(disk, 32);
	ASSERT_OK(cache.init());
	TransactionManager tm(cache);
	ASSERT_OK(tm.init());
	EXPECT_EQ(MetadataSpaceMap::format(tm, 10).error_code(), -EINVAL);
	EXPECT_EQ(tm.space_map(), nullptr);
	/* Too small for its own structures. */
	SparseBlockDevice tiny(3);
	BlockCache c2(tiny, 32);
	ASSERT_OK(c2.init());
	TransactionManager tm2(c2);
	ASSERT_OK(tm2.init());
	EXPECT_EQ(MetadataSpaceMap::format(tm2, 0).error_code(), -ENOSPC);
}

TEST(MetadataSpaceMap, NoReuseOfBlocksFreedInThisTransaction)
{
	SmEnv env(200, 0);
	std::vector<block_t> mine;
	for (int i = 0; i < 100; i++)
		mine.push_back(env.msm->new_block().value());
	ASSERT_OK(env.commit());
	const block_t victim = mine[50];

	/* Freed now, but committed metadata may still point at it: not before commit. */
	ASSERT_OK(env.msm->dec(victim));
	EXPECT_EQ(env.msm->get_count(victim).value(), 0u);
	u64 free_now = env.msm->nr_free().value();
	u64 got = 0;
	for (;;) {
		auto r = env.msm->new_block();
		if (r.is_error()) {
			ASSERT_EQ(r.error_code(), -ENOSPC);
			break;
		}
		ASSERT_NE(r.value(), victim);
		got++;
	}
	/* Everything nr_free() promised was handed out (less what the map took itself). */
	EXPECT_LE(got, free_now);
	EXPECT_GE(got + 4, free_now);

	/* After the commit that frees it, it is used again (by us or by the map itself). */
	ASSERT_OK(env.abort_and_reopen());
	ASSERT_OK(env.msm->dec(victim));
	ASSERT_OK(env.commit());
	for (;;) {
		auto r = env.msm->new_block();
		if (r.is_error()) {
			EXPECT_EQ(r.error_code(), -ENOSPC);
			break;
		}
	}
	EXPECT_EQ(env.msm->get_count(victim).value(), 1u);
}

/*
 * The workload: the test owns blocks it got from new_block() and changes
 * their counts like the btree would; the map meanwhile allocates and frees
 * its own blocks underneath.
 */
static void run_model(u64 seed, block_t nr_blocks, int nr_ops, bool extend)
{
	SmEnv env(nr_blocks, 0);
	ASSERT_TRUE(env.msm);
	std::vector<u32> refs(nr_blocks, 0), committed_refs = refs;
	std::vector<u32> committed = env.check_committed(refs);
	std::vector<block_t> owned;
	std::mt19937_64 rng(seed);
	auto pick_owned = [&]() -> block_t {
		if (owned.empty())
			return ~block_t(0);
		size_t i = rng() % owned.size();
		block_t b = owned[i];
		if (refs[b] == 0) { /* freed since: forget it */
			owned[i] = owned.back();
			owned.pop_back();
			return ~block_t(0);
		}
		return b;
	};
	auto rebuild_owned = [&]() {
		owned.clear();
		for (block_t b = 0; b < refs.size(); b++)
			if (refs[b])
				owned.push_back(b);
	};
	/*
	 * Any change may need a block (a bitmap or overflow node to shadow):
	 * on a full device it fails with -ENOSPC, and the caller aborts the
	 * transaction. True if that happened (and the model rolled back).
	 */
	int nr_out_of_space = 0;
	auto rolled_back = [&](int code) -> bool {
		if (code == 0)
			return false;
		EXPECT_EQ(code, -ENOSPC);
		auto a = env.abort_and_reopen();
		EXPECT_TRUE(a.is_ok()) << a.error_code();
		refs = committed_refs;
		rebuild_owned();
		nr_out_of_space++;
		return true;
	};

	for (int op = 0; op < nr_ops; op++) {
		unsigned what = rng() % 100;
		SCOPED_TRACE("seed " + std::to_string(seed) + " op " + std::to_string(op) +
			     " kind " + std::to_string(what));
		if (what < 40) {
			auto r = env.msm->new_block();
			if (rolled_back(r.error_code()))
				continue;
			block_t b = r.value();
			ASSERT_LT(b, refs.size());
			ASSERT_EQ(refs[b], 0u) << "handed out block " << b << " that we hold";
			ASSERT_TRUE(b >= committed.size() || committed[b] == 0)
				<< "handed out block " << b << " in use at the last commit";
			ASSERT_EQ(env.msm->get_count(b).value(), 1u);
			refs[b] = 1;
			owned.push_back(b);
		} else if (what < 55) {
			block_t b = pick_owned();
			if (b == ~block_t(0))
				continue;
			if (rolled_back(env.msm->inc(b).error_code()))
				continue;
			refs[b]++;
		} else if (what < 72) {
			block_t b = pick_owned();
			if (b == ~block_t(0))
				continue;
			if (rolled_back(env.msm->dec(b).error_code()))
				continue;
			refs[b]--;
		} else if (what < 78) {
			block_t b = pick_owned();
			if (b == ~block_t(0))
				continue;
			static const u32 vals[] = {0, 1, 2, 3, 5, 40};
			u32 v = vals[rng() % 6];
			if (rolled_back(env.msm->set_count(b, v).error_code()))
				continue;
			refs[b] = v;
		} else if (what < 84) {
			if (rolled_back(env.commit().error_code()))
				continue;
			committed_refs = refs;
			committed = env.check_committed(refs);
		} else if (what < 87) {
			auto r = env.commit();
			if (r.is_ok()) {
				committed_refs = refs;
				committed = env.check_committed(refs);
			}
			ASSERT_OK(r.is_ok() ? env.reopen() : env.abort_and_reopen());
			refs = committed_refs;
			rebuild_owned();
			for (block_t b : owned)
				ASSERT_EQ(env.msm->get_count(b).value(), refs[b]) << "block " << b;
		} else if (what < 89 && extend) {
			block_t extra = 1 + rng() % 2000;
			if (env.msm->nr_blocks().value() + extra > metadata_sm_max_blocks)
				continue;
			block_t new_end = env.msm->nr_blocks().value() + extra;
			env.disk->resize(new_end);
			if (rolled_back(env.msm->extend(extra).error_code()))
				continue;
			refs.resize(std::max<size_t>(refs.size(), new_end), 0);
			committed_refs.resize(refs.size(), 0);
		} else if (what < 90) {
			if (op % 4 == 0) /* reads every block: not too often */
				expect_exact_nr_free(*env.msm, committed);
		} else {
			block_t b = pick_owned();
			if (b == ~block_t(0))
				continue;
			ASSERT_EQ(env.msm->get_count(b).value(), refs[b]) << "block " << b;
			ASSERT_EQ(env.msm->count_is_more_than_one(b).value(), refs[b] > 1);
		}
	}
	if (!rolled_back(env.commit().error_code()))
		env.check_committed(refs);
	if (nr_blocks < 1000) {
		EXPECT_GT(nr_out_of_space, 0) << "the small device never filled up";
	}
}

TEST(MetadataSpaceMap, RandomizedSmallDeviceRunsOutOfSpace)
{
	for (u64 seed : {21, 22, 23})
		run_model(seed, 300, 2500, false);
}

TEST(MetadataSpaceMap, RandomizedAcrossBitmapsWithExtends)
{
	for (u64 seed : {31, 32})
		run_model(seed, E + 500, 2500, true);
}

/*
 * One transaction of many allocations and count changes: the overflow
 * btree grows by thousands of entries (node splits), three bitmaps are
 * shadowed, each change re-entering the map. The queue of deferred changes
 * must stay shallow: bounded by one operation, not by the transaction.
 */
TEST(MetadataSpaceMap, RecursionUnderManyAllocationsInOneTransaction)
{
	SmEnv env(3 * E, 0);
	std::vector<u32> refs(3 * E, 0);
	std::vector<block_t> mine;
	for (int i = 0; i < 40000; i++) {
		ASSERT_VALUE(b, env.msm->new_block());
		ASSERT_EQ(refs[b], 0u);
		refs[b] = 1;
		mine.push_back(b);
	}
	/* Every fourth block gets a count of 3..6: overflow entries by the thousand. */
	for (size_t i = 0; i < mine.size(); i += 4) {
		u32 extra = 2 + i % 4;
		for (u32 k = 0; k < extra; k++)
			ASSERT_OK(env.msm->inc(mine[i]));
		refs[mine[i]] += extra;
	}
	/* And half of those back down through the 3 -> 2 boundary. */
	for (size_t i = 0; i < mine.size(); i += 8) {
		while (refs[mine[i]] > 2) {
			ASSERT_OK(env.msm->dec(mine[i]));
			refs[mine[i]]--;
		}
	}
	std::printf("deferred count changes, deepest queue: %u\n", env.msm->deferred_high_water());
	EXPECT_GT(env.msm->deferred_high_water(), 0u);
	EXPECT_LE(env.msm->deferred_high_water(), 64u);
	ASSERT_OK(env.commit());
	std::vector<u32> committed = env.check_committed(refs);
	SmCheckReport rep;
	ASSERT_OK(check_space_map(*env.tm, SmKind::Metadata, env.metadata_root(), 128, rep));
	EXPECT_EQ(rep.nr_overflow_entries, mine.size() / 8);
	ASSERT_OK(env.reopen());
	for (block_t b : mine)
		ASSERT_EQ(env.msm->get_count(b).value(), refs[b]);
	expect_exact_nr_free(*env.msm, committed);
}

TEST(MetadataSpaceMap, ExtendAcrossBitmapBoundaries)
{
	/* Growing by 2 across a bitmap boundary leaves no room in the new area for the shadows. */
	for (block_t start : {2 * E - 1, E - 1, E, 2 * E - 2}) {
		for (block_t extra : {1, 2, 3, 5}) {
			SCOPED_TRACE("from " + std::to_string(start) + " by " +
				     std::to_string(extra));
			SmEnv env(start, 0);
			/* Use blocks: the last committed bitmap is not this transaction's. */
			std::vector<u32> refs(start + extra, 0);
			for (int i = 0; i < 50; i++) {
				ASSERT_VALUE(b, env.msm->new_block());
				refs[b]++;
			}
			ASSERT_OK(env.commit());
			env.disk->resize(start + extra);
			ASSERT_OK(env.msm->extend(extra));
			EXPECT_EQ(env.msm->nr_blocks().value(), start + extra);
			ASSERT_OK(env.commit());
			env.check_committed(refs);
			ASSERT_OK(env.reopen());
			EXPECT_EQ(env.msm->nr_blocks().value(), start + extra);
			env.check_committed(refs);
		}
	}
}

TEST(MetadataSpaceMap, ExtendLimits)
{
	SmEnv env(100, 0);
	EXPECT_EQ(env.msm->extend(metadata_sm_max_blocks).error_code(), -EINVAL);
	ASSERT_OK(env.msm->extend(0));
	EXPECT_EQ(env.msm->extend(1).error_code(), -EINVAL); /* the device has not grown */
	env.disk->resize(100 + 4 * E);
	ASSERT_OK(env.msm->extend(4 * E));
	EXPECT_EQ(env.msm->nr_blocks().value(), 100 + 4 * E);
	/* The new area is usable at once. */
	u64 free_before = env.msm->nr_free().value();
	EXPECT_GT(free_before, 4 * E);
	ASSERT_OK(env.commit());
	env.check_committed();
}

TEST(MetadataSpaceMap, FormatCapsAnOversizedDevice)
{
	SmEnv env(metadata_sm_max_blocks + 1000, 0);
	EXPECT_EQ(env.msm->nr_blocks().value(), metadata_sm_max_blocks);
	SmCheckReport rep;
	ASSERT_OK(check_space_map(*env.tm, SmKind::Metadata, env.metadata_root(), 128, rep));
	EXPECT_EQ(rep.nr_bitmaps, 255u);
}

TEST(MetadataSpaceMap, LowSpaceCallbackIsEdgeTriggered)
{
	SmEnv env(120, 0);
	int calls = 0;
	env.msm->set_low_space_callback(
		50, [](void *ctx) { ++*static_cast<int *>(ctx); }, &calls);
	std::vector<block_t> got;
	while (env.msm->nr_free().value() > 40)
		got.push_back(env.msm->new_block().value());
	EXPECT_EQ(calls, 1);
	ASSERT_OK(env.commit());
	for (int i = 0; i < 30; i++)
		ASSERT_OK(env.msm->dec(got[i]));
	ASSERT_OK(env.commit()); /* back above 50: re-armed */
	EXPECT_EQ(calls, 1);
	while (env.msm->nr_free().value() > 40)
		ASSERT_TRUE(env.msm->new_block().is_ok());
	EXPECT_EQ(calls, 2);
}

TEST(MetadataSpaceMap, DataAndMetadataMapsTogether)
{
	SmEnv env(4000, 3 * E + 17);
	std::mt19937_64 rng(5);
	std::vector<u32> data(3 * E + 17, 0);
	for (int round = 0; round < 6; round++) {
		for (int i = 0; i < 3000; i++) {
			auto r = env.dsm->new_block();
			ASSERT_TRUE(r.is_ok());
			data[r.value()] = 1;
			if (i % 3 == 0) {
				block_t b = rng() % data.size();
				if (data[b]) {
					ASSERT_OK(env.dsm->inc(b));
					data[b]++;
				}
			}
			if (i % 5 == 0) {
				block_t b = rng() % data.size();
				if (data[b]) {
					ASSERT_OK(env.dsm->dec(b));
					data[b]--;
				}
			}
		}
		ASSERT_OK(env.commit());
		env.check_committed();
		EXPECT_EQ(env.committed_data_counts(), data);
	}
	ASSERT_OK(env.reopen());
	for (block_t b = 0; b < data.size(); b += 97)
		ASSERT_EQ(env.dsm->get_count(b).value(), data[b]);
}

/*
 * A block handed out while the map is recursing is counted only when the
 * outermost call finishes; until then its bitmap says 0. A second nested
 * allocation in the same call must not take it again. Set up: one usable
 * block left, and a change that needs two nested allocations (an overflow
 * insert that splits a full btree leaf). The only correct answer is -ENOSPC.
 */
TEST(MetadataSpaceMap, PendingAllocationsAreNotHandedOutTwice)
{
	SmEnv env(600, 0);
	const u32 leaf_entries = btree_max_entries(sizeof(le32)); /* 336 */
	std::vector<block_t> mine;
	for (u32 i = 0; i <= leaf_entries; i++)
		mine.push_back(env.msm->new_block().value());
	ASSERT_OK(env.commit());
	/* Fill the overflow tree's root leaf exactly: counts of 3. */
	for (u32 i = 0; i < leaf_entries; i++) {
		ASSERT_OK(env.msm->inc(mine[i]));
		ASSERT_OK(env.msm->inc(mine[i]));
	}
	const block_t y = mine[leaf_entries];
	ASSERT_OK(env.msm->inc(y)); /* count 2: the next inc needs an overflow entry */
	ASSERT_OK(env.commit());
	SmCheckReport rep;
	ASSERT_OK(check_space_map(*env.tm, SmKind::Metadata, env.metadata_root(), 128, rep));
	ASSERT_EQ(rep.nr_overflow_entries, leaf_entries);

	while (env.msm->nr_free().value() > 1)
		ASSERT_TRUE(env.msm->new_block().is_ok());
	ASSERT_EQ(env.msm->nr_free().value(), 1u);
	EXPECT_EQ(env.msm->inc(y).error_code(), -ENOSPC);
	ASSERT_OK(env.abort_and_reopen());
	EXPECT_EQ(env.msm->get_count(y).value(), 2u);
	std::vector<u32> refs(600, 0);
	for (u32 i = 0; i < leaf_entries; i++)
		refs[mine[i]] = 3;
	refs[y] = 2;
	env.check_committed(refs);
}
