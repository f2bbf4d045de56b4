/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared fixture for the snapshot targets in the userspace DM model: the
 * module registered, disks with unique names, I/O helpers, and a gated disk
 * whose writes wait until the test opens the gate (to hold copies in flight
 * deterministically).
 */
#pragma once

#include "../helpers.h"

#include "snapshot.h"
#include "snapshot_module.h"

#include <dmxx/params.h>
#include <dmxx/user/dm.h>
#include <dmxx/user/watch.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dmxx::test {

inline std::string unique_name(const std::string &base)
{
	static std::atomic<unsigned> n{0};
	return base + std::to_string(n.fetch_add(1));
}

/*
 * Passes bios to a lower device; while the gate is closed, bios of the
 * selected kinds wait in a queue (the submitter goes on, as with a slow
 * device). open() submits them and lets later ones through.
 */
class GateDisk final : public block_device {
public:
	GateDisk(const std::string &name, block_device *lower, bool hold_writes, bool hold_reads)
		: block_device(name, 251, next_minor(), lower->logical_block_size()), m_lower(lower),
		  m_hold_writes(hold_writes), m_hold_reads(hold_reads)
	{
		set_nr_sectors(lower->nr_sectors());
		publish();
	}
	~GateDisk() override
	{
		open();
		unpublish();
	}

	void submit(bio *b) override
	{
		{
			std::lock_guard<std::mutex> g(m_lock);
			bool write = dmxx::bio_is_write(b);
			if (m_closed && ((write && m_hold_writes) || (!write && m_hold_reads))) {
				m_held.push_back(b);
				m_cv.notify_all();
				return;
			}
		}
		b->bi_bdev = m_lower;
		dmxx_submit_bio(b);
	}
	void close()
	{
		std::lock_guard<std::mutex> g(m_lock);
		m_closed = true;
	}
	void open()
	{
		std::deque<bio *> held;
		{
			std::lock_guard<std::mutex> g(m_lock);
			m_closed = false;
			held.swap(m_held);
		}
		pass_on(held);
	}
	/* Let @n held bios through (oldest first); the gate stays closed. */
	void release(size_t n) { pass_on(take(n, false)); }
	/* Let the @n most recently held bios through (newest first). */
	void release_newest(size_t n) { pass_on(take(n, true)); }
	size_t held()
	{
		std::lock_guard<std::mutex> g(m_lock);
		return m_held.size();
	}
	bool wait_held(size_t n, std::chrono::milliseconds limit = std::chrono::milliseconds(5000))
	{
		std::unique_lock<std::mutex> g(m_lock);
		return m_cv.wait_for(g, limit, [&] { return m_held.size() >= n; });
	}

private:
	std::deque<bio *> take(size_t n, bool newest)
	{
		std::deque<bio *> out;
		std::lock_guard<std::mutex> g(m_lock);
		while (n-- && !m_held.empty()) {
			out.push_back(newest ? m_held.back() : m_held.front());
			if (newest)
				m_held.pop_back();
			else
				m_held.pop_front();
		}
		return out;
	}
	void pass_on(const std::deque<bio *> &bios)
	{
		for (bio *b : bios) {
			b->bi_bdev = m_lower;
			dmxx_submit_bio(b);
		}
	}
	static unsigned next_minor()
	{
		static std::atomic<unsigned> m{0};
		return m.fetch_add(1);
	}
	block_device *m_lower;
	bool m_hold_writes, m_hold_reads;
	std::mutex m_lock;
	std::condition_variable m_cv;
	bool m_closed = false;
	std::deque<bio *> m_held;
};

/* The Snapshot behind a snapshot/snapshot-merge device's (only) target. */
inline snap::Snapshot *snapshot_of(user::DmDevice *md)
{
	return static_cast<snap::Snapshot *>(md->target(0)->priv);
}

/*
 * Wait (bounded) for a condition no platform event announces, such as a
 * thread having gone to sleep. 1 ms polls: a test's sequencing, not its timing.
 */
