// SPDX-License-Identifier: GPL-2.0
#include "user/core_space_map.h"

#include <cerrno>

namespace dmxx::pdata {

CoreSpaceMap::CoreSpaceMap(block_t nr_blocks) : m_counts(nr_blocks, 0), m_committed(nr_blocks, 0) {}

Result<block_t> CoreSpaceMap::nr_blocks() { return block_t(m_counts.size()); }

Result<block_t> CoreSpaceMap::nr_free()
{
	block_t n = 0;
	for (size_t i = 0; i < m_counts.size(); i++)
		if (!m_counts[i] && !m_committed[i])
			n++;
	return n;
}

Result<u32> CoreSpaceMap::get_count(block_t b)
{
	if (b >= m_counts.size())
		return err(EINVAL);
	return m_counts[b];
}

Result<bool> CoreSpaceMap::count_is_more_than_one(block_t b)
{
	if (b >= m_counts.size())
		return err(EINVAL);
	return m_counts[b] > 1;
}

Result<void> CoreSpaceMap::set_count(block_t b, u32 count)
{
	if (b >= m_counts.size())
		return err(EINVAL);
	m_counts[b] = count;
	return {};
}

Result<void> CoreSpaceMap::inc(block_t b)
{
	if (b >= m_counts.size())
		return err(EINVAL);
	m_counts[b]++;
	return {};
}

Result<void> CoreSpaceMap::dec(block_t b)
{
	if (b >= m_counts.size() || !m_counts[b])
		return err(EINVAL);
	m_counts[b]--;
	return {};
}

Result<block_t> CoreSpaceMap::new_block()
{
	if (m_fail_after == 0)
		return err(ENOSPC);
	size_t n = m_counts.size();
	for (size_t i = 0; i < n; i++) {
		block_t b = (m_cursor + i) % n;
		/* Free now AND free at the last commit: the old tree cannot be using it. */
		if (!m_counts[b] && !m_committed[b]) {
			m_counts[b] = 1;
			m_cursor = (b + 1) % n;
			if (m_fail_after != ~u64(0))
				m_fail_after--;
			return b;
		}
	}
	return err(ENOSPC);
}

Result<void> CoreSpaceMap::commit()
{
	m_committed = m_counts;
	m_commits++;
	return {};
}

Result<void> CoreSpaceMap::extend(block_t extra)
{
	m_counts.resize(m_counts.size() + extra, 0);
	m_committed.resize(m_counts.size(), 0);
	return {};
}

void CoreSpaceMap::rollback() { m_counts = m_committed; }

} // namespace dmxx::pdata
