// SPDX-License-Identifier: GPL-2.0
/*
 * Btrees against reference models: random workloads, multi-level trees,
 * shared subtrees, iteration, corruption and allocation failures. The
 * structural checker (fill >= 1/3, sorted keys, equal leaf depth, checksums)
 * and a full reference-count audit run after every batch.
 */
#include "pdata_fixture.h"

#include "persistent/btree_node.h"

#include <dmxx/user/testing.h>

#include <random>
#include <set>
#include <thread>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace dmxx::pdata::test {
namespace {

/*
 * Values that are references to "data blocks": the tree must inc them when a
 * shared leaf is copied and dec them when they are overwritten, removed or
 * their tree deleted. The test keeps the counts and checks them.
 */
class CountedValue final : public ValueType {
public:
	CountedValue() : ValueType(8) {}
	Result<void> inc(const void *values, u32 count) override
	{
		for (u32 i = 0; i < count; i++)
			refs[load_le64(static_cast<const u8 *>(values) + 8 * i)]++;
		return {};
	}
	Result<void> dec(const void *values, u32 count) override
	{
		for (u32 i = 0; i < count; i++) {
			u64 v = load_le64(static_cast<const u8 *>(values) + 8 * i);
			if (refs[v] <= 0) {
				ADD_FAILURE() << "dec of value " << v << " with no reference";
				return err(EINVAL);
			}
			if (--refs[v] == 0)
				refs.erase(v);
		}
		return {};
	}
	/* A new value with one reference, which the caller hands to the tree. */
	u64 fresh()
	{
		u64 v = next++;
		refs[v] = 1;
		return v;
	}
	std::map<u64, int> refs;
	u64 next = 1;
};

using Model = std::map<u64, u64>;

Model contents(Btree &t, block_t root)
{
	Model m;
	u64 prev = 0;
	bool first = true;
	auto r = t.walk(root, [&](const u64 *k, const void *v) -> Result<void> {
		EXPECT_TRUE(first || k[0] > prev) << "walk out of order at " << k[0];
		first = false;
		prev = k[0];
		m[k[0]] = load_le64(v);
		return {};
	});
	EXPECT_OK(r);
	return m;
}

/* Structure, then contents, then every block's count. */
void check_all(Env &e, Btree &t, block_t root, const Model &m, u32 value_size = 8)
{
	BtreeCheckReport rep;
	auto r = check_btree(*e.tm, root, t.levels(), value_size, rep);
	ASSERT_OK(r) << rep.failure.reason;
	ASSERT_EQ(rep.nr_entries, m.size());
	ASSERT_EQ(contents(t, root), m);
	std::string bad = audit_counts(*e.tm, e.sm, {{root, t.levels()}}, {{0, 1}});
	ASSERT_EQ(bad, "");
}

/* After a commit, the same checks on what is on the DEVICE (fresh cache: checksums). */
void check_on_disk(Env &e, block_t root, unsigned levels, u32 value_size)
{
	BlockCache c(*e.dev, 256);
	ASSERT_OK(c.init());
	TransactionManager tm(c);
	ASSERT_OK(tm.init());
	BtreeCheckReport rep;
	ASSERT_OK(check_btree(tm, root, levels, value_size, rep)) << rep.failure.reason;
}

TEST_F(BtreeTest, MaxEntriesAsTheKernelComputesThem)
{
	EXPECT_EQ(btree_max_entries(8), 252u);
	EXPECT_EQ(btree_max_entries(16), 168u);
	EXPECT_EQ(btree_max_entries(24), 126u); /* thin device details */
	EXPECT_EQ(btree_max_entries(BTREE_MAX_VALUE_SIZE), 3u);
	Env e;
	PlainValue vt(24);
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	ReadRef r = must(e.tm->read_lock(root, &btree_node_validator()));
	ConstNode n(r.data());
	EXPECT_TRUE(n.is_leaf());
	EXPECT_EQ(n.max_entries(), 126u);
	EXPECT_EQ(n.value_size(), 24u);
	EXPECT_EQ(n.nr_entries(), 0u);
}

TEST_F(BtreeTest, EmptyTree)
{
	Env e;
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	u64 k = 5, got;
	u8 v[8];
	EXPECT_EQ(t.lookup(root, &k, v).error_code(), -ENODATA);
	EXPECT_EQ(t.lookup_next(root, &k, &got, v).error_code(), -ENODATA);
	EXPECT_EQ(t.find_lowest_key(root, &got).error_code(), -ENODATA);
	EXPECT_EQ(t.find_highest_key(root, &got).error_code(), -ENODATA);
	EXPECT_EQ(t.remove(root, &k).error_code(), -ENODATA);
	u64 n = 99;
	EXPECT_EQ(must(t.remove_range(root, &k, 100, &n)), root);
	EXPECT_EQ(n, 0u);
	check_all(e, t, root, {});
	ASSERT_OK(t.del(root));
	EXPECT_EQ(audit_counts(*e.tm, e.sm, {}, {{0, 1}}), "");
}

TEST_F(BtreeTest, InsertReportsNewAndOverwriteDecsTheOldValue)
{
	Env e;
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	u64 k = 7;
	le64 a = to_le64(vt.fresh()), b = to_le64(vt.fresh());
	bool inserted = false;
	root = must(t.insert(root, &k, &a, &inserted));
	EXPECT_TRUE(inserted);
	root = must(t.insert(root, &k, &b, &inserted));
	EXPECT_FALSE(inserted);
	EXPECT_EQ(vt.refs.count(from_le(a)), 0u) << "the overwritten value was not dec'd";
	/* Overwriting with an equal value keeps the one reference. */
	root = must(t.insert(root, &k, &b, &inserted));
	EXPECT_EQ(vt.refs[from_le(b)], 1);
	u8 got[8];
	ASSERT_OK(t.lookup(root, &k, got));
	EXPECT_EQ(load_le64(got), from_le(b));
}

/* Random operations against std::map, with full checks after every batch and periodic commits. */
void random_workload(u32 value_size, u64 key_space, int ops, unsigned seed, unsigned min_depth,
		     unsigned cache_blocks = 4096)
{
	unsigned max_depth = 0;
	u64 max_nodes = 0;
	Env e(16384, cache_blocks);
	CountedValue counted;
	PlainValue plain(value_size);
	ValueType &vt = value_size == 8 ? static_cast<ValueType &>(counted) : plain;
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	Model m;
	std::mt19937_64 rng(seed);
	std::vector<u8> val(value_size), got(value_size);
	auto value_of = [&](u64 v) {
		std::fill(val.begin(), val.end(), u8(v));
		store_le64(val.data(), v);
	};
	u64 txn = 1;

	for (int i = 1; i <= ops; i++) {
		u64 k = rng() % key_space;
		int op = int(rng() % 100);
		if (op < 55) {
			u64 v = value_size == 8 ? counted.fresh() : rng();
			value_of(v);
			bool inserted;
			root = must(t.insert(root, &k, val.data(), &inserted));
			ASSERT_EQ(inserted, !m.count(k));
			m[k] = v;
		} else if (op < 77) {
			auto r = t.remove(root, &k);
			if (m.count(k)) {
				ASSERT_TRUE(r.is_ok()) << r.error_code();
				root = r.value();
				m.erase(k);
			} else {
				ASSERT_EQ(r.error_code(), -ENODATA);
			}
		} else if (op < 98) {
			auto r = t.lookup(root, &k, got.data());
			if (m.count(k)) {
				ASSERT_OK(r);
				ASSERT_EQ(load_le64(got.data()), m[k]);
			} else {
				ASSERT_EQ(r.error_code(), -ENODATA);
			}
			u64 nk;
			auto n = t.lookup_next(root, &k, &nk, got.data());
			auto it = m.lower_bound(k);
			if (it == m.end()) {
				ASSERT_EQ(n.error_code(), -ENODATA);
			} else {
				ASSERT_OK(n);
				ASSERT_EQ(nk, it->first);
				ASSERT_EQ(load_le64(got.data()), it->second);
			}
		} else {
			u64 end = k + 1 + rng() % std::min<u64>(key_space / 50 + 1, 64);
			u64 removed;
			root = must(t.remove_range(root, &k, end, &removed));
			u64 expect = 0;
			for (auto it = m.lower_bound(k); it != m.end() && it->first < end;)
				it = m.erase(it), expect++;
			ASSERT_EQ(removed, expect);
		}
		if (i % 500 == 0) {
			BtreeCheckReport rep;
			ASSERT_OK(check_btree(*e.tm, root, 1, value_size, rep)) << rep.failure.reason;
			ASSERT_EQ(rep.nr_entries, m.size());
			max_depth = std::max(max_depth, rep.depth);
			max_nodes = std::max(max_nodes, rep.nr_nodes);
			if (value_size == 8)
				check_all(e, t, root, m);
			if (::testing::Test::HasFatalFailure())
				return;
		}
		if (i % 2000 == 0) {
			ASSERT_OK(e.commit(root, txn++));
			check_on_disk(e, root, 1, value_size);
		}
	}
	/* The workload must have grown a real tree, or it proved little. */
	EXPECT_GE(max_depth, min_depth);

	::testing::Test::RecordProperty("size_before_drain", int(m.size()));
	/* Drain in random order: the tree shrinks back through every depth. */
	std::vector<u64> keys;
	for (auto &kv : m)
		keys.push_back(kv.first);
	std::shuffle(keys.begin(), keys.end(), rng);
	for (size_t i = 0; i < keys.size(); i++) {
		root = must(t.remove(root, &keys[i]));
		m.erase(keys[i]);
		if (i % 700 == 0 || i + 1 == keys.size()) {
			BtreeCheckReport rep;
			ASSERT_OK(check_btree(*e.tm, root, 1, value_size, rep)) << rep.failure.reason;
			ASSERT_EQ(rep.nr_entries, m.size());
			if (value_size == 8)
				check_all(e, t, root, m);
			if (::testing::Test::HasFatalFailure())
				return;
		}
	}
	{
		BtreeCheckReport rep;
		ASSERT_OK(check_btree(*e.tm, root, 1, value_size, rep));
		EXPECT_EQ(rep.nr_nodes, 1u);
	}
	::testing::Test::RecordProperty("max_depth", int(max_depth));
	::testing::Test::RecordProperty("max_nodes", int(max_nodes));

	if (value_size == 8) {
		ASSERT_OK(t.del(root));
		EXPECT_TRUE(counted.refs.empty()) << counted.refs.size() << " values leaked";
		EXPECT_EQ(audit_counts(*e.tm, e.sm, {}, {{0, 1}}), "");
	}
}

TEST_F(BtreeRandomTest, DenseKeys8ByteValues) { random_workload(8, 3000, 20000, 1, 2); }
TEST_F(BtreeRandomTest, SparseKeys8ByteValues) { random_workload(8, u64(1) << 40, 12000, 2, 2); }
/* A 16-block cache: blocks are evicted and written back in the middle of updates. */
TEST_F(BtreeRandomTest, TinyCache) { random_workload(8, 20000, 12000, 5, 2, 16); }
/* 9 entries per leaf: deep trees; the drain at the end merges internal nodes level by level. */
TEST_F(BtreeRandomTest, TinyLeavesDeepTree) { random_workload(400, 20000, 30000, 4, 3); }
/* 108-byte entries: 36 per node, so the tree is deep and rebalances constantly. */
TEST_F(BtreeRandomTest, BigValuesDeepTree) { random_workload(100, 20000, 30000, 3, 3); }

TEST_F(BtreeTest, AscendingDescendingThenRemoveEverything)
{
	Env e(16384, 4096);
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	Model m;
	for (u64 k = 0; k < 20000; k += 2) {
		le64 v = to_le64(vt.fresh());
		root = must(t.insert(root, &k, &v));
		m[k] = from_le(v);
	}
	for (u64 k = 39999; k < 40000; k -= 2) {
		le64 v = to_le64(vt.fresh());
		root = must(t.insert(root, &k, &v));
		m[k] = from_le(v);
		if (k < 20001)
			break;
	}
	check_all(e, t, root, m);
	ASSERT_OK(e.commit(root, 1));
	std::vector<u64> keys;
	for (auto &kv : m)
		keys.push_back(kv.first);
	std::shuffle(keys.begin(), keys.end(), std::mt19937_64(7));
	for (size_t i = 0; i < keys.size(); i++) {
		root = must(t.remove(root, &keys[i]));
		m.erase(keys[i]);
		if (i % 1000 == 0) {
			check_all(e, t, root, m);
			if (::testing::Test::HasFatalFailure())
				return;
		}
	}
	check_all(e, t, root, m);
	BtreeCheckReport rep;
	ASSERT_OK(check_btree(*e.tm, root, 1, 8, rep));
	EXPECT_EQ(rep.depth, 1u) << "an empty tree is one leaf";
	EXPECT_EQ(rep.nr_nodes, 1u);
	EXPECT_TRUE(vt.refs.empty());
}

TEST_F(BtreeTest, RemoveRangeAcrossManyLeaves)
{
	Env e(16384, 4096);
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	Model m;
	for (u64 k = 0; k < 30000; k++) {
		le64 v = to_le64(vt.fresh());
		root = must(t.insert(root, &k, &v));
		m[k] = from_le(v);
	}
	u64 lo = 1234, n;
	root = must(t.remove_range(root, &lo, 28000, &n));
	EXPECT_EQ(n, 28000u - 1234u);
	for (u64 k = 1234; k < 28000; k++)
		m.erase(k);
	check_all(e, t, root, m);
	lo = 0;
	root = must(t.remove_range(root, &lo, ~u64(0), &n));
	EXPECT_EQ(n, m.size());
	check_all(e, t, root, {});
	EXPECT_TRUE(vt.refs.empty());
}

TEST_F(BtreeTest, LowestHighestAndNext)
{
	Env e;
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	std::set<u64> keys;
	std::mt19937_64 rng(11);
	for (int i = 0; i < 5000; i++) {
		u64 k = rng() >> 1;
		le64 v = to_le64(vt.fresh());
		root = must(t.insert(root, &k, &v));
		keys.insert(k);
	}
	u64 got;
	ASSERT_OK(t.find_lowest_key(root, &got));
	EXPECT_EQ(got, *keys.begin());
	ASSERT_OK(t.find_highest_key(root, &got));
	EXPECT_EQ(got, *keys.rbegin());
	for (int i = 0; i < 2000; i++) {
		u64 probe = rng() >> 1;
		auto it = keys.lower_bound(probe);
		auto r = t.lookup_next(root, &probe, &got, nullptr);
		if (it == keys.end()) {
			EXPECT_EQ(r.error_code(), -ENODATA);
		} else {
			ASSERT_OK(r);
			EXPECT_EQ(got, *it);
		}
	}
	/* Range walk = the model's range. */
	u64 lo = *std::next(keys.begin(), 100), hi = *std::next(keys.begin(), 3100);
	std::vector<u64> seen;
	ASSERT_OK(t.walk_range(root, nullptr, lo, hi, [&](const u64 *k, const void *) -> Result<void> {
		seen.push_back(k[0]);
		return {};
	}));
	EXPECT_EQ(seen, std::vector<u64>(std::next(keys.begin(), 100), std::next(keys.begin(), 3100)));
	/* A visitor's error stops the walk and comes back. */
	int calls = 0;
	auto r = t.walk(root, [&](const u64 *, const void *) -> Result<void> {
		if (++calls == 10)
			return err(EINTR);
		return {};
	});
	EXPECT_EQ(r.error_code(), -EINTR);
	EXPECT_EQ(calls, 10);
}

/* ---- multi-level trees ------------------------------------------------------------- */

using Model2 = std::map<std::pair<u64, u64>, u64>;

Model2 contents2(Btree &t, block_t root)
{
	Model2 m;
	EXPECT_OK(t.walk(root, [&](const u64 *k, const void *v) -> Result<void> {
		m[{k[0], k[1]}] = load_le64(v);
		return {};
	}));
	return m;
}

TEST_F(BtreeMultiLevelTest, RandomAgainstModel)
{
	Env e(16384, 4096);
	CountedValue vt;
	Btree t(*e.tm, 2, vt);
	block_t root = must(t.create_empty());
	Model2 m;
	std::mt19937_64 rng(5);
	for (int i = 1; i <= 15000; i++) {
		u64 k[2] = {rng() % 8, rng() % 3000};
		int op = int(rng() % 100);
		if (op < 60) {
			le64 v = to_le64(vt.fresh());
			bool ins;
			root = must(t.insert(root, k, &v, &ins));
			ASSERT_EQ(ins, !m.count({k[0], k[1]}));
			m[{k[0], k[1]}] = from_le(v);
		} else if (op < 85) {
			auto r = t.remove(root, k);
			if (m.erase({k[0], k[1]})) {
				ASSERT_OK(r);
				root = r.value();
			} else {
				ASSERT_EQ(r.error_code(), -ENODATA);
			}
		} else if (op < 95) {
			u8 got[8];
			auto r = t.lookup(root, k, got);
			auto it = m.find({k[0], k[1]});
			if (it == m.end()) {
				ASSERT_EQ(r.error_code(), -ENODATA);
			} else {
				ASSERT_EQ(load_le64(got), it->second);
			}
		} else {
			u64 end = k[1] + rng() % 200, n;
			root = must(t.remove_range(root, k, end, &n));
			u64 expect = 0;
			for (auto it = m.lower_bound({k[0], k[1]});
			     it != m.end() && it->first.first == k[0] && it->first.second < end;)
				it = m.erase(it), expect++;
			ASSERT_EQ(n, expect);
		}
		if (i % 1000 == 0) {
			BtreeCheckReport rep;
			ASSERT_OK(check_btree(*e.tm, root, 2, 8, rep)) << rep.failure.reason;
			ASSERT_EQ(rep.nr_entries, m.size());
			ASSERT_EQ(contents2(t, root), m);
			ASSERT_EQ(audit_counts(*e.tm, e.sm, {{root, 2}}, {{0, 1}}), "");
		}
		if (i % 5000 == 0) {
			ASSERT_OK(e.commit(root, u64(i)));
			check_on_disk(e, root, 2, 8);
		}
	}
	/* Per-prefix walks and next. */
	for (u64 dev = 0; dev < 8; dev++) {
		std::vector<u64> seen;
		ASSERT_OK(t.walk_range(root, &dev, 100, 2000, [&](const u64 *k, const void *) -> Result<void> {
			EXPECT_EQ(k[0], dev);
			seen.push_back(k[1]);
			return {};
		}));
		std::vector<u64> want;
		for (auto it = m.lower_bound({dev, 100}); it != m.end() && it->first.first == dev &&
							   it->first.second < 2000;
		     ++it)
			want.push_back(it->first.second);
		EXPECT_EQ(seen, want);
	}
	u64 missing[2] = {99, 0}, got;
	EXPECT_EQ(t.lookup_next(root, missing, &got, nullptr).error_code(), -ENODATA);
	ASSERT_OK(t.del(root));
	EXPECT_TRUE(vt.refs.empty());
	EXPECT_EQ(audit_counts(*e.tm, e.sm, {}, {{0, 1}}), "");
}

/* ---- shared subtrees --------------------------------------------------------------- */

TEST_F(BtreeSharedTest, CloneModifyBothDeleteBoth)
{
	Env e(16384, 4096);
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t a = must(t.create_empty());
	Model ma;
	for (u64 k = 0; k < 8000; k++) {
		le64 v = to_le64(vt.fresh());
		a = must(t.insert(a, &k, &v));
		ma[k] = from_le(v);
	}
	ASSERT_OK(e.commit(a, 1));

	/* A snapshot: one more reference to the root. */
	ASSERT_OK(e.tm->inc(a));
	block_t b = a;
	Model mb = ma;
	std::mt19937_64 rng(3);
	for (int i = 0; i < 4000; i++) {
		bool on_a = rng() & 1;
		block_t &root = on_a ? a : b;
		Model &m = on_a ? ma : mb;
		u64 k = rng() % 10000;
		if (rng() % 3) {
			le64 v = to_le64(vt.fresh());
			root = must(t.insert(root, &k, &v));
			m[k] = from_le(v);
		} else if (m.count(k)) {
			root = must(t.remove(root, &k));
			m.erase(k);
		}
		if (i % 500 == 0) {
			ASSERT_EQ(contents(t, a), ma);
			ASSERT_EQ(contents(t, b), mb);
			ASSERT_EQ(audit_counts(*e.tm, e.sm, {{a, 1}, {b, 1}}, {{0, 1}}), "");
		}
		if (i == 2000) {
			ASSERT_OK(e.commit(a, 2));
		}
	}
	/* Each value is referenced once per tree that holds it. */
	std::map<u64, int> held;
	for (auto &kv : ma)
		held[kv.second]++;
	for (auto &kv : mb)
		held[kv.second]++;
	ASSERT_EQ(vt.refs, held);
	BtreeCheckReport rep;
	ASSERT_OK(check_btree(*e.tm, a, 1, 8, rep)) << rep.failure.reason;
	ASSERT_OK(check_btree(*e.tm, b, 1, 8, rep)) << rep.failure.reason;

	ASSERT_OK(t.del(a));
	ASSERT_EQ(contents(t, b), mb) << "deleting one tree damaged its clone";
	ASSERT_EQ(audit_counts(*e.tm, e.sm, {{b, 1}}, {{0, 1}}), "");
	ASSERT_OK(t.del(b));
	EXPECT_TRUE(vt.refs.empty()) << vt.refs.size() << " values still referenced";
	EXPECT_EQ(audit_counts(*e.tm, e.sm, {}, {{0, 1}}), "");
}

/*
 * Thin's pattern: a two-level (device, block) tree plus a one-level view of
 * its top level whose values are subtree roots; a snapshot shares the
 * origin's subtree, deleting a device deletes its subtree through the view.
 */
class SubtreeValue final : public ValueType {
public:
	SubtreeValue(TransactionManager &tm, ValueType &leaf_vt)
		: ValueType(8), m_tm(tm), m_leaf(tm, 1, leaf_vt)
	{
	}
	Result<void> inc(const void *values, u32 count) override
	{
		for (u32 i = 0; i < count; i++)
			TRY(m_tm.inc(load_le64(static_cast<const u8 *>(values) + 8 * i)));
		return {};
	}
	Result<void> dec(const void *values, u32 count) override
	{
		for (u32 i = 0; i < count; i++)
			TRY(m_leaf.del(load_le64(static_cast<const u8 *>(values) + 8 * i)));
		return {};
	}

private:
	TransactionManager &m_tm;
	Btree m_leaf;
};

TEST_F(BtreeSharedTest, ThinStyleSnapshotsOfSnapshots)
{
	Env e(16384, 4096);
	CountedValue vt;
	SubtreeValue sub_vt(*e.tm, vt);
	Btree map(*e.tm, 2, vt);       /* (dev, block) -> data */
	Btree devs(*e.tm, 1, sub_vt);  /* dev -> subtree root */
	block_t root = must(map.create_empty());
	std::map<u64, Model> m;
	std::mt19937_64 rng(9);
	auto write = [&](u64 dev, u64 blk) {
		u64 k[2] = {dev, blk};
		le64 v = to_le64(vt.fresh());
		root = must(map.insert(root, k, &v));
		m[dev][blk] = from_le(v);
	};
	for (u64 b = 0; b < 3000; b++)
		write(0, b);
	ASSERT_OK(e.commit(root, 1));

	u64 next_dev = 1;
	for (int round = 0; round < 6; round++) {
		/* Snapshot a random existing device. */
		u64 origin = std::next(m.begin(), long(rng() % m.size()))->first;
		u64 snap = next_dev++;
		u8 sub[8];
		ASSERT_OK(devs.lookup(root, &origin, sub));
		ASSERT_OK(e.tm->inc(load_le64(sub)));
		root = must(devs.insert(root, &snap, sub));
		m[snap] = m[origin];
		/* Write to both. */
		for (int i = 0; i < 600; i++)
			write(rng() & 1 ? origin : snap, rng() % 4000);
		/* Sometimes delete a device. */
		if (round % 2 == 1 && m.size() > 2) {
			u64 victim = std::next(m.begin(), long(rng() % m.size()))->first;
			root = must(devs.remove(root, &victim));
			m.erase(victim);
		}
		Model2 want;
		for (auto &[d, mm] : m)
			for (auto &[b, v] : mm)
				want[{d, b}] = v;
		ASSERT_EQ(contents2(map, root), want);
		BtreeCheckReport rep;
		ASSERT_OK(check_btree(*e.tm, root, 2, 8, rep)) << rep.failure.reason;
		ASSERT_EQ(audit_counts(*e.tm, e.sm, {{root, 2}}, {{0, 1}}), "");
		ASSERT_OK(e.commit(root, u64(round + 2)));
		check_on_disk(e, root, 2, 8);
	}
	ASSERT_OK(map.del(root));
	EXPECT_TRUE(vt.refs.empty());
	EXPECT_EQ(audit_counts(*e.tm, e.sm, {}, {{0, 1}}), "");
}

/* ---- bad input and failures ---------------------------------------------------------- */

/* Keys 0..n-1 with fresh values, committed as transaction 1: a root with leaves beneath. */
block_t committed_tree(Env &e, Btree &t, CountedValue &vt, u64 n)
{
	block_t root = must(t.create_empty());
	for (u64 k = 0; k < n; k++) {
		le64 v = to_le64(vt.fresh());
		root = must(t.insert(root, &k, &v));
	}
	EXPECT_OK(e.commit(root, 1));
	return root;
}

TEST_F(BtreeTest, CorruptNodeOnDiskIsEILSEQ)
{
	Env e;
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = committed_tree(e, t, vt, 1000);
	/* Flip a bit in some leaf. */
	u64 k = 700;
	ReadRef r = must(e.tm->read_lock(root, &btree_node_validator()));
	block_t leaf = ConstNode(r.data()).value64(u32(ConstNode(r.data()).lower_bound(k)));
	r.release();
	e.dev->block_data(leaf)[200] ^= 1;
	Env fresh;
	fresh.open(*e.dev);
	Btree t2(*fresh.tm, 1, vt);
	u8 got[8];
	EXPECT_EQ(t2.lookup(root, &k, got).error_code(), -EILSEQ);
	u64 zero = 0;
	EXPECT_OK(t2.lookup(root, &zero, got)) << "other leaves still readable";
	BtreeCheckReport rep;
	EXPECT_EQ(check_btree(*fresh.tm, root, 1, 8, rep).error_code(), -EILSEQ);
	EXPECT_NE(std::string(rep.failure.reason).find("checksum"), std::string::npos)
		<< rep.failure.reason;
}

/*
 * A node that names itself as its child (corrupt metadata) must fail the
 * update, not hang it: the insert holds the node write-locked and would ask
 * for it again. The descent refuses a child already on its path (-EILSEQ);
 * behind it, the block cache refuses a task that would wait for itself
 * (-EINVAL). If the insert hangs after all, the test fails by aborting.
 */
TEST_F(BtreeTest, ANodeThatIsItsOwnChildFailsTheUpdateInsteadOfHanging)
{
	Env e;
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = committed_tree(e, t, vt, 1000);
	/* A new transaction: this insert shadows the root, which later ones lock in place. */
	u64 k = 0;
	le64 v = to_le64(vt.fresh());
	root = must(t.insert(root, &k, &v));
	{
		WriteRef w = must(e.cache->write_lock(root, &btree_node_validator()));
		Node n(w.data());
		ASSERT_TRUE(n.is_internal());
		n.set_value64(0, root); /* its first child is itself */
	}
	user::log_clear();
	std::atomic<int> got{1};
	std::thread insert([&] {
		u64 k1 = 1;
		le64 v1 = to_le64(vt.fresh());
		got = t.insert(root, &k1, &v1).error_code();
	});
	auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
	while (got.load() == 1 && std::chrono::steady_clock::now() < end)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	if (got.load() == 1) {
		ADD_FAILURE() << "the insert hung on a node that is its own child";
		fflush(stdout);
		std::abort(); /* the thread cannot be unblocked */
	}
	insert.join();
	EXPECT_EQ(got.load(), -EILSEQ);
	EXPECT_TRUE(user::log_contains("points back at an ancestor"));
	EXPECT_OK(e.tm->abort());
}

TEST_F(BtreeTest, WrongValueSizeIsEILSEQ)
{
	Env e;
	PlainValue v8(8), v16(16);
	Btree t8(*e.tm, 1, v8), t16(*e.tm, 1, v16);
	block_t root = must(t8.create_empty());
	u64 k = 1;
	u8 got[16] = {};
	EXPECT_EQ(t16.lookup(root, &k, got).error_code(), -EILSEQ);
	EXPECT_EQ(t16.insert(root, &k, got).error_code(), -EILSEQ);
}

TEST_F(BtreeTest, CheckerCatchesAnUnderfullNode)
{
	Env e;
	CountedValue vt;
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	for (u64 k = 0; k < 2000; k++) {
		le64 v = to_le64(vt.fresh());
		root = must(t.insert(root, &k, &v));
	}
	BtreeCheckReport rep;
	ASSERT_OK(check_btree(*e.tm, root, 1, 8, rep));
	/* Trim a leaf below a third by hand: the checker must notice. */
	{
		WriteRef w = must(e.cache->write_lock(root, &btree_node_validator()));
		block_t leaf = ConstNode(w.data()).value64(1);
		w.release();
		WriteRef l = must(e.cache->write_lock(leaf, &btree_node_validator()));
		Node(l.data()).set_nr_entries(10);
	}
	EXPECT_EQ(check_btree(*e.tm, root, 1, 8, rep).error_code(), -EILSEQ);
	EXPECT_NE(std::string(rep.failure.reason).find("below a third"), std::string::npos)
		<< rep.failure.reason;
}

/*
 * Space-map exhaustion and allocation failure at every step of an update:
 * the error comes back (no crash, no leak), and after abort the committed
 * tree is intact.
 */
TEST_F(BtreeTest, FailuresAtEveryAllocationLeaveTheCommittedTreeIntact)
{
	Env e(16384, 4096);
	PlainValue vt(8);
	Btree t(*e.tm, 1, vt);
	block_t root = must(t.create_empty());
	Model m;
	for (u64 k = 0; k < 5000; k++) {
		le64 v = to_le64(k);
		root = must(t.insert(root, &k, &v));
		m[k] = k;
	}
	ASSERT_OK(e.commit(root, 1));
	const block_t committed = root;

	/* For each kind, fail the n-th allocation for n = 0, 1, ... until the update succeeds. */
	for (int kind = 0; kind < 2; kind++) {
		int failures_seen = 0;
		for (u64 n = 0;; n++) {
			ASSERT_LT(n, 10000u) << "never succeeds";
			if (kind == 0)
				e.sm.fail_new_block_after(n);
			else
				user::fail_nth_alloc(n);
			block_t r = committed;
			Result<void> res;
			for (u64 k = 10000; k < 10300 && res.is_ok(); k++) {
				le64 v = to_le64(k);
				auto nr = t.insert(r, &k, &v);
				if (nr.is_error())
					res = nr.error();
				else
					r = nr.value();
			}
			e.sm.fail_new_block_after(~u64(0));
			user::clear_alloc_faults();
			if (res.is_error()) {
				failures_seen++;
				EXPECT_EQ(res.error_code(), kind == 0 ? -ENOSPC : -ENOMEM);
			}
			ASSERT_OK(e.tm->abort());
			e.sm.rollback();
			ASSERT_EQ(contents(t, committed), m);
			ASSERT_EQ(audit_counts(*e.tm, e.sm, {{committed, 1}}, {{0, 1}}), "");
			if (res.is_ok())
				break;
		}
		EXPECT_GT(failures_seen, 2) << "kind " << kind;
	}
}

} // namespace
} // namespace dmxx::pdata::test
