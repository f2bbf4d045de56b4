// SPDX-License-Identifier: GPL-2.0
/*
 * Crash consistency: a transaction (changes + commit) is replayed from the
 * same committed image with the device crashing after k writes, for every k
 * until the transaction completes. After the power comes back, the metadata
 * must open and equal the last committed transaction (or, once the
 * superblock write has been accepted, possibly the new one), and thin_check
 * must pass on the image.
 *
 * Negative control: the same harness, run over a device that ignores flush
 * (the commit's write barrier) and lets the superblock reach the platter
 * before the blocks it points to, must catch the damage. Without it this
 * test could pass by never looking.
 */
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "../../../dm_thin/metadata/thin_metadata.h"
#include "../../../dm_thin/user/faulty_block_device.h"
#include "../../../dm_thin/user/mem_block_device.h"
#include "oracle.h"
#include "pool_model.h"
#include "workload.h"

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::pdata::CrashMode;
using dmxx::pdata::FaultyBlockDevice;
using dmxx::pdata::MemBlockDevice;
using dmxx::pdata::Unflushed;

namespace {

constexpr u32 DBS = 128;
/*
 * A small cache: dirty blocks are written back in the middle of the
 * transaction too, so crashes also land between those writes.
 */
constexpr unsigned CACHE = 24;

/*
 * A disk whose cache ignores flushes and, at power loss, keeps the
 * superblock write but loses every other write since the last power cycle:
 * a legal outcome for a volatile cache when no barrier orders them. Models
 * a commit protocol without flushes (the negative control).
 */
class NoBarrierDevice final : public pdata::BlockDevice {
public:
	explicit NoBarrierDevice(MemBlockDevice &inner) : m_inner(inner) {}
	Result<pdata::block_t> nr_blocks() override { return m_inner.nr_blocks(); }
	Result<void> read(pdata::block_t b, void *buf) override
	{
		std::lock_guard<std::mutex> g(m_lock);
		auto it = m_pending.find(b);
		if (it != m_pending.end()) {
			std::memcpy(buf, it->second.data(), it->second.size());
			return {};
		}
		return m_inner.read(b, buf);
	}
	Result<void> write(pdata::block_t b, const void *buf) override
	{
		std::lock_guard<std::mutex> g(m_lock);
		auto *p = static_cast<const u8 *>(buf);
		m_pending[b].assign(p, p + pdata::METADATA_BLOCK_SIZE);
		return {};
	}
	Result<void> flush() override { return {}; } /* the missing barrier */
	/* Power loss: only the superblock made it. */
	void power_cut()
	{
		auto it = m_pending.find(0);
		if (it != m_pending.end())
			(void)m_inner.write(0, it->second.data());
		m_pending.clear();
	}

private:
	MemBlockDevice &m_inner;
	std::mutex m_lock;
	std::map<pdata::block_t, std::vector<u8>> m_pending;
};

/* The workload of the transaction under test: deterministic for a seed. */
std::string run_transaction(ThinMetadata &md, test::PoolModel &model, uint64_t seed, unsigned steps)
{
	test::WorkloadOptions o;
	o.seed = seed;
	o.steps = steps;
	o.commit_every = 0; /* one transaction: the commit below */
	o.resizes = true;
	test::Workload w(md, model, o);
	std::string e = w.run();
	if (!e.empty())
		return e;
	return w.commit();
}

/*
 * Reopen @disk; "" if it equals @a or @b (b may be null), and thin_check
 * passes when @check_with_oracle.
 */
std::string verify(MemBlockDevice &disk, const test::PoolModel &a, const test::PoolModel *b,
		   const test::TempDir *tmp)
{
	auto o = ThinMetadata::open(disk, OpenOptions{DBS, false, CACHE});
	if (o.is_error())
		return "reopen failed: " + std::to_string(o.error_code());
	std::unique_ptr<ThinMetadata> md(o.release_value());
	std::string ea = test::compare_with_model(*md, disk, a);
	if (!ea.empty()) {
		std::string eb = b ? test::compare_with_model(*md, disk, *b) : "no new state allowed";
		if (!eb.empty())
			return "matches neither state:\n" + ea.substr(0, 2000);
	}
	md.reset();
	if (tmp) {
		std::string image = tmp->file("crash.img");
		if (!test::write_image(disk, image))
			return "cannot write image";
		std::string e = test::thin_check(image);
		if (!e.empty())
			return e;
	}
	return "";
}

struct Base {
	std::unique_ptr<MemBlockDevice> disk;
	test::PoolModel committed{DBS, 3000};
};

/* A committed pool with some history: the state every crash must fall back to. */
Base make_base(uint64_t seed)
{
	Base b;
	b.disk = std::make_unique<MemBlockDevice>(1024);
	std::unique_ptr<ThinMetadata> md(ThinMetadata::format(*b.disk, DBS, 3000).release_value());
	test::WorkloadOptions o;
	o.seed = seed;
	o.steps = 500;
	test::Workload w(*md, b.committed, o);
	EXPECT_EQ(w.run(), "");
	EXPECT_EQ(w.commit(), "");
	return b;
}

class ThinCrash : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ThinCrash, EveryWritePointLeavesTheLastCommit)
{
	uint64_t seed = GetParam();
	bool oracle = !test::oracle_tool("thin_check").empty();
	test::TempDir tmp;
	Base base = make_base(seed);
	constexpr unsigned STEPS = 150;

