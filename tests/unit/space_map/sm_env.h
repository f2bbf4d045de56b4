// SPDX-License-Identifier: GPL-2.0
/*
 * A metadata device with both space maps on it, for the space-map tests.
 *
 * Block 0 is a test superblock holding the two maps' roots (the role thin
 * metadata's superblock plays); commit() follows thin's order: the data map
 * commits, then the transaction manager's pre_commit commits the metadata
 * map and writes everything else, then the superblock goes last.
 * reopen() drops every in-memory structure and reads the device afresh.
 */
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "persistent/block_cache.h"
#include "persistent/checksum.h"
#include "persistent/transaction.h"
#include "space_map/disk_space_map.h"
#include "space_map/metadata_space_map.h"
#include "space_map/sm_check.h"

namespace dmxx::pdata::test {

/*
 * A RAM device that stores only blocks ever written or touched: the
 * largest metadata device (255 bitmaps, 16 GiB) costs a few hundred blocks.
 */
class SparseBlockDevice final : public BlockDevice {
public:
	explicit SparseBlockDevice(block_t nr_blocks) : m_nr_blocks(nr_blocks) {}

	Result<block_t> nr_blocks() override
	{
		std::lock_guard<std::mutex> g(m_lock);
		return m_nr_blocks;
	}
	Result<void> read(block_t b, void *buf) override
	{
		std::lock_guard<std::mutex> g(m_lock);
		if (b >= m_nr_blocks)
			return err(EINVAL);
		auto it = m_blocks.find(b);
		if (it == m_blocks.end())
			std::memset(buf, 0, METADATA_BLOCK_SIZE);
		else
			std::memcpy(buf, it->second.data(), METADATA_BLOCK_SIZE);
		return {};
	}
	Result<void> write(block_t b, const void *buf) override
	{
		std::lock_guard<std::mutex> g(m_lock);
		if (b >= m_nr_blocks)
			return err(EINVAL);
		auto &blk = m_blocks[b];
		blk.resize(METADATA_BLOCK_SIZE);
		std::memcpy(blk.data(), buf, METADATA_BLOCK_SIZE);
		return {};
	}
	Result<void> flush() override { return {}; }

