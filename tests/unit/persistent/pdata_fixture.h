/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared fixtures of the persistent-data tests: a device, a cache, an
 * in-core space map and a transaction manager wired together, a toy
 * superblock (block 0: checksum, location, one root, a transaction id) and
 * the commit protocol around it, and a reference-count audit.
 */
#pragma once

#include "persistent/block_cache.h"
#include "persistent/btree.h"
#include "persistent/btree_check.h"
#include "persistent/checksum.h"
#include "persistent/transaction.h"
#include "user/core_space_map.h"
#include "user/mem_block_device.h"

#include "../helpers.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dmxx::pdata::test {

/*
 * Every test runs under the project fixture: no allocation faults left over,
 * a clean log, and every dmxx_alloc of the core freed by the end.
 */
class PdataTest : public dmxx::test::DmxxTest {};
using CacheTest = PdataTest;
using TmTest = PdataTest;
using CrashTest = PdataTest;
using BtreeTest = PdataTest;
using BtreeRandomTest = PdataTest;
using BtreeMultiLevelTest = PdataTest;
using BtreeSharedTest = PdataTest;
using InteropTest = PdataTest;

/* Streamable like any gtest assertion; the failure shows the errno. */
#define ASSERT_OK(expr) ASSERT_EQ((expr).error_code(), 0) << #expr
#define EXPECT_OK(expr) EXPECT_EQ((expr).error_code(), 0) << #expr

/* Unwrap a Result in a test (fails the test and returns T{} on error). */
template <typename T> T must(Result<T> r, const char *what = "")
{
	EXPECT_TRUE(r.is_ok()) << what << " failed: " << r.error_code();
	if (r.is_error())
		return T{};
	return r.release_value();
}

/* ---- a toy superblock ------------------------------------------------------------- */

struct ToySuper {
	le32 csum;
	le32 pad;
	le64 blocknr;
	le64 root;
	le64 txn;
};

class ToySuperValidator final : public BlockValidator {
public:
	const char *name() const override { return "toy_superblock"; }
	void prepare_for_write(void *data, block_t where) const override
	{
		auto *s = static_cast<ToySuper *>(data);
		s->blocknr = to_le64(where);
		s->csum = to_le32(block_checksum(&s->pad, METADATA_BLOCK_SIZE - 4,
						 THIN_SUPERBLOCK_CSUM_XOR));
	}
	Result<void> check(const void *data, block_t where, CheckFailure &why) const override
	{
		auto *s = static_cast<const ToySuper *>(data);
		if (from_le(s->blocknr) != where) {
			why.set("superblock location %llu", (unsigned long long)from_le(s->blocknr));
			return err(EILSEQ);
		}
		if (from_le(s->csum) != block_checksum(&s->pad, METADATA_BLOCK_SIZE - 4,
						       THIN_SUPERBLOCK_CSUM_XOR)) {
			why.set("superblock checksum");
			return err(EILSEQ);
		}
		return {};
	}
};

inline const ToySuperValidator &toy_sb_validator()
{
	static const ToySuperValidator v;
	return v;
}

/* ---- device + cache + space map + tm ------------------------------------------------ */

struct Env {
	explicit Env(block_t nr_blocks = 4096, unsigned cache_blocks = 1024)
		: dev(std::make_unique<MemBlockDevice>(nr_blocks)), sm(nr_blocks)
	{
		open(*dev, cache_blocks);
		EXPECT_OK(sm.set_count(0, 1)); /* the superblock */
	}

	/* (Re)open cache and tm over @d (keeps the space map). */
	void open(BlockDevice &d, unsigned cache_blocks = 1024)
	{
		tm.reset();
		cache.reset();
		cache = std::make_unique<BlockCache>(d, cache_blocks);
		EXPECT_OK(cache->init());
		tm = std::make_unique<TransactionManager>(*cache);
		EXPECT_OK(tm->init());
		tm->set_space_map(&sm);
	}

	/* The two-phase commit of @root under transaction id @txn, through the toy superblock. */
	Result<void> commit(block_t root, u64 txn)
	{
		TRY(tm->pre_commit());
		/* The toy superblock is rewritten whole (a real one is read and updated). */
		WriteRef sb = TRY(cache->write_lock_zero(0, &toy_sb_validator()));
		auto *s = static_cast<ToySuper *>(sb.data());
		s->root = to_le64(root);
		s->txn = to_le64(txn);
		return tm->commit(dmxx::move(sb));
	}

	/* Format: write an empty superblock (txn 0) so the first read checks. */
	Result<void> format(block_t root)
	{
		TRY(tm->pre_commit());
		WriteRef sb = TRY(cache->write_lock_zero(0, &toy_sb_validator()));
		auto *s = static_cast<ToySuper *>(sb.data());
		s->root = to_le64(root);
		s->txn = to_le64(0);
		return tm->commit(dmxx::move(sb));
	}

	std::unique_ptr<MemBlockDevice> dev;
	CoreSpaceMap sm;
	std::unique_ptr<BlockCache> cache;
	std::unique_ptr<TransactionManager> tm;
};

/* Read the superblock through a fresh cache over @d. */
inline Result<ToySuper> read_super(BlockDevice &d)
{
	BlockCache c(d, 16);
	TRY(c.init());
	ReadRef r = TRY(c.read_lock(0, &toy_sb_validator()));
	ToySuper s;
	std::memcpy(&s, r.data(), sizeof(s));
	return s;
}

/*
 * Every block's count in @sm must equal the number of references found by
 * walking @roots (each root counted once per appearance) plus @extra (the
 * superblock...). Returns a description of the first mismatch, "" if none.
 */
inline std::string audit_counts(TransactionManager &tm, CoreSpaceMap &sm,
				const std::vector<std::pair<block_t, unsigned>> &roots_levels,
				const std::map<block_t, u32> &extra)
{
	std::map<block_t, u32> expect = extra;
	for (auto [root, levels] : roots_levels) {
		auto r = visit_btree_references(
			tm, root, levels,
			[](void *ctx, block_t b) { (*static_cast<std::map<block_t, u32> *>(ctx))[b]++; },
			&expect);
		if (r.is_error())
			return "walk failed: " + std::to_string(r.error_code());
	}
	const auto &counts = sm.counts();
	for (block_t b = 0; b < counts.size(); b++) {
		u32 want = expect.count(b) ? expect[b] : 0;
		if (counts[b] != want)
			return "block " + std::to_string(b) + ": count " + std::to_string(counts[b]) +
			       ", referenced " + std::to_string(want) + " times";
	}
	return "";
}

} // namespace dmxx::pdata::test
