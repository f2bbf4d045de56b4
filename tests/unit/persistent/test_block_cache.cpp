// SPDX-License-Identifier: GPL-2.0
/*
 * Block cache: validators, locking, eviction, write-back.
 */
#include "pdata_fixture.h"

#include "persistent/btree_node.h"
#include "user/faulty_block_device.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

namespace dmxx::pdata::test {
namespace {

using namespace std::chrono_literals;

/* Poll @cond until true or a generous deadline passes (no fixed sleeps). */
template <typename F> bool wait_until(F cond, std::chrono::milliseconds limit = 10000ms)
{
	auto end = std::chrono::steady_clock::now() + limit;
	while (!cond()) {
		if (std::chrono::steady_clock::now() > end)
			return false;
		std::this_thread::yield();
	}
	return true;
}

/* Write a formatted btree leaf holding @tag at block @b, through a cache, and flush. */
void write_leaf(BlockDevice &d, block_t b, u64 tag)
{
	BlockCache c(d, 16);
	ASSERT_OK(c.init());
	WriteRef w = must(c.write_lock_zero(b, &btree_node_validator()));
	Node n(w.data());
	n.format(NODE_LEAF, 8);
	n.set_nr_entries(1);
	n.set_key(0, tag);
	n.set_value64(0, tag * 3);
	w.release();
	ASSERT_OK(c.flush());
}

TEST_F(CacheTest, ValidatorStampsChecksumAndLocation)
{
	MemBlockDevice dev(64);
	write_leaf(dev, 7, 42);
	ConstNode n(dev.block_data(7));
	EXPECT_EQ(n.blocknr(), 7u);
	/* The kernel's dm_bm_checksum: crc32c(~0, block after the csum field) ^ salt. */
	u32 expect = dmxx_crc32c(0xffffffffu, dev.block_data(7) + 4, METADATA_BLOCK_SIZE - 4) ^
		     BTREE_NODE_CSUM_XOR;
	EXPECT_EQ(from_le(n.header().csum), expect);

	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	ReadRef r = must(c.read_lock(7, &btree_node_validator()));
	EXPECT_EQ(ConstNode(r.data()).key(0), 42u);
}

TEST_F(CacheTest, KnownChecksumVector)
{
	/* crc32c("123456789") = e3069283 with the usual pre/post inversion. */
	u32 raw = dmxx_crc32c(0xffffffffu, "123456789", 9);
	EXPECT_EQ(raw ^ 0xffffffffu, 0xe3069283u);
}

TEST_F(CacheTest, BadChecksumIsEILSEQWithReason)
{
	MemBlockDevice dev(64);
	write_leaf(dev, 5, 1);
	dev.block_data(5)[100] ^= 0x40; /* one bit rot in the keys area */

	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	auto r = c.read_lock(5, &btree_node_validator());
	ASSERT_TRUE(r.is_error());
	EXPECT_EQ(r.error_code(), -EILSEQ);
	char why[128];
	c.last_failure(why, sizeof(why));
	EXPECT_NE(std::string(why).find("checksum"), std::string::npos) << why;
	EXPECT_EQ(c.nr_cached(), 0u) << "a block that failed its check must not stay cached";
	EXPECT_EQ(c.stats().check_failures, 1u);

	/* Raw access (no validator) still reads it: tools can look at broken blocks. */
	EXPECT_OK(c.read_lock(5, nullptr));
}

TEST_F(CacheTest, WrongLocationIsEILSEQ)
{
	MemBlockDevice dev(64);
	write_leaf(dev, 3, 9);
	/* A misdirected write: block 3's bytes land at block 4. */
	std::memcpy(dev.block_data(4), dev.block_data(3), METADATA_BLOCK_SIZE);

	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	auto r = c.read_lock(4, &btree_node_validator());
	ASSERT_TRUE(r.is_error());
	EXPECT_EQ(r.error_code(), -EILSEQ);
	char why[128];
	c.last_failure(why, sizeof(why));
	EXPECT_NE(std::string(why).find("records location 3"), std::string::npos) << why;
}

TEST_F(CacheTest, ImpossibleHeaderIsEILSEQ)
{
	MemBlockDevice dev(64);
	{
		BlockCache c(dev, 16);
		ASSERT_OK(c.init());
		WriteRef w = must(c.write_lock_zero(2, &btree_node_validator()));
		Node n(w.data());
		n.format(NODE_LEAF, 8);
		n.header().max_entries = to_le32(1000); /* 1000 * 16 bytes do not fit */
		w.release();
		ASSERT_OK(c.flush());
	}
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	auto r = c.read_lock(2, &btree_node_validator());
	EXPECT_EQ(r.error_code(), -EILSEQ);
	char why[128];
	c.last_failure(why, sizeof(why));
	EXPECT_NE(std::string(why).find("max_entries"), std::string::npos) << why;
}

TEST_F(CacheTest, SameBlockAsTwoTypesIsEINVAL)
{
	MemBlockDevice dev(64);
	write_leaf(dev, 6, 1);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	EXPECT_OK(c.read_lock(6, &btree_node_validator()));
	auto r = c.read_lock(6, &toy_sb_validator());
	EXPECT_EQ(r.error_code(), -EINVAL);
}

TEST_F(CacheTest, BeyondTheDeviceIsEINVAL)
{
	MemBlockDevice dev(8);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	EXPECT_EQ(c.read_lock(8, nullptr).error_code(), -EINVAL);
	EXPECT_EQ(c.write_lock_zero(8, nullptr).error_code(), -EINVAL);
	EXPECT_EQ(c.nr_cached(), 0u);
}

TEST_F(CacheTest, ReadErrorIsReturnedAndNotCached)
{
	MemBlockDevice mem(16);
	FaultyBlockDevice dev(mem);
	dev.fail_reads_of(3);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	EXPECT_EQ(c.read_lock(3, nullptr).error_code(), -EIO);
	EXPECT_EQ(c.nr_cached(), 0u);
	dev.fail_reads_of(NO_BLOCK);
	EXPECT_OK(c.read_lock(3, nullptr));
}

TEST_F(CacheTest, HitsDoNotReadTheDevice)
{
	MemBlockDevice dev(64);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	for (int i = 0; i < 10; i++)
		EXPECT_OK(c.read_lock(1, nullptr));
	EXPECT_EQ(dev.nr_reads(), 1u);
	EXPECT_EQ(c.stats().hits, 9u);
}

TEST_F(CacheTest, LruEvictsCleanUnlockedBlocks)
{
	MemBlockDevice dev(256);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	for (block_t b = 0; b < 100; b++)
		EXPECT_OK(c.read_lock(b, nullptr));
	EXPECT_LE(c.nr_cached(), 16u);
	EXPECT_GE(c.stats().evictions, 84u);

	/* Recently used blocks stay: touch 0..7 again, then 8 new blocks. */
	for (block_t b = 200; b < 216; b++)
		EXPECT_OK(c.read_lock(b, nullptr));
	for (block_t b = 200; b < 208; b++)
		EXPECT_OK(c.read_lock(b, nullptr));
	for (block_t b = 100; b < 108; b++)
		EXPECT_OK(c.read_lock(b, nullptr));
	u64 reads = dev.nr_reads();
	for (block_t b = 200; b < 208; b++)
		EXPECT_OK(c.read_lock(b, nullptr));
	EXPECT_EQ(dev.nr_reads(), reads) << "the most recently used blocks were evicted";
}

TEST_F(CacheTest, LockedBlocksAreNeverEvictedTheCacheGrowsInstead)
{
	MemBlockDevice dev(256);
	for (block_t b = 0; b < 40; b++)
		write_leaf(dev, b, b);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	std::vector<ReadRef> held;
	for (block_t b = 0; b < 40; b++)
		held.push_back(must(c.read_lock(b, &btree_node_validator())));
	EXPECT_EQ(c.nr_cached(), 40u);
	for (block_t b = 0; b < 40; b++)
		EXPECT_EQ(ConstNode(held[b].data()).key(0), b);
	held.clear();
	EXPECT_OK(c.read_lock(100, nullptr));
	EXPECT_LE(c.nr_cached(), 40u);
}

TEST_F(CacheTest, DirtyBlocksAreWrittenBackWhenTheyMustBeEvicted)
{
	MemBlockDevice dev(256);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	for (block_t b = 1; b <= 40; b++) {
		WriteRef w = must(c.write_lock_zero(b, &btree_node_validator()));
		Node n(w.data());
		n.format(NODE_LEAF, 8);
		n.set_nr_entries(1);
		n.set_key(0, b);
	}
	EXPECT_LE(c.nr_cached(), 16u);
	EXPECT_GE(c.stats().evict_writes, 24u);
	ASSERT_OK(c.flush());
	EXPECT_EQ(c.nr_dirty(), 0u);
	BlockCache fresh(dev, 64);
	ASSERT_OK(fresh.init());
	for (block_t b = 1; b <= 40; b++) {
		ReadRef r = must(fresh.read_lock(b, &btree_node_validator()));
		EXPECT_EQ(ConstNode(r.data()).key(0), b);
	}
}

TEST_F(CacheTest, FlushWritesDirtyOnceAndFlushesTheDevice)
{
	MemBlockDevice dev(64);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	for (int round = 0; round < 3; round++) {
		WriteRef w = must(c.write_lock(9, nullptr));
		w.bytes()[0] = u8(round);
	}
	EXPECT_EQ(c.nr_dirty(), 1u);
	ASSERT_OK(c.flush());
	EXPECT_EQ(dev.nr_writes(), 1u);
	EXPECT_EQ(dev.nr_flushes(), 1u);
	EXPECT_EQ(dev.block_data(9)[0], 2);
	ASSERT_OK(c.flush());
	EXPECT_EQ(dev.nr_writes(), 1u) << "a clean block was written again";
}

TEST_F(CacheTest, FlushRefusesABlockStillWriteLocked)
{
	MemBlockDevice dev(64);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	WriteRef held = must(c.write_lock(4, nullptr));
	{
		WriteRef other = must(c.write_lock(5, nullptr));
	}
	auto r = c.flush();
	EXPECT_EQ(r.error_code(), -EBUSY);
	EXPECT_EQ(dev.nr_writes(), 1u) << "the unlocked dirty block is still written";
	/* Except when the caller names it (the superblock during commit). */
	EXPECT_OK(c.flush(4));
	held.release();
	EXPECT_OK(c.flush());
	EXPECT_EQ(dev.nr_writes(), 2u);
}

TEST_F(CacheTest, FlushOfAReadLockedDirtyBlockWritesACopy)
{
	MemBlockDevice dev(64);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	{
		WriteRef w = must(c.write_lock_zero(3, &btree_node_validator()));
		Node(w.data()).format(NODE_LEAF, 8);
	}
	ReadRef r = must(c.read_lock(3, &btree_node_validator()));
	ASSERT_OK(c.flush());
	/* The reader's bytes were not stamped under it... */
	EXPECT_EQ(ConstNode(r.data()).blocknr(), 0u);
	/* ...but the device has a valid block. */
	EXPECT_EQ(ConstNode(dev.block_data(3)).blocknr(), 3u);
	r.release();
	BlockCache fresh(dev, 16);
	ASSERT_OK(fresh.init());
	EXPECT_OK(fresh.read_lock(3, &btree_node_validator()));
}

/* Runs @on_write (once) inside the first device write: a hook into flush's unlocked window. */
class HookedDevice : public BlockDevice {
public:
	explicit HookedDevice(MemBlockDevice &inner) : m_inner(inner) {}
	Result<block_t> nr_blocks() override { return m_inner.nr_blocks(); }
	Result<void> read(block_t b, void *buf) override { return m_inner.read(b, buf); }
	Result<void> write(block_t b, const void *buf) override
	{
		if (on_write) {
			auto f = std::move(on_write);
			on_write = nullptr;
			f();
		}
		return m_inner.write(b, buf);
	}
	Result<void> flush() override { return m_inner.flush(); }
	std::function<void()> on_write;

private:
	MemBlockDevice &m_inner;
};

/*
 * Regression: flush joins the readers of a dirty block while it writes a copy;
 * the reader unlocking during that write must still leave the block unlocked
 * (the count once leaked, and destroying the cache then stopped everything).
 */
TEST_F(CacheTest, ReaderUnlockingDuringFlushLeavesNothingLocked)
{
	MemBlockDevice mem(64);
	HookedDevice dev(mem);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	{
		WriteRef w = must(c.write_lock_zero(3, &btree_node_validator()));
		Node(w.data()).format(NODE_LEAF, 8);
	}
	ReadRef r = must(c.read_lock(3, &btree_node_validator()));
	EXPECT_EQ(c.nr_locked(), 1u);
	dev.on_write = [&] { r.release(); };
	ASSERT_OK(c.flush());
	EXPECT_EQ(c.nr_locked(), 0u);
	EXPECT_EQ(ConstNode(mem.block_data(3)).blocknr(), 3u);
}

TEST_F(CacheTest, WriteLockZeroGivesZeroesAndForgetDropsChanges)
{
	MemBlockDevice dev(64);
	std::memset(dev.block_data(2), 0xab, METADATA_BLOCK_SIZE);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	{
		WriteRef w = must(c.write_lock_zero(2, nullptr));
		for (usize i = 0; i < METADATA_BLOCK_SIZE; i++)
			ASSERT_EQ(w.bytes()[i], 0);
		w.bytes()[0] = 1;
		w.forget();
	}
	EXPECT_EQ(c.nr_dirty(), 0u);
	ReadRef r = must(c.read_lock(2, nullptr));
	EXPECT_EQ(r.bytes()[0], 0xab) << "forget() must drop the change";
}

TEST_F(CacheTest, DiscardAllDropsDirtyBlocks)
{
	MemBlockDevice dev(64);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	{
		WriteRef w = must(c.write_lock(1, nullptr));
		w.bytes()[0] = 7;
	}
	ReadRef held = must(c.read_lock(2, nullptr));
	EXPECT_EQ(c.discard_all().error_code(), -EBUSY);
	held.release();
	ASSERT_OK(c.discard_all());
	ASSERT_OK(c.flush());
	EXPECT_EQ(dev.nr_writes(), 0u);
	EXPECT_EQ(c.nr_cached(), 0u);
}

TEST_F(CacheTest, TryLockNeverWaits)
{
	MemBlockDevice dev(64);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	EXPECT_EQ(c.read_try_lock(1, nullptr).error_code(), -EAGAIN) << "not cached: would do I/O";
	EXPECT_OK(c.read_lock(1, nullptr));
	EXPECT_OK(c.read_try_lock(1, nullptr));
	WriteRef w = must(c.write_lock(1, nullptr));
	EXPECT_EQ(c.read_try_lock(1, nullptr).error_code(), -EAGAIN) << "write-locked";
}

/*
 * One thread holds a lock; another asks for one. The harness tells "blocked"
 * from "not blocked" by the cache's own count of sleeping lockers, with no
 * timing guesses. Read+read is the control: the same harness must see it
 * NOT block, or it could not tell the difference.
 */
struct LockProbe {
	enum Kind { Read, Write };
	static bool second_blocks(Kind first, Kind second)
	{
		MemBlockDevice dev(8);
		BlockCache c(dev, 16);
		EXPECT_OK(c.init());
		ReadRef r1;
		WriteRef w1;
		if (first == Read)
			r1 = must(c.read_lock(1, nullptr));
		else
			w1 = must(c.write_lock(1, nullptr));

		std::atomic<bool> acquired{false};
		std::thread t([&] {
			if (second == Read) {
				ReadRef r = must(c.read_lock(1, nullptr));
				acquired = true;
			} else {
				WriteRef w = must(c.write_lock(1, nullptr));
				acquired = true;
			}
		});
		/* Either the second locker gets in, or it is seen asleep in the cache. */
		bool decided = wait_until([&] { return acquired.load() || c.nr_waiting() == 1; });
		EXPECT_TRUE(decided);
		bool blocked = !acquired.load();
		r1.release();
		w1.release();
		EXPECT_TRUE(wait_until([&] { return acquired.load(); })) << "never woken";
		t.join();
		return blocked;
	}
};

TEST_F(CacheTest, ReadersShareWritersExclude)
{
	EXPECT_FALSE(LockProbe::second_blocks(LockProbe::Read, LockProbe::Read)) << "control";
	EXPECT_TRUE(LockProbe::second_blocks(LockProbe::Read, LockProbe::Write));
	EXPECT_TRUE(LockProbe::second_blocks(LockProbe::Write, LockProbe::Read));
	EXPECT_TRUE(LockProbe::second_blocks(LockProbe::Write, LockProbe::Write));
}

/*
 * A task asking for a block it already holds in a conflicting mode would
 * wait for itself forever: corrupt metadata can ask that (a node that is its
 * own child, two trees sharing a block). It gets -EINVAL and a log line.
 * The probe's task takes the first lock into a ref the main thread can see;
 * if its second lock blocks (seen asleep in the cache), the main thread
 * releases the first one, so a cache that would hang reports "blocked"
 * instead of hanging the test.
 */
struct SelfLockProbe {
	enum Outcome { Refused, Granted, Blocked };
	static Outcome second(LockProbe::Kind first, LockProbe::Kind second)
	{
		MemBlockDevice dev(8);
		BlockCache c(dev, 16);
		EXPECT_OK(c.init());
		ReadRef r1;
		WriteRef w1;
		std::atomic<int> outcome{-1};
		std::atomic<bool> first_held{false};
		std::thread t([&] {
			if (first == LockProbe::Read)
				r1 = must(c.read_lock(1, nullptr));
			else
				w1 = must(c.write_lock(1, nullptr));
			first_held = true;
			int err = second == LockProbe::Read ? c.read_lock(1, nullptr).error_code()
							    : c.write_lock(1, nullptr).error_code();
			outcome = err == -EINVAL ? Refused : err == 0 ? Granted : -2;
		});
		EXPECT_TRUE(wait_until([&] { return first_held.load(); }));
		bool asleep = false;
		EXPECT_TRUE(wait_until([&] { return outcome.load() != -1 || (asleep = c.nr_waiting() == 1); }));
		if (asleep) {
			r1.release(); /* on the task's behalf: it cannot */
			w1.release();
			t.join();
			return Blocked;
		}
		t.join();
		r1.release();
		w1.release();
		EXPECT_NE(outcome.load(), -2) << "an unexpected error";
		EXPECT_EQ(c.nr_locked(), 0u);
		return Outcome(outcome.load());
	}
};

TEST_F(CacheTest, ATaskNeverWaitsForItself)
{
	using P = SelfLockProbe;
	EXPECT_EQ(P::second(LockProbe::Read, LockProbe::Read), P::Granted) << "control: reads nest";
	EXPECT_EQ(P::second(LockProbe::Write, LockProbe::Write), P::Refused);
	EXPECT_EQ(P::second(LockProbe::Write, LockProbe::Read), P::Refused);
	EXPECT_EQ(P::second(LockProbe::Read, LockProbe::Write), P::Refused);
	EXPECT_TRUE(user::log_contains("block 1 is already locked by this task"));
}

/*
 * Many threads, few blocks, a cache smaller than the set: writers increment
 * a counter replicated in every word of the block, readers check all words
 * agree (a torn view would show a writer's partial update). TSan watches
 * the rest. Totals must match exactly.
 */
TEST_F(CacheTest, ConcurrentReadersAndWritersWithEviction)
{
	MemBlockDevice dev(64);
	BlockCache c(dev, 16);
	ASSERT_OK(c.init());
	constexpr int kBlocks = 24, kThreads = 4, kOps = 1500;
	std::atomic<u64> writes{0}, torn{0}, failures{0};
	std::vector<std::thread> ts;
	for (int t = 0; t < kThreads; t++) {
		ts.emplace_back([&, t] {
			u64 x = 0x9e3779b97f4a7c15ull * (t + 1);
			for (int i = 0; i < kOps; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				block_t b = 1 + x % kBlocks;
				if (x & 0x100) {
					auto w = c.write_lock(b, nullptr);
					if (w.is_error()) {
						failures++;
						continue;
					}
					u64 *p = reinterpret_cast<u64 *>(w.value().data());
					u64 v = p[0] + 1;
					for (usize k = 0; k < METADATA_BLOCK_SIZE / 8; k++)
						p[k] = v;
					writes++;
				} else {
					auto r = c.read_lock(b, nullptr);
					if (r.is_error()) {
						failures++;
						continue;
					}
					const u64 *p = reinterpret_cast<const u64 *>(r.value().data());
					for (usize k = 1; k < METADATA_BLOCK_SIZE / 8; k++)
						if (p[k] != p[0]) {
							torn++;
							break;
						}
				}
				if (i % 200 == 0 && t == 0) {
					/* Others may hold write locks: -EBUSY is the documented answer. */
					auto r = c.flush();
					EXPECT_TRUE(r.is_ok() || r.error_code() == -EBUSY);
				}
			}
		});
	}
	for (auto &t : ts)
		t.join();
	EXPECT_EQ(failures.load(), 0u);
	EXPECT_EQ(torn.load(), 0u);
	ASSERT_OK(c.flush());
	u64 total = 0;
	for (block_t b = 1; b <= kBlocks; b++)
		total += *reinterpret_cast<u64 *>(dev.block_data(b));
	EXPECT_EQ(total, writes.load()) << "lost updates";
	EXPECT_GT(c.stats().evictions, 0u);
}

} // namespace
} // namespace dmxx::pdata::test
