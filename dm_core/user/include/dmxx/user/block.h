/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The userspace block layer model: block devices, a device directory,
 * depth-first bio submission, and in-memory disks.
 *
 * struct block_device is the model's base class; MemDisk and DmDevice
 * (<dmxx/user/dm.h>) derive from it. dmxx_submit_bio() hands a bio to its
 * device's submit(); like submit_bio_noacct(), bios submitted while another
 * submission is running on the same thread are queued on a per-thread list
 * and issued after it returns, so stacks of devices do not recurse.
 * Completions (dmxx_bio_endio) run in simulated atomic context: an end_io
 * that sleeps is reported by the may-sleep checker.
 */
#pragma once

#include <dmxx/bio.h>
#include <dmxx/platform.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct block_device {
	block_device(std::string name, unsigned major, unsigned minor, unsigned logical_block_size);
	virtual ~block_device();
	block_device(const block_device &) = delete;
	block_device &operator=(const block_device &) = delete;

	/* Take ownership of @b until dmxx_bio_endio(b). */
	virtual void submit(bio *b) = 0;

	const std::string &name() const { return m_name; }
	unsigned dev_major() const { return m_major; }
	unsigned dev_minor() const { return m_minor; }
	std::string dev_name() const; /* "major:minor" */
	sector_t nr_sectors() const { return m_nr_sectors.load(std::memory_order_acquire); }
	unsigned logical_block_size() const { return m_lbs; }
	/* Openers through dmxx_dm_get_device (a table holding the device). */
	int open_count() const { return m_open.load(); }
	void get_open() { m_open.fetch_add(1); }
	void put_open() { m_open.fetch_sub(1); }

protected:
	/* Make the device findable by name, aliases and "major:minor" / remove it. */
	void publish(const std::vector<std::string> &aliases = {});
	void unpublish();
	void set_nr_sectors(sector_t n) { m_nr_sectors.store(n, std::memory_order_release); }

private:
	std::string m_name;
	unsigned m_major;
	unsigned m_minor;
	unsigned m_lbs;
	std::atomic<sector_t> m_nr_sectors{0};
	std::atomic<int> m_open{0};
	bool m_published = false;
};

namespace dmxx::user {

/*
 * Resolve "/dev/NAME", "NAME", "/dev/mapper/NAME", "/dev/dm-N" or
 * "major:minor" to a published device; nullptr if there is none.
 */
block_device *lookup_bdev(const std::string &path);

/* Submit @b (fully set up by the caller) and wait for it; returns bi_status. */
u8 submit_bio_wait(bio *b);
/* A one-shot synchronous I/O of @bytes at @sector; @data may be null for flush/discard. */
u8 sync_io(block_device *bdev, u32 opf, sector_t sector, void *data, u32 bytes);
inline u8 sync_read(block_device *d, sector_t s, void *buf, u32 bytes)
{
	return sync_io(d, DMXX_REQ_OP_READ, s, buf, bytes);
}
inline u8 sync_write(block_device *d, sector_t s, const void *buf, u32 bytes)
{
	return sync_io(d, DMXX_REQ_OP_WRITE, s, const_cast<void *>(buf), bytes);
}

/*
 * An in-memory disk: sector-addressed bytes. I/O must be aligned to the
 * logical block size and lie inside the disk, or it fails with IOERR.
 * DISCARD and WRITE_ZEROES zero the range; FLUSH/PREFLUSH/FUA are counted.
 * Completion is synchronous (inside submit) unless Options::async, which
 * completes from a separate thread, in submission order.
 */
class MemDisk final : public block_device {
public:
	struct Options {
		unsigned logical_block_size = 512;
		bool async = false;
	};
	struct Counters {
		uint64_t reads, writes, flushes, fua, discards, write_zeroes, errors;
	};

	/* Major 7 (loop); minors are handed out in order. nullptr if @name is taken. */
	static std::unique_ptr<MemDisk> create(const std::string &name, sector_t sectors, Options opts);
	static std::unique_ptr<MemDisk> create(const std::string &name, sector_t sectors)
	{
		return create(name, sectors, Options{});
	}
	~MemDisk() override;

	void submit(bio *b) override;

	/* Direct access to the contents, bypassing I/O (for setting up and checking). */
	void read_raw(sector_t sector, void *buf, size_t bytes) const;
	void write_raw(sector_t sector, const void *buf, size_t bytes);

	/* I/O fault injection: matching bios complete with @status. */
	void fail_range(sector_t start, sector_t len, bool reads, bool writes, u8 status = DMXX_BLK_STS_IOERR);
	/* The next @n bios (of any kind) fail. */
	void fail_next(unsigned n, u8 status = DMXX_BLK_STS_IOERR);
	void clear_faults();

	Counters counters() const;

private:
	MemDisk(const std::string &name, unsigned minor, sector_t sectors, Options opts);
	u8 execute(bio *b);
	void completion_thread();

	struct RangeFault {
		sector_t start, len;
		bool reads, writes;
		u8 status;
	};

	Options m_opts;
	mutable std::mutex m_lock; /* data, faults, counters */
	std::vector<u8> m_data;
	std::vector<RangeFault> m_faults;
	unsigned m_fail_next = 0;
	u8 m_fail_next_status = DMXX_BLK_STS_IOERR;
	Counters m_counters{};

	std::mutex m_async_lock;
	std::condition_variable m_async_cv;
	std::deque<bio *> m_async_queue;
	bool m_async_stop = false;
	std::thread m_async_thread;
};

} // namespace dmxx::user
