// SPDX-License-Identifier: GPL-2.0
// The disk (data) space map against a reference array of counts.
#include <random>

#include "sm_env.h"

using namespace dmxx::pdata;
using namespace dmxx::pdata::test;
using namespace dmxx;

namespace {

/* The counts the map must hold: in the open transaction, and at the last commit. */
struct Model {
	std::vector<u32> cur, committed;

	bool usable(block_t b) const
	{
		return cur[b] == 0 && (b >= committed.size() || committed[b] == 0);
	}
	u64 nr_usable() const
	{
		u64 n = 0;
		for (block_t b = 0; b < cur.size(); b++)
			n += usable(b);
		return n;
	}
};

void expect_counts(DiskSpaceMap &sm, const std::vector<u32> &want)
{
	int shown = 0;
	for (block_t b = 0; b < want.size(); b++) {
		auto r = sm.get_count(b);
		ASSERT_TRUE(r.is_ok()) << "get_count(" << b << "): " << r.error_code();
		if (r.value() != want[b] && shown++ < 10)
			ADD_FAILURE() << "block " << b << ": count " << r.value() << ", want "
				      << want[b];
	}
}

} // namespace

TEST(DiskSpaceMap, FreshMapIsEmpty)
{
	SmEnv env(256, 1000);
	ASSERT_TRUE(env.dsm);
	EXPECT_EQ(env.dsm->nr_blocks().value(), 1000u);
	EXPECT_EQ(env.dsm->nr_free().value(), 1000u);
	EXPECT_EQ(env.dsm->get_count(0).value(), 0u);
	EXPECT_EQ(env.dsm->get_count(999).value(), 0u);
	EXPECT_EQ(env.dsm->get_count(1000).error_code(), -EINVAL);
	EXPECT_EQ(env.dsm->inc(1000).error_code(), -EINVAL);
	EXPECT_EQ(env.dsm->dec(5).error_code(), -EINVAL); /* count is 0 */
	EXPECT_EQ(env.dsm->root_size(), 32u);
	env.check_committed();
}

TEST(DiskSpaceMap, CountsAcrossTheOverflowBoundary)
{
	SmEnv env(256, 1000);
	const block_t b = 77;
	SmCheckReport rep;
	for (u32 want = 1; want <= 12; want++) {
		ASSERT_OK(env.dsm->inc(b));
		EXPECT_EQ(env.dsm->get_count(b).value(), want);
		EXPECT_EQ(env.dsm->count_is_more_than_one(b).value(), want > 1);
		ASSERT_OK(env.commit());
		env.check_committed();
		ASSERT_OK(check_space_map(*env.tm, SmKind::Disk, env.data_root(), 128, rep));
		EXPECT_EQ(rep.nr_overflow_entries, want >= 3 ? 1u : 0u) << "count " << want;
	}
	ASSERT_OK(env.reopen());
	EXPECT_EQ(env.dsm->get_count(b).value(), 12u);
	for (u32 want = 11;; want--) {
		ASSERT_OK(env.dsm->dec(b));
		EXPECT_EQ(env.dsm->get_count(b).value(), want);
		ASSERT_OK(env.commit());
		ASSERT_OK(check_space_map(*env.tm, SmKind::Disk, env.data_root(), 128, rep));
		EXPECT_EQ(rep.nr_overflow_entries, want >= 3 ? 1u : 0u) << "count " << want;
		EXPECT_EQ(rep.nr_allocated, want > 0 ? 1u : 0u);
		if (want == 0)
			break;
	}
	EXPECT_EQ(env.dsm->dec(b).error_code(), -EINVAL);
}

TEST(DiskSpaceMap, SetCountAnyTransition)
{
	SmEnv env(256, 1000);
	const u32 values[] = {0, 1, 2, 3, 4, 2, 1000000, 3, 0, 5, 1, 0, 0, 2, 70000, 0};
	u32 prev = 0;
	for (u32 v : values) {
		ASSERT_OK(env.dsm->set_count(10, v));
		EXPECT_EQ(env.dsm->get_count(10).value(), v) << prev << " -> " << v;
		/* Freed in this transaction is not free yet: the commit still uses it. */
		EXPECT_EQ(env.dsm->nr_free().value(), 1000u - (v > 0 || prev > 0));
		prev = v;
		ASSERT_OK(env.commit());
		env.check_committed();
		SmCheckReport rep;
		ASSERT_OK(check_space_map(*env.tm, SmKind::Disk, env.data_root(), 128, rep));
	}
	ASSERT_OK(env.dsm->set_count(10, 0xfffffffeu));
	ASSERT_OK(env.dsm->inc(10));
	EXPECT_EQ(env.dsm->inc(10).error_code(), -EOVERFLOW);
}