	/* A clean run: how many writes the transaction makes, and the state it ends in. */
	test::PoolModel after = base.committed;
	u64 total;
	{
		auto disk = base.disk->clone();
		FaultyBlockDevice dev(*disk);
		dev.set_volatile_cache(true);
		std::unique_ptr<ThinMetadata> md(ThinMetadata::open(dev, OpenOptions{DBS, false, CACHE}).release_value());
		ASSERT_EQ(run_transaction(*md, after, seed + 1, STEPS), "");
		total = dev.nr_writes();
		md.reset();
		dev.power_cycle(Unflushed::Lost);
		ASSERT_EQ(verify(*disk, after, nullptr, nullptr), "") << "the clean run itself";
	}
	ASSERT_GT(total, 5u);

	const Unflushed policies[] = {Unflushed::Lost, Unflushed::Kept, Unflushed::RandomSubset};
	unsigned checked = 0;
	for (u64 k = 0; k <= total; k++) {
		for (Unflushed policy : policies) {
			auto disk = base.disk->clone();
			FaultyBlockDevice dev(*disk);
			dev.set_volatile_cache(true);
			dev.crash_after_writes(k, k % 2 ? CrashMode::Silent : CrashMode::ReturnEIO);
			{
				auto o = ThinMetadata::open(dev, OpenOptions{DBS, false, CACHE});
				ASSERT_TRUE(o.is_ok());
				std::unique_ptr<ThinMetadata> md(o.release_value());
				test::PoolModel scratch = base.committed;
				(void)run_transaction(*md, scratch, seed + 1, STEPS); /* fails after the crash */
			}
			bool crashed = dev.crashed();
			dev.power_cycle(policy, seed * 131 + k);
			/* The superblock is the commit's last write: until it is accepted, only the old state. */
			const test::PoolModel *newer = k >= total ? &after : nullptr;
			if (!crashed)
				newer = &after;
			/* thin_check on a sample of points keeps the test fast; the model check runs on all. */
			bool use_oracle = oracle && (policy == Unflushed::RandomSubset) &&
					  (k % 8 == 0 || k + 2 >= total);
			std::string e = verify(*disk, base.committed, newer, use_oracle ? &tmp : nullptr);
			ASSERT_EQ(e, "") << "seed " << seed << " crash after " << k << " of " << total
					 << " writes, policy " << int(policy);
			checked++;
		}
	}
	RecordProperty("write_points", int(total));
	std::printf("seed %llu: %llu write points x 3 unflushed-write policies checked\n",
		    (unsigned long long)seed, (unsigned long long)total);
	EXPECT_EQ(checked, 3 * (total + 1));
}

INSTANTIATE_TEST_SUITE_P(Seeds, ThinCrash, ::testing::Values(3, 8, 13));

TEST(ThinCrashNegativeControl, CommitWithoutBarrierIsCaught)
{
	Base base = make_base(21);
	auto disk = base.disk->clone();
	NoBarrierDevice dev(*disk);
	{
		std::unique_ptr<ThinMetadata> md(ThinMetadata::open(dev, OpenOptions{DBS, false, CACHE}).release_value());
		test::PoolModel scratch = base.committed;
		ASSERT_EQ(run_transaction(*md, scratch, 22, 120), "");
	}
	dev.power_cut();
	/* The new superblock points at blocks that never reached the disk. */
	std::string e = verify(*disk, base.committed, nullptr, nullptr);
	EXPECT_NE(e, "") << "a superblock that overtook its blocks went unnoticed";
	std::printf("negative control caught: %s\n", e.substr(0, 200).c_str());
}

} // namespace
