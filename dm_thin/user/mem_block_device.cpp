// SPDX-License-Identifier: GPL-2.0
#include "user/mem_block_device.h"

#include <cerrno>
#include <cstring>

namespace dmxx::pdata {

MemBlockDevice::MemBlockDevice(block_t nr_blocks) : m_data(nr_blocks * METADATA_BLOCK_SIZE, 0) {}

Result<block_t> MemBlockDevice::nr_blocks()
{
	std::lock_guard<std::mutex> g(m_lock);
	return block_t(m_data.size() / METADATA_BLOCK_SIZE);
}

Result<void> MemBlockDevice::read(block_t b, void *buf)
{
	std::lock_guard<std::mutex> g(m_lock);
	if (b >= m_data.size() / METADATA_BLOCK_SIZE)
		return err(EINVAL);
	std::memcpy(buf, &m_data[b * METADATA_BLOCK_SIZE], METADATA_BLOCK_SIZE);
	m_reads++;
	return {};
}

Result<void> MemBlockDevice::write(block_t b, const void *buf)
{
	std::lock_guard<std::mutex> g(m_lock);
	if (b >= m_data.size() / METADATA_BLOCK_SIZE)
		return err(EINVAL);
	std::memcpy(&m_data[b * METADATA_BLOCK_SIZE], buf, METADATA_BLOCK_SIZE);
	m_writes++;
	return {};
}

Result<void> MemBlockDevice::flush()
{
	std::lock_guard<std::mutex> g(m_lock);
	m_flushes++;
	return {};
}

void MemBlockDevice::resize(block_t nr_blocks)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_data.resize(nr_blocks * METADATA_BLOCK_SIZE, 0);
}

std::unique_ptr<MemBlockDevice> MemBlockDevice::clone() const
{
	std::lock_guard<std::mutex> g(m_lock);
	auto c = std::make_unique<MemBlockDevice>(0);
	c->m_data = m_data;
	return c;
}

u8 *MemBlockDevice::block_data(block_t b)
{
	std::lock_guard<std::mutex> g(m_lock);
	return b < m_data.size() / METADATA_BLOCK_SIZE ? &m_data[b * METADATA_BLOCK_SIZE] : nullptr;
}

bool MemBlockDevice::same_contents(const MemBlockDevice &o) const
{
	std::scoped_lock g(m_lock, o.m_lock);
	return m_data == o.m_data;
}

} // namespace dmxx::pdata