TEST(DiskSpaceMap, NoReuseOfBlocksFreedInThisTransaction)
{
	SmEnv env(256, 100);
	for (block_t i = 0; i < 100; i++) {
		ASSERT_VALUE(b, env.dsm->new_block());
		EXPECT_EQ(b, i);
	}
	EXPECT_EQ(env.dsm->new_block().error_code(), -ENOSPC);
	EXPECT_EQ(env.dsm->nr_free().value(), 0u);
	ASSERT_OK(env.commit());

	/* Freed now, but the committed transaction still uses it: not before commit. */
	ASSERT_OK(env.dsm->dec(42));
	EXPECT_EQ(env.dsm->get_count(42).value(), 0u);
	EXPECT_EQ(env.dsm->nr_free().value(), 0u);
	EXPECT_EQ(env.dsm->new_block().error_code(), -ENOSPC);
	ASSERT_OK(env.commit());
	EXPECT_EQ(env.dsm->nr_free().value(), 1u);
	ASSERT_VALUE(again, env.dsm->new_block());
	EXPECT_EQ(again, 42u);

	/* A block allocated and freed within one transaction was never committed: reusable. */
	ASSERT_OK(env.commit());
	ASSERT_OK(env.dsm->dec(7));
	ASSERT_OK(env.commit());
	ASSERT_VALUE(x, env.dsm->new_block());
	EXPECT_EQ(x, 7u);
	ASSERT_OK(env.dsm->dec(x));
	EXPECT_EQ(env.dsm->nr_free().value(), 1u);
	ASSERT_VALUE(y, env.dsm->new_block());
	EXPECT_EQ(y, 7u);
}

TEST(DiskSpaceMap, ExtendAcrossBitmaps)
{
	SmEnv env(1024, 100);
	const block_t E = RefCounts::entries_per_bitmap;
	ASSERT_OK(env.dsm->extend(2 * E));
	EXPECT_EQ(env.dsm->nr_blocks().value(), 100 + 2 * E);
	EXPECT_EQ(env.dsm->nr_free().value(), 100 + 2 * E);
	ASSERT_OK(env.dsm->set_count(E + 5, 4));
	ASSERT_OK(env.dsm->inc(2 * E + 99));
	ASSERT_OK(env.commit());
	env.check_committed();
	ASSERT_OK(env.reopen());
	EXPECT_EQ(env.dsm->get_count(E + 5).value(), 4u);
	EXPECT_EQ(env.dsm->get_count(2 * E + 99).value(), 1u);
	EXPECT_EQ(env.dsm->get_count(2 * E + 100).error_code(), -EINVAL);
	EXPECT_EQ(env.dsm->nr_free().value(), 100 + 2 * E - 2);
	/* A range spanning a bitmap boundary. */
	ASSERT_OK(env.dsm->inc_range(E - 3, E + 3));
	for (block_t b = E - 3; b < E + 3; b++)
		EXPECT_EQ(env.dsm->get_count(b).value(), b == E + 5 ? 5u : 1u);
	ASSERT_OK(env.dsm->dec_range(E - 3, E + 3));
	ASSERT_OK(env.commit());
	env.check_committed();
}

/*
 * The randomized workload: every call is mirrored on the model, every
 * answer checked; commits compare the whole committed image, reopens the
 * whole map.
 */
