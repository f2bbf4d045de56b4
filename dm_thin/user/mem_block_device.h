/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An in-memory metadata device (userspace only).
 *
 * Why: btree and transaction tests run thousands of commits; a RAM device
 * makes them fast and lets a test copy the whole device (clone()) to replay
 * a crash from the same starting state at every write point.
 */
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "persistent/block_device.h"

namespace dmxx::pdata {

class MemBlockDevice final : public BlockDevice {
public:
	explicit MemBlockDevice(block_t nr_blocks);

	Result<block_t> nr_blocks() override;
	Result<void> read(block_t b, void *buf) override;
	Result<void> write(block_t b, const void *buf) override;
	Result<void> flush() override;

	/* Grow (new blocks read as zeroes) or shrink. */
	void resize(block_t nr_blocks);
	/* A copy of the current contents. */
	std::unique_ptr<MemBlockDevice> clone() const;
	/* Direct access for tests that corrupt blocks on purpose. */
	u8 *block_data(block_t b);
	bool same_contents(const MemBlockDevice &o) const;

	u64 nr_reads() const { return m_reads; }
	u64 nr_writes() const { return m_writes; }
	u64 nr_flushes() const { return m_flushes; }

private:
	mutable std::mutex m_lock;
	std::vector<u8> m_data;
	u64 m_reads = 0, m_writes = 0, m_flushes = 0;
};

} // namespace dmxx::pdata
