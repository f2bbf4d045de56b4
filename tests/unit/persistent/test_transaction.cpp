// SPDX-License-Identifier: GPL-2.0
/*
 * Transaction manager: allocation, shadowing, commit ordering and crash safety.
 */
#include "pdata_fixture.h"

#include "persistent/btree_node.h"
#include "user/faulty_block_device.h"

#include <algorithm>

namespace dmxx::pdata::test {
namespace {

u64 read_u64(const WriteRef &w) { return load_le64(w.bytes() + 64); }

TEST_F(TmTest, NewBlockIsZeroedCountedAndShadowed)
{
	Env e;
	WriteRef w = must(e.tm->new_block(nullptr));
	block_t b = w.location();
	EXPECT_NE(b, 0u) << "the superblock is taken";
	for (usize i = 0; i < METADATA_BLOCK_SIZE; i++)
		ASSERT_EQ(w.bytes()[i], 0);
	EXPECT_EQ(must(e.tm->ref_count(b)), 1u);
	EXPECT_TRUE(e.tm->is_shadow(b));
}

TEST_F(TmTest, SecondShadowInOneTransactionIsInPlace)
{
	Env e;
	block_t b;
	{
		WriteRef w = must(e.tm->new_block(nullptr));
		b = w.location();
	}
	Shadow s = must(e.tm->shadow_block(b, nullptr));
	EXPECT_EQ(s.block.location(), b);
	EXPECT_FALSE(s.inc_children);
	EXPECT_EQ(e.tm->stats().shadow_in_place, 1u);
}

TEST_F(TmTest, ShadowAfterCommitCopiesThenStaysInPlace)
{
	Env e;
	block_t b;
	{
		WriteRef w = must(e.tm->new_block(nullptr));
		b = w.location();
		store_le64(w.bytes() + 64, 1234);
	}
	ASSERT_OK(e.commit(b, 1));
	EXPECT_FALSE(e.tm->is_shadow(b)) << "commit ends the transaction";

	block_t copy;
	{
		Shadow s = must(e.tm->shadow_block(b, nullptr));
		copy = s.block.location();
		EXPECT_NE(copy, b);
		EXPECT_FALSE(s.inc_children);
		EXPECT_EQ(read_u64(s.block), 1234u) << "the copy has the contents";
		store_le64(s.block.bytes() + 64, 5678);
	}
	EXPECT_EQ(must(e.tm->ref_count(b)), 0u) << "the reference moved to the copy";
	EXPECT_EQ(must(e.tm->ref_count(copy)), 1u);
	{
		Shadow s = must(e.tm->shadow_block(copy, nullptr));
		EXPECT_EQ(s.block.location(), copy);
		EXPECT_EQ(read_u64(s.block), 5678u);
	}
	/* The committed block is untouched on disk and in the cache. */
	ReadRef r = must(e.tm->read_lock(b, nullptr));
	EXPECT_EQ(load_le64(r.bytes() + 64), 1234u);
}

TEST_F(TmTest, ShadowOfASharedBlockCopiesAndAsksForInc)
{
	Env e;
	block_t b;
	{
		WriteRef w = must(e.tm->new_block(nullptr));
		b = w.location();
	}
	ASSERT_OK(e.tm->inc(b)); /* a second parent, in the same transaction */
	Shadow s = must(e.tm->shadow_block(b, nullptr));
	EXPECT_NE(s.block.location(), b) << "shared: must copy even though it is ours";
	EXPECT_TRUE(s.inc_children);
	EXPECT_EQ(must(e.tm->ref_count(b)), 1u);
}

TEST_F(TmTest, FreedBlocksAreNotReusedBeforeCommit)
{
	Env e(64);
	std::vector<block_t> committed;
	for (int i = 0; i < 10; i++) {
		WriteRef w = must(e.tm->new_block(nullptr));
		committed.push_back(w.location());
	}
	ASSERT_OK(e.commit(committed[0], 1));
	for (block_t b : committed)
		ASSERT_OK(e.tm->dec(b));
	/* Allocate everything that is left: none of the freed blocks may come back. */
	for (;;) {
		auto w = e.tm->new_block(nullptr);
		if (w.is_error()) {
			EXPECT_EQ(w.error_code(), -ENOSPC);
			break;
		}
		for (block_t b : committed)
			ASSERT_NE(w.value().location(), b);
	}
}

TEST_F(TmTest, ClonesAreReadOnly)
{
	Env e;
	block_t b;
	{
		WriteRef w = must(e.tm->new_block(nullptr));
		b = w.location();
	}
	TransactionManager ro(*e.tm, CloneMode::Blocking);
	EXPECT_EQ(ro.new_block(nullptr).error_code(), -EPERM);
	EXPECT_EQ(ro.shadow_block(b, nullptr).error_code(), -EPERM);
	EXPECT_EQ(ro.inc(b).error_code(), -EPERM);
	EXPECT_EQ(ro.pre_commit().error_code(), -EPERM);
	EXPECT_OK(ro.read_lock(b, nullptr));

	TransactionManager nb(*e.tm, CloneMode::NonBlocking);
	EXPECT_OK(nb.read_lock(b, nullptr)) << "cached: no I/O needed";
	EXPECT_EQ(nb.read_lock(b + 100, nullptr).error_code(), -EAGAIN) << "would need I/O";
	WriteRef w = must(e.tm->shadow_block(b, nullptr)).block;
	EXPECT_EQ(nb.read_lock(b, nullptr).error_code(), -EAGAIN) << "would wait for a writer";
}

TEST_F(TmTest, CommitWritesTheSuperblockLastAndFlushesAroundIt)
{
	MemBlockDevice mem(256);
	Env e(256);
	/* Route the Env's cache through a recording device. */
	struct Recorder final : BlockDevice {
		explicit Recorder(BlockDevice &in) : inner(in) {}
		Result<block_t> nr_blocks() override { return inner.nr_blocks(); }
		Result<void> read(block_t b, void *buf) override { return inner.read(b, buf); }
		Result<void> write(block_t b, const void *buf) override
		{
			log.push_back("w" + std::to_string(b));
			return inner.write(b, buf);
		}
		Result<void> flush() override
		{
			log.push_back("F");
			return inner.flush();
		}
		BlockDevice &inner;
		std::vector<std::string> log;
	} rec(mem);
	e.open(rec);
	block_t root;
	{
		WriteRef w = must(e.tm->new_block(nullptr));
		root = w.location();
		for (int i = 0; i < 5; i++)
			must(e.tm->new_block(nullptr));
	}
	ASSERT_OK(e.commit(root, 1));
	ASSERT_GE(rec.log.size(), 4u);
	/* ... w*, F, w0, F: the superblock alone between two flushes, at the end. */
	size_t n = rec.log.size();
	EXPECT_EQ(rec.log[n - 1], "F");
	EXPECT_EQ(rec.log[n - 2], "w0");
	EXPECT_EQ(rec.log[n - 3], "F");
	for (size_t i = 0; i + 2 < n; i++)
		EXPECT_NE(rec.log[i], "w0") << "superblock written early";
	EXPECT_EQ(std::count(rec.log.begin(), rec.log.end(), "w0"), 1);
}

/* ---- crash at every write of a commit ------------------------------------------------ */

constexpr u64 kKeys = 3000;

using Model = std::map<u64, u64>;

/* The change the crashed commit makes: overwrites, inserts, removes. */
/*
 * The change the crashed commit makes: overwrites, inserts, removes. Into
 * @m (the model of the change), even if the tree update fails: after a
 * crash, blocks written back early read back stale and the update may fail,
 * as it would on a machine that... kept running after losing power.
 */
Result<void> apply_change(Btree &tree, block_t *root, Model &m)
{
	for (u64 k = 0; k < kKeys; k += 5) {
		u64 v = k + 1000000;
		le64 lv = to_le64(v);
		m[k] = v;
		*root = TRY(tree.insert(*root, &k, &lv));
	}
	for (u64 k = kKeys; k < kKeys + 600; k++) {
		le64 lv = to_le64(k);
		m[k] = k;
		*root = TRY(tree.insert(*root, &k, &lv));
	}
	for (u64 k = 1; k < kKeys; k += 3) {
		m.erase(k);
		*root = TRY(tree.remove(*root, &k));
	}
	return {};
}

Model tree_contents(TransactionManager &tm, block_t root)
{
	PlainValue vt(8);
	Btree tree(tm, 1, vt);
	Model got;
	auto r = tree.walk(root, [&](const u64 *k, const void *v) -> Result<void> {
		got[k[0]] = load_le64(v);
		return {};
	});
	EXPECT_OK(r);
	return got;
}

enum class CommitKind { Correct, SuperblockWithTheRest };

struct CrashOutcome {
	unsigned crash_points = 0;
	unsigned old_state = 0, new_state = 0;
	unsigned corrupt = 0; /* unreadable or not equal to either state */
};

/*
 * For k = 0, 1, ...: start from the same committed image, make the change,
 * commit with the device crashing after k writes, power-cycle with @policy,
 * reopen through a fresh cache and classify what is on disk.
 */
CrashOutcome crash_every_write(CommitKind kind, Unflushed policy, CrashMode mode,
				unsigned cache_blocks = 4096)
{
	CrashOutcome out;
	PlainValue vt(8);
	Env base(2048, 4096);
	Btree base_tree(*base.tm, 1, vt);
	block_t base_root;
	Model old_model;
	{
		base_root = must(base_tree.create_empty());
		for (u64 k = 0; k < kKeys; k++) {
			le64 lv = to_le64(k * 7 + 1);
			base_root = must(base_tree.insert(base_root, &k, &lv));
			old_model[k] = k * 7 + 1;
		}
		EXPECT_OK(base.format(base_root));
		EXPECT_OK(base.commit(base_root, 1));
	}
	std::vector<u32> base_counts = base.sm.counts();

	for (u64 k = 0;; k++) {
		if (k > 10000) {
			ADD_FAILURE() << "the commit never completes";
			break;
		}
		auto disk = base.dev->clone();
		FaultyBlockDevice dev(*disk);
		dev.set_volatile_cache(true);
		dev.crash_after_writes(k, mode);

		Env e(2048, cache_blocks);
		for (block_t b = 0; b < base_counts.size(); b++)
			EXPECT_OK(e.sm.set_count(b, base_counts[b]));
		EXPECT_OK(e.sm.commit());
		e.open(dev, cache_blocks);
		Btree tree(*e.tm, 1, vt);
		block_t root = base_root;
		Model new_model = old_model;
		Result<void> changed = apply_change(tree, &root, new_model);
		if (changed.is_error() && !dev.crashed())
			ADD_FAILURE() << "update failed without a crash: " << changed.error_code();

		Result<void> committed = changed;
		if (changed.is_error()) {
			/* Nothing to commit: the crash already happened. */
		} else if (kind == CommitKind::Correct) {
			committed = e.commit(root, 2);
		} else {
			/* The naive protocol: the superblock joins the single flush. */
			committed = [&]() -> Result<void> {
				TRY(e.sm.commit()); /* no flush before the superblock */
				WriteRef sb = TRY(e.cache->write_lock_zero(0, &toy_sb_validator()));
				auto *s = static_cast<ToySuper *>(sb.data());
				s->root = to_le64(root);
				s->txn = to_le64(2);
				sb.release();
				return e.cache->flush();
			}();
		}
		bool crashed = dev.crashed();
		e.tm.reset();
		e.cache.reset();
		dev.power_cycle(policy, k * 7919 + 13);

		if (!crashed) {
			EXPECT_OK(committed);
			auto sb = read_super(*disk);
			EXPECT_TRUE(sb.is_ok());
			if (sb.is_ok()) {
				EXPECT_EQ(from_le(sb.value().txn), 2u);
			}
			break;
		}
		out.crash_points++;

		/* Reopen what survived. */
		auto sb = read_super(*disk);
		if (sb.is_error()) {
			out.corrupt++;
			continue;
		}
		Env re(2048, 4096);
		re.open(*disk);
		block_t r = from_le(sb.value().root);
		BtreeCheckReport rep;
		auto chk = check_btree(*re.tm, r, 1, 8, rep);
		if (chk.is_error()) {
			out.corrupt++;
			continue;
		}
		Model got = tree_contents(*re.tm, r);
		u64 txn = from_le(sb.value().txn);
		if (txn == 1 && got == old_model)
			out.old_state++;
		else if (txn == 2 && got == new_model)
			out.new_state++;
		else
			out.corrupt++;
	}
	return out;
}

TEST_F(CrashTest, EveryWritePointUnflushedLost)
{
	auto o = crash_every_write(CommitKind::Correct, Unflushed::Lost, CrashMode::Silent);
	EXPECT_GT(o.crash_points, 20u);
	EXPECT_EQ(o.corrupt, 0u);
	EXPECT_EQ(o.old_state + o.new_state, o.crash_points);
	EXPECT_GT(o.old_state, 0u);
}

TEST_F(CrashTest, EveryWritePointUnflushedKept)
{
	auto o = crash_every_write(CommitKind::Correct, Unflushed::Kept, CrashMode::ReturnEIO);
	EXPECT_GT(o.crash_points, 20u);
	EXPECT_EQ(o.corrupt, 0u);
	EXPECT_EQ(o.old_state + o.new_state, o.crash_points);
	EXPECT_GT(o.old_state, 0u);
}

TEST_F(CrashTest, EveryWritePointRandomSurvivors)
{
	auto o = crash_every_write(CommitKind::Correct, Unflushed::RandomSubset, CrashMode::Silent);
	EXPECT_GT(o.crash_points, 20u);
	EXPECT_EQ(o.corrupt, 0u);
}

/*
 * A cache far smaller than the transaction: dirty blocks are written back
 * while the change is still being made, so crashes land mid-change too.
 */
TEST_F(CrashTest, EveryWritePointWithEarlyWriteBack)
{
	auto o = crash_every_write(CommitKind::Correct, Unflushed::RandomSubset, CrashMode::Silent, 16);
	EXPECT_GT(o.crash_points, 20u);
	EXPECT_EQ(o.corrupt, 0u);
	EXPECT_EQ(o.old_state + o.new_state, o.crash_points);
}

/* Negative control: the same harness must catch a protocol that writes the superblock early. */
TEST_F(CrashTest, NaiveCommitIsCaught)
{
	auto o = crash_every_write(CommitKind::SuperblockWithTheRest, Unflushed::Kept,
				   CrashMode::Silent);
	EXPECT_GT(o.crash_points, 20u);
	EXPECT_GT(o.corrupt, 0u) << "the harness cannot see a superblock written too early";
}

TEST_F(TmTest, AbortForgetsTheTransaction)
{
	Env e;
	block_t b;
	{
		WriteRef w = must(e.tm->new_block(nullptr));
		b = w.location();
		store_le64(w.bytes() + 64, 1);
	}
	ASSERT_OK(e.commit(b, 1));
	u64 writes = e.dev->nr_writes();
	{
		Shadow s = must(e.tm->shadow_block(b, nullptr));
		store_le64(s.block.bytes() + 64, 2);
	}
	ASSERT_OK(e.tm->abort());
	e.sm.rollback();
	ASSERT_OK(e.cache->flush());
	EXPECT_EQ(e.dev->nr_writes(), writes);
	ReadRef r = must(e.tm->read_lock(b, nullptr));
	EXPECT_EQ(load_le64(r.bytes() + 64), 1u);
}

TEST_F(TmTest, FailedCommitNeverWritesTheSuperblock)
{
	MemBlockDevice mem(256);
	FaultyBlockDevice dev(mem);
	Env e(256);
	e.open(dev);
	block_t b;
	{
		WriteRef w = must(e.tm->new_block(nullptr));
		b = w.location();
	}
	ASSERT_OK(e.tm->pre_commit());
	WriteRef sb = must(e.cache->write_lock_zero(0, &toy_sb_validator()));
	static_cast<ToySuper *>(sb.data())->root = to_le64(b);
	/* The flush before the superblock write fails. */
	dev.crash_now(CrashMode::ReturnEIO);
	auto r = e.tm->commit(dmxx::move(sb));
	EXPECT_EQ(r.error_code(), -EIO);
	dev.power_cycle(Unflushed::Kept);
	/* Even a later flush must not carry that superblock out. */
	EXPECT_EQ(e.cache->nr_dirty(), 0u);
	EXPECT_OK(e.cache->flush());
	EXPECT_EQ(read_super(mem).error_code(), -EILSEQ) << "a superblock reached the disk";
}

} // namespace
} // namespace dmxx::pdata::test