static void run_model(u64 seed, block_t data_blocks, int nr_ops, bool extend)
{
	SmEnv env(2048, data_blocks);
	ASSERT_TRUE(env.dsm);
	Model m;
	m.cur.assign(data_blocks, 0);
	m.committed = m.cur;
	std::mt19937_64 rng(seed);
	auto pick_used = [&]() -> block_t {
		block_t start = rng() % m.cur.size();
		for (block_t i = 0; i < m.cur.size(); i++) {
			block_t b = (start + i) % m.cur.size();
			if (m.cur[b])
				return b;
		}
		return ~block_t(0);
	};

	for (int op = 0; op < nr_ops; op++) {
		unsigned what = rng() % 100;
		SCOPED_TRACE("seed " + std::to_string(seed) + " op " + std::to_string(op) +
			     " kind " + std::to_string(what));
		if (what < 35) {
			bool any = m.nr_usable() > 0;
			auto r = env.dsm->new_block();
			if (!any) {
				ASSERT_EQ(r.error_code(), -ENOSPC);
			} else {
				ASSERT_TRUE(r.is_ok()) << r.error_code();
				block_t b = r.value();
				ASSERT_LT(b, m.cur.size());
				ASSERT_TRUE(m.usable(b)) << "block " << b << " count " << m.cur[b]
							 << " committed " << m.committed[b];
				m.cur[b] = 1;
			}
		} else if (what < 50) {
			block_t b = pick_used();
			if (b == ~block_t(0))
				continue;
			ASSERT_OK(env.dsm->inc(b));
			m.cur[b]++;
		} else if (what < 68) {
			block_t b = pick_used();
			if (b == ~block_t(0))
				continue;
			ASSERT_OK(env.dsm->dec(b));
			m.cur[b]--;
		} else if (what < 74) {
			block_t b = rng() % m.cur.size();
			block_t e = std::min<block_t>(m.cur.size(), b + 1 + rng() % 70);
			ASSERT_OK(env.dsm->inc_range(b, e));
			for (block_t i = b; i < e; i++)
				m.cur[i]++;
		} else if (what < 78) {
			block_t b = pick_used();
			if (b == ~block_t(0))
				continue;
			block_t e = b;
			while (e < m.cur.size() && m.cur[e] && e - b < 70)
				e++;
			ASSERT_OK(env.dsm->dec_range(b, e));
			for (block_t i = b; i < e; i++)
				m.cur[i]--;
		} else if (what < 86) {
			static const u32 vals[] = {0, 1, 2, 3, 4, 9, 300, 123456};
			block_t b = rng() % 3 ? pick_used() : rng() % m.cur.size();
			if (b == ~block_t(0))
				continue;
			u32 v = vals[rng() % 8];
			ASSERT_OK(env.dsm->set_count(b, v));
			m.cur[b] = v;
		} else if (what < 92) {
			ASSERT_OK(env.commit());
			m.committed = m.cur;
			EXPECT_EQ(env.committed_data_counts(), m.committed);
			env.check_committed();
		} else if (what < 95) {
			ASSERT_OK(env.commit());
			m.committed = m.cur;
			ASSERT_OK(env.reopen());
			/* The whole image through the checker, a sample through the map. */
			EXPECT_EQ(env.committed_data_counts(), m.committed);
			for (int i = 0; i < 500; i++) {
				block_t b = rng() % m.cur.size();
				ASSERT_EQ(env.dsm->get_count(b).value(), m.cur[b]) << "block " << b;
			}
		} else if (what < 97 && extend) {
			block_t extra = 1 + rng() % 4000;
			ASSERT_OK(env.dsm->extend(extra));
			m.cur.resize(m.cur.size() + extra, 0);
		} else {
			block_t b = rng() % m.cur.size();
			ASSERT_VALUE(c, env.dsm->get_count(b));
			ASSERT_EQ(c, m.cur[b]) << "block " << b;
			ASSERT_VALUE(more, env.dsm->count_is_more_than_one(b));
			ASSERT_EQ(more, m.cur[b] > 1);
		}
		if (op % 16 == 0) {
			ASSERT_EQ(env.dsm->nr_free().value(), m.nr_usable());
			ASSERT_EQ(env.dsm->nr_blocks().value(), m.cur.size());
		}
	}
	ASSERT_OK(env.commit());
	m.committed = m.cur;
	ASSERT_OK(env.reopen());
	expect_counts(*env.dsm, m.cur);
	EXPECT_EQ(env.dsm->nr_free().value(), m.nr_usable());
	env.check_committed();
}

/* A small device: the workload runs out of space again and again. */
TEST(DiskSpaceMap, RandomizedSmallDeviceRunsOutOfSpace)
{
	for (u64 seed : {1, 2, 3})
		run_model(seed, 300, 2500, false);
}

/* Several bitmaps, extensions, large counts. */
TEST(DiskSpaceMap, RandomizedAcrossBitmapsWithExtends)
{
	for (u64 seed : {11, 12})
		run_model(seed, 20000, 2500, true);
}