	void resize(block_t nr_blocks)
	{
		std::lock_guard<std::mutex> g(m_lock);
		m_nr_blocks = nr_blocks;
	}
	/* For tests that corrupt blocks on purpose (no I/O may be in flight). */
	u8 *block_data(block_t b)
	{
		std::lock_guard<std::mutex> g(m_lock);
		auto &blk = m_blocks[b];
		blk.resize(METADATA_BLOCK_SIZE, 0);
		return blk.data();
	}

private:
	std::mutex m_lock;
	block_t m_nr_blocks;
	std::map<block_t, std::vector<u8>> m_blocks;
};

#define ASSERT_OK(expr)                                                                     \
	do {                                                                                \
		auto _r = (expr);                                                           \
		ASSERT_TRUE(_r.is_ok()) << #expr << " failed: " << _r.error_code();         \
	} while (0)

#define EXPECT_OK(expr)                                                                     \
	do {                                                                                \
		auto _r = (expr);                                                           \
		EXPECT_TRUE(_r.is_ok()) << #expr << " failed: " << _r.error_code();         \
	} while (0)

/* Unwrap a Result in a test; fails the test (and returns) on error. */
#define ASSERT_VALUE(var, expr)                                                             \
	auto var##_result = (expr);                                                         \
	ASSERT_TRUE(var##_result.is_ok()) << #expr << " failed: " << var##_result.error_code(); \
	auto var = var##_result.release_value()

struct TestSuperblock {
	le32 csum;
	le32 pad;
	le64 blocknr;
	u8 metadata_root[128];
	u8 data_root[128];
};

class TestSuperblockValidator final : public BlockValidator {
public:
	static constexpr u32 salt = 0x5a17e57;
	const char *name() const override { return "test_superblock"; }
	void prepare_for_write(void *data, block_t where) const override
	{
		auto *sb = static_cast<TestSuperblock *>(data);
		sb->blocknr = to_le64(where);
		sb->csum = to_le32(block_checksum(&sb->pad, METADATA_BLOCK_SIZE - 4, salt));
	}
	Result<void> check(const void *data, block_t where, CheckFailure &why) const override
	{
		auto *sb = static_cast<const TestSuperblock *>(data);
		if (from_le(sb->blocknr) != where ||
		    from_le(sb->csum) != block_checksum(&sb->pad, METADATA_BLOCK_SIZE - 4, salt)) {
			why.set("bad test superblock");
			return err(EILSEQ);
		}
		return {};
	}
};

inline const TestSuperblockValidator test_sb_validator{};

class SmEnv {
public:
	/* @data_blocks == 0: no data space map. */
	SmEnv(block_t metadata_blocks, block_t data_blocks, unsigned cache_blocks = 512)
		: m_cache_blocks(cache_blocks), m_with_data(data_blocks > 0)
	{
		disk = std::make_unique<SparseBlockDevice>(metadata_blocks);
		open_cache();
		auto m = MetadataSpaceMap::format(*tm, 0);
		EXPECT_TRUE(m.is_ok()) << "format: " << m.error_code();
		if (m.is_error())
			return;
		msm.reset(m.value());
		if (m_with_data) {
			auto d = DiskSpaceMap::create(*tm, data_blocks);
			EXPECT_TRUE(d.is_ok()) << "disk create: " << d.error_code();
			if (d.is_ok())
				dsm.reset(d.value());
		}
		auto c = commit();
		EXPECT_TRUE(c.is_ok()) << "first commit: " << c.error_code();
	}

	~SmEnv() { close(); }

	Result<void> commit()
	{
		if (dsm)
			TRY(dsm->commit());
		TRY(tm->pre_commit());
		WriteRef sb = TRY(cache->write_lock_zero(0, &test_sb_validator));
		auto *s = static_cast<TestSuperblock *>(sb.data());
		TRY(msm->copy_root(s->metadata_root, sizeof(s->metadata_root)));
		if (dsm)
			TRY(dsm->copy_root(s->data_root, sizeof(s->data_root)));
		std::memcpy(m_md_root, s->metadata_root, sizeof(m_md_root));
		std::memcpy(m_data_root, s->data_root, sizeof(m_data_root));
		return tm->commit(std::move(sb));
	}

	void close()
	{
		dsm.reset();
		msm.reset();
		tm.reset();
		cache.reset();
	}

	/* Forget the open transaction and every in-memory structure; read the device afresh. */
	Result<void> reopen()
	{
		close();
		open_cache();
		TestSuperblock s;
		{
			ReadRef sb = TRY(cache->read_lock(0, &test_sb_validator));
			std::memcpy(&s, sb.data(), sizeof(s));
		}
		msm.reset(TRY(MetadataSpaceMap::open(*tm, s.metadata_root, 128)));
		if (m_with_data)
			dsm.reset(TRY(DiskSpaceMap::open(*tm, s.data_root, sizeof(s.data_root))));
		return {};
	}

	/* Abort the open transaction and reopen from the last commit (after an error). */
	Result<void> abort_and_reopen()
	{
		TRY(tm->abort());
		return reopen();
	}

	const u8 *metadata_root() const { return m_md_root; }
	const u8 *data_root() const { return m_data_root; }

	/*
	 * What thin_check verifies about the metadata map, on the committed image
	 * read through a fresh cache: both maps are consistent in themselves, and
	 * every metadata block's count is exactly the number of references to it
	 * (superblock, both maps' structures, and @extra: references the test
	 * itself holds). Returns the committed metadata counts.
	 */
	std::vector<u32> check_committed(const std::vector<u32> &extra = {})
	{
		std::vector<u32> counts;
		BlockCache fresh(*disk, 256);
		EXPECT_TRUE(fresh.init().is_ok());
		TransactionManager ftm(fresh);
		EXPECT_TRUE(ftm.init().is_ok());

		SmCheckReport rep;
		auto r = check_space_map(ftm, SmKind::Metadata, m_md_root, 128, rep);
		EXPECT_TRUE(r.is_ok()) << "metadata map: " << rep.failure.reason;
		std::vector<u32> expected(rep.nr_blocks, 0);
		expected.at(0)++; /* the superblock */
		auto add = [](void *ctx, block_t b) {
			auto *v = static_cast<std::vector<u32> *>(ctx);
			if (b < v->size())
				(*v)[b]++;
			else
				ADD_FAILURE() << "reference to block " << b << " beyond the device";
		};
		EXPECT_TRUE(visit_space_map_blocks(ftm, SmKind::Metadata, m_md_root, 128, add,
						   &expected)
				    .is_ok());
		if (m_with_data) {
			auto d = check_space_map(ftm, SmKind::Disk, m_data_root, 128, rep);
			EXPECT_TRUE(d.is_ok()) << "data map: " << rep.failure.reason;
			EXPECT_TRUE(visit_space_map_blocks(ftm, SmKind::Disk, m_data_root, 128, add,
							   &expected)
					    .is_ok());
		}
		for (size_t b = 0; b < extra.size() && b < expected.size(); b++)
			expected[b] += extra[b];

		auto collect = [](void *ctx, block_t, u32 count) -> Result<void> {
			static_cast<std::vector<u32> *>(ctx)->push_back(count);
			return {};
		};
		auto v = visit_counts(ftm, SmKind::Metadata, m_md_root, 128, collect, &counts);
		EXPECT_TRUE(v.is_ok());
		EXPECT_EQ(counts.size(), expected.size());
		int shown = 0;
		for (size_t b = 0; b < counts.size() && b < expected.size(); b++) {
			if (counts[b] != expected[b] && shown++ < 10)
				ADD_FAILURE() << "metadata block " << b << ": count " << counts[b]
					      << ", referenced " << expected[b] << " times";
		}
		return counts;
	}

	/* The committed data counts, read from disk. */
	std::vector<u32> committed_data_counts()
	{
		std::vector<u32> counts;
		BlockCache fresh(*disk, 256);
		EXPECT_TRUE(fresh.init().is_ok());
		TransactionManager ftm(fresh);
		EXPECT_TRUE(ftm.init().is_ok());
		auto collect = [](void *ctx, block_t, u32 count) -> Result<void> {
			static_cast<std::vector<u32> *>(ctx)->push_back(count);
			return {};
		};
		auto v = visit_counts(ftm, SmKind::Disk, m_data_root, 128, collect, &counts);
		EXPECT_TRUE(v.is_ok());
		return counts;
	}

	std::unique_ptr<SparseBlockDevice> disk;
	std::unique_ptr<BlockCache> cache;
	std::unique_ptr<TransactionManager> tm;
	std::unique_ptr<MetadataSpaceMap> msm;
	std::unique_ptr<DiskSpaceMap> dsm;

private:
	void open_cache()
	{
		cache = std::make_unique<BlockCache>(*disk, m_cache_blocks);
		EXPECT_TRUE(cache->init().is_ok());
		tm = std::make_unique<TransactionManager>(*cache);
		EXPECT_TRUE(tm->init().is_ok());
	}

	unsigned m_cache_blocks;
	bool m_with_data;
	u8 m_md_root[128] = {};
	u8 m_data_root[128] = {};
};

} // namespace dmxx::pdata::test