inline bool eventually(const std::function<bool()> &pred,
		       std::chrono::milliseconds limit = std::chrono::milliseconds(10000))
{
	auto end = std::chrono::steady_clock::now() + limit;
	while (!pred()) {
		if (std::chrono::steady_clock::now() > end)
			return false;
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	return true;
}

/* Thread @name (user::set_thread_name) is blocked in @what ("down_write", ...). */
inline bool thread_blocked_in(const std::string &name, const std::string &what)
{
	for (const auto &t : user::thread_reports())
		if (t.name == name && t.blocked && t.state.find(what) != std::string::npos)
			return true;
	return false;
}

class SnapTest : public DmxxTest {
protected:
	void SetUp() override
	{
		DmxxTest::SetUp();
		ASSERT_EQ(dmxx_snapshot_init(), 0);
		dmxx_user_param_set_uint("snapshot_cow_threshold", 2048);
		snap::set_throttle_mode_for_test(snap::ThrottleMode::Ours);
	}
	void TearDown() override
	{
		snap::set_throttle_mode_for_test(snap::ThrottleMode::Ours);
		dmxx_user_param_set_uint("snapshot_cow_threshold", 2048);
		dmxx_snapshot_exit();
		DmxxTest::TearDown();
	}

public:
	static std::unique_ptr<user::MemDisk> disk(sector_t sectors, unsigned lbs = 512, bool async = false)
	{
		user::MemDisk::Options o;
		o.logical_block_size = lbs;
		o.async = async;
		return user::MemDisk::create(unique_name("sd"), sectors, o);
	}

	static std::unique_ptr<user::DmDevice> dm(const std::string &table, user::DmResult *r = nullptr)
	{
		user::DmResult res;
		auto md = user::DmDevice::create(unique_name("sdm"), table, &res);
		if (r)
			*r = res;
		EXPECT_TRUE(md) << table << ": " << res.error;
		return md;
	}

	/* A table that must be refused: returns what dmsetup would report. */
	static user::DmResult dm_error(const std::string &table)
	{
		user::DmResult res;
		auto md = user::DmDevice::create(unique_name("sdm"), table, &res);
		EXPECT_FALSE(md) << table;
		return res;
	}

	static std::string origin_table(block_device *origin)
	{
		return "0 " + std::to_string(origin->nr_sectors()) + " snapshot-origin " + origin->dev_name();
	}
	static std::string snap_table(block_device *origin, block_device *cow, const std::string &args,
				      const char *type = "snapshot")
	{
		return "0 " + std::to_string(origin->nr_sectors()) + " " + type + " " + origin->dev_name() + " " +
		       cow->dev_name() + " " + args;
	}

	static void write(block_device *d, sector_t s, const std::vector<u8> &data, u8 expect = DMXX_BLK_STS_OK)
	{
		EXPECT_EQ(user::sync_write(d, s, data.data(), u32(data.size())), expect) << "write at " << s;
	}
	static std::vector<u8> read(block_device *d, sector_t s, size_t bytes, u8 *status = nullptr)
	{
		std::vector<u8> out(bytes);
		u8 st = user::sync_read(d, s, out.data(), u32(bytes));
		if (status)
			*status = st;
		else
			EXPECT_EQ(st, DMXX_BLK_STS_OK) << "read at " << s;
		return out;
	}
	static std::vector<u8> raw(user::MemDisk *d, sector_t s, size_t bytes)
	{
		std::vector<u8> out(bytes);
		d->read_raw(s, out.data(), bytes);
		return out;
	}
	static std::string info(user::DmDevice *md) { return md->target_status(DMXX_STATUSTYPE_INFO)[0]; }

protected:
	static std::string table(user::DmDevice *md) { return md->target_status(DMXX_STATUSTYPE_TABLE)[0]; }
};

} // namespace dmxx::test
