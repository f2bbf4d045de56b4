/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A space map held entirely in memory (userspace only), for testing the
 * transaction manager and btrees before, and independently of, the on-disk
 * space maps. It keeps the one rule that matters for crash safety: a block
 * that was in use at the last commit is not handed out again before the
 * next commit, even if its count has dropped to zero since.
 *
 * Not persistent: root_size() is 0. Tests that reopen a device keep the
 * CoreSpaceMap object (its committed counts) across the "crash".
 */
#pragma once

#include <vector>

#include "persistent/space_map.h"

namespace dmxx::pdata {

class CoreSpaceMap final : public SpaceMap {
public:
	explicit CoreSpaceMap(block_t nr_blocks);

	Result<block_t> nr_blocks() override;
	Result<block_t> nr_free() override;
	Result<u32> get_count(block_t b) override;
	Result<bool> count_is_more_than_one(block_t b) override;
	Result<void> set_count(block_t b, u32 count) override;
	Result<void> inc(block_t b) override;
	Result<void> dec(block_t b) override; /* -EINVAL below zero */
	Result<block_t> new_block() override;
	Result<void> commit() override;
	Result<void> extend(block_t extra) override;
	usize root_size() override { return 0; }
	Result<void> copy_root(void *, usize) override { return err(EOPNOTSUPP); }

	/* Back to the counts of the last commit (a crash, or an aborted transaction). */
	void rollback();
	/* new_block() fails with -ENOSPC after @n more successes (error-path tests); ~0 = never. */
	void fail_new_block_after(u64 n) { m_fail_after = n; }

	const std::vector<u32> &counts() const { return m_counts; }
	u64 nr_commits() const { return m_commits; }

private:
	std::vector<u32> m_counts;
	std::vector<u32> m_committed;
	block_t m_cursor = 0;
	u64 m_fail_after = ~u64(0);
	u64 m_commits = 0;
};

} // namespace dmxx::pdata
