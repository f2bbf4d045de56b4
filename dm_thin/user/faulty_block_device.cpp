// SPDX-License-Identifier: GPL-2.0
#include "user/faulty_block_device.h"

#include <cerrno>
#include <cstring>
#include <random>

namespace dmxx::pdata {

FaultyBlockDevice::FaultyBlockDevice(BlockDevice &inner) : m_inner(inner) {}

Result<block_t> FaultyBlockDevice::nr_blocks() { return m_inner.nr_blocks(); }

Result<void> FaultyBlockDevice::read(block_t b, void *buf)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_reads++;
	if (b == m_fail_read)
		return err(EIO);
	auto it = m_latest.find(b);
	if (it != m_latest.end()) {
		std::memcpy(buf, m_pending[it->second].second.data(), METADATA_BLOCK_SIZE);
		return {};
	}
	return m_inner.read(b, buf);
}

Result<void> FaultyBlockDevice::write(block_t b, const void *buf)
{
	std::lock_guard<std::mutex> g(m_lock);
	if (!m_crashed && m_armed) {
		if (m_crash_budget == 0)
			m_crashed = true;
		else
			m_crash_budget--;
	}
	if (m_crashed) {
		m_lost++;
		if (m_mode == CrashMode::ReturnEIO)
			return err(EIO);
		return {};
	}
	block_t n = TRY(m_inner.nr_blocks());
	if (b >= n)
		return err(EINVAL);
	m_writes++;
	if (!m_volatile)
		return m_inner.write(b, buf);
	const u8 *p = static_cast<const u8 *>(buf);
	m_pending.emplace_back(b, std::vector<u8>(p, p + METADATA_BLOCK_SIZE));
	m_latest[b] = m_pending.size() - 1;
	return {};
}

Result<void> FaultyBlockDevice::flush()
{
	std::lock_guard<std::mutex> g(m_lock);
	if (m_crashed) {
		if (m_mode == CrashMode::ReturnEIO)
			return err(EIO);
		return {};
	}
	m_flushes++;
	for (auto &w : m_pending)
		TRY(m_inner.write(w.first, w.second.data()));
	m_pending.clear();
	m_latest.clear();
	return m_inner.flush();
}

void FaultyBlockDevice::crash_after_writes(u64 n, CrashMode mode)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_armed = true;
	m_crash_budget = n;
	m_mode = mode;
}

void FaultyBlockDevice::crash_now(CrashMode mode)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_armed = true;
	m_crashed = true;
	m_mode = mode;
}

bool FaultyBlockDevice::crashed() const
{
	std::lock_guard<std::mutex> g(m_lock);
	return m_crashed;
}

void FaultyBlockDevice::disarm()
{
	std::lock_guard<std::mutex> g(m_lock);
	m_armed = false;
}

void FaultyBlockDevice::set_volatile_cache(bool on)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_volatile = on;
}

void FaultyBlockDevice::power_cycle(Unflushed policy, u64 seed)
{
	std::lock_guard<std::mutex> g(m_lock);
	std::mt19937_64 rng(seed);
	for (auto &w : m_pending) {
		bool keep = policy == Unflushed::Kept ||
			    (policy == Unflushed::RandomSubset && (rng() & 1));
		if (keep)
			(void)m_inner.write(w.first, w.second.data());
	}
	(void)m_inner.flush();
	m_pending.clear();
	m_latest.clear();
	m_armed = false;
	m_crashed = false;
	m_crash_budget = 0;
	m_writes = m_flushes = m_reads = m_lost = 0;
}

u64 FaultyBlockDevice::nr_writes() const
{
	std::lock_guard<std::mutex> g(m_lock);
	return m_writes;
}

u64 FaultyBlockDevice::nr_flushes() const
{
	std::lock_guard<std::mutex> g(m_lock);
	return m_flushes;
}

u64 FaultyBlockDevice::nr_reads() const
{
	std::lock_guard<std::mutex> g(m_lock);
	return m_reads;
}

u64 FaultyBlockDevice::nr_lost_writes() const
{
	std::lock_guard<std::mutex> g(m_lock);
	return m_lost;
}

void FaultyBlockDevice::fail_reads_of(block_t b)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_fail_read = b;
}

} // namespace dmxx::pdata
