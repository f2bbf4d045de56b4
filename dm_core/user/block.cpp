// SPDX-License-Identifier: GPL-2.0
/*
 * The userspace block layer model: device directory, dmxx_submit_bio with a
 * per-thread submission list, dmxx_bio_endio, and MemDisk.
 */
#include <dmxx/bio_list.h>
#include <dmxx/user/block.h>
#include <dmxx/user/testing.h>
#include <dmxx/user/watch.h>

#include "internal.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

namespace {

struct Directory {
	std::mutex lock;
	std::map<std::string, block_device *> by_name;
	std::map<std::pair<unsigned, unsigned>, block_device *> by_dev;
};

Directory &directory()
{
	static Directory *d = new Directory;
	return *d;
}

std::atomic<unsigned> g_memdisk_minor{0};

/*
 * current->bio_list: while a thread is inside dmxx_submit_bio, [0] collects
 * the bios submitted at the level being processed and [1] holds the bios of
 * the levels above, still waiting their turn.
 */
thread_local dmxx_bio_list *t_bio_lists;

std::string strip_dev(const std::string &path)
{
	static const std::string dev = "/dev/";
	return path.compare(0, dev.size(), dev) == 0 ? path.substr(dev.size()) : path;
}

bool parse_devt(const std::string &s, unsigned *major, unsigned *minor)
{
	unsigned long a = 0, b = 0;
	size_t i = 0, n = s.size();
	size_t start = i;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		a = a * 10 + unsigned(s[i] - '0');
	if (i == start || i == n || s[i] != ':' || i - start > 9)
		return false;
	start = ++i;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		b = b * 10 + unsigned(s[i] - '0');
	if (i == start || i != n || i - start > 9)
		return false;
	*major = unsigned(a);
	*minor = unsigned(b);
	return true;
}

} // namespace

/* ---- block_device ---------------------------------------------------------- */

block_device::block_device(std::string name, unsigned major, unsigned minor, unsigned lbs)
	: m_name(std::move(name)), m_major(major), m_minor(minor), m_lbs(lbs)
{
}

block_device::~block_device()
{
	if (m_published)
		dmxx_fatal("block device destroyed while still published");
	if (m_open.load())
		dmxx_fatal("block device destroyed while open (dm_put_device missing?)");
}

std::string block_device::dev_name() const
{
	return std::to_string(m_major) + ":" + std::to_string(m_minor);
}

void block_device::publish(const std::vector<std::string> &aliases)
{
	Directory &d = directory();
	std::lock_guard<std::mutex> g(d.lock);
	d.by_name[m_name] = this;
	for (const auto &a : aliases)
		d.by_name[a] = this;
	d.by_dev[{m_major, m_minor}] = this;
	m_published = true;
}

void block_device::unpublish()
{
	Directory &d = directory();
	std::lock_guard<std::mutex> g(d.lock);
	for (auto it = d.by_name.begin(); it != d.by_name.end();)
		it = it->second == this ? d.by_name.erase(it) : std::next(it);
	d.by_dev.erase({m_major, m_minor});
	m_published = false;
}

namespace dmxx::user {

bool snapshot_bio_lists(std::vector<std::string> out[2], BioDescriber describe)
{
	if (!t_bio_lists)
		return false;
	for (int i = 0; i < 2; i++)
		for (bio *b = t_bio_lists[i].head; b; b = b->bi_next)
			out[i].push_back(describe(b));
	return true;
}

block_device *lookup_bdev(const std::string &path)
{
	Directory &d = directory();
	std::lock_guard<std::mutex> g(d.lock);
	unsigned major, minor;
	if (parse_devt(path, &major, &minor)) {
		auto it = d.by_dev.find({major, minor});
		return it == d.by_dev.end() ? nullptr : it->second;
	}
	auto it = d.by_name.find(strip_dev(path));
	return it == d.by_name.end() ? nullptr : it->second;
}

static bool name_taken(const std::string &name)
{
	Directory &d = directory();
	std::lock_guard<std::mutex> g(d.lock);
	return d.by_name.count(name) != 0;
}

/* ---- synchronous helpers ------------------------------------------------------ */

static void sync_end_io(bio *b) { dmxx_complete(static_cast<dmxx_completion *>(b->bi_private)); }

u8 submit_bio_wait(bio *b)
{
	dmxx_completion done;
	dmxx_completion_init(&done);
	b->bi_end_io = sync_end_io;
	b->bi_private = &done;
	dmxx_submit_bio(b);
	dmxx_wait_for_completion(&done);
	dmxx_completion_destroy(&done);
	return b->bi_status;
}

u8 sync_io(block_device *bdev, u32 opf, sector_t sector, void *data, u32 bytes)
{
	bio b{};
	b.bi_bdev = bdev;
	b.bi_opf = opf;
	b.bi_sector = sector;
	b.bi_size = bytes;
	b.bi_data = static_cast<u8 *>(data);
	return submit_bio_wait(&b);
}

/* ---- MemDisk ---------------------------------------------------------------------- */

std::unique_ptr<MemDisk> MemDisk::create(const std::string &name, sector_t sectors, Options opts)
{
	if (name_taken(name) || opts.logical_block_size < 512 ||
	    (opts.logical_block_size & (opts.logical_block_size - 1)))
		return nullptr;
	std::unique_ptr<MemDisk> d(new MemDisk(name, g_memdisk_minor.fetch_add(1), sectors, opts));
	d->publish();
	return d;
}

MemDisk::MemDisk(const std::string &name, unsigned minor, sector_t sectors, Options opts)
	: block_device(name, 7, minor, opts.logical_block_size), m_opts(opts), m_data(sectors * 512)
{
	set_nr_sectors(sectors);
	if (m_opts.async)
		m_async_thread = std::thread([this] { completion_thread(); });
}

MemDisk::~MemDisk()
{
	unpublish();
	if (m_async_thread.joinable()) {
		{
			std::lock_guard<std::mutex> g(m_async_lock);
			m_async_stop = true;
			m_async_cv.notify_all();
		}
		m_async_thread.join();
	}
}

void MemDisk::read_raw(sector_t sector, void *buf, size_t bytes) const
{
	std::lock_guard<std::mutex> g(m_lock);
	if (sector * 512 + bytes > m_data.size())
		dmxx_fatal("MemDisk::read_raw out of range");
	memcpy(buf, m_data.data() + sector * 512, bytes);
}

void MemDisk::write_raw(sector_t sector, const void *buf, size_t bytes)
{
	std::lock_guard<std::mutex> g(m_lock);
	if (sector * 512 + bytes > m_data.size())
		dmxx_fatal("MemDisk::write_raw out of range");
	memcpy(m_data.data() + sector * 512, buf, bytes);
}

void MemDisk::fail_range(sector_t start, sector_t len, bool reads, bool writes, u8 status)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_faults.push_back({start, len, reads, writes, status});
}

void MemDisk::fail_next(unsigned n, u8 status)
{
	std::lock_guard<std::mutex> g(m_lock);
	m_fail_next = n;
	m_fail_next_status = status;
}

void MemDisk::clear_faults()
{
	std::lock_guard<std::mutex> g(m_lock);
	m_faults.clear();
	m_fail_next = 0;
}

MemDisk::Counters MemDisk::counters() const
{
	std::lock_guard<std::mutex> g(m_lock);
	return m_counters;
}

u8 MemDisk::execute(bio *b)
{
	std::lock_guard<std::mutex> g(m_lock);
	const u32 op = b->bi_opf & DMXX_REQ_OP_MASK;
	const bool preflush = (b->bi_opf & DMXX_REQ_PREFLUSH) || op == DMXX_REQ_OP_FLUSH;
	if (preflush)
		m_counters.flushes++;
	if (b->bi_opf & DMXX_REQ_FUA)
		m_counters.fua++;
	if (m_fail_next) {
		m_fail_next--;
		m_counters.errors++;
		return m_fail_next_status;
	}
	if (op == DMXX_REQ_OP_FLUSH || (preflush && b->bi_size == 0))
		return DMXX_BLK_STS_OK;

	const sector_t nr = nr_sectors();
	const u32 lbs = logical_block_size();
	const sector_t sectors = b->bi_size >> 9;
	if ((b->bi_size & (lbs - 1)) || ((b->bi_sector * 512) & (lbs - 1)) || b->bi_sector > nr ||
	    sectors > nr - b->bi_sector) {
		m_counters.errors++;
		return DMXX_BLK_STS_IOERR;
	}
	const bool is_read = op == DMXX_REQ_OP_READ;
	for (const auto &f : m_faults) {
		bool overlap = b->bi_sector < f.start + f.len && f.start < b->bi_sector + sectors;
		if (overlap && ((is_read && f.reads) || (!is_read && f.writes))) {
			m_counters.errors++;
			return f.status;
		}
	}
	u8 *p = m_data.data() + b->bi_sector * 512;
	switch (op) {
	case DMXX_REQ_OP_READ:
		m_counters.reads++;
		if (b->bi_size)
			memcpy(b->bi_data, p, b->bi_size);
		return DMXX_BLK_STS_OK;
	case DMXX_REQ_OP_WRITE:
		m_counters.writes++;
		if (b->bi_size)
			memcpy(p, b->bi_data, b->bi_size);
		return DMXX_BLK_STS_OK;
	case DMXX_REQ_OP_DISCARD:
	case DMXX_REQ_OP_SECURE_ERASE:
		m_counters.discards++;
		memset(p, 0, b->bi_size);
		return DMXX_BLK_STS_OK;
	case DMXX_REQ_OP_WRITE_ZEROES:
		m_counters.write_zeroes++;
		memset(p, 0, b->bi_size);
		return DMXX_BLK_STS_OK;
	default:
		m_counters.errors++;
		return DMXX_BLK_STS_NOTSUPP;
	}
}

void MemDisk::submit(bio *b)
{
	u8 status = execute(b);
	if (!m_opts.async) {
		dmxx::bio_complete(b, status);
		return;
	}
	b->bi_status = status;
	std::lock_guard<std::mutex> g(m_async_lock);
	m_async_queue.push_back(b);
	m_async_cv.notify_one();
}

void MemDisk::completion_thread()
{
	std::unique_lock<std::mutex> g(m_async_lock);
	for (;;) {
		m_async_cv.wait(g, [this] { return !m_async_queue.empty() || m_async_stop; });
		if (m_async_queue.empty())
			return;
		bio *b = m_async_queue.front();
		m_async_queue.pop_front();
		g.unlock();
		dmxx_bio_endio(b);
		g.lock();
	}
}

} // namespace dmxx::user

/* ---- the porting interface -------------------------------------------------------------- */

void dmxx_submit_bio(struct bio *b) noexcept
{
	if (!b->bi_bdev)
		dmxx_fatal("submit_bio: bio has no device");
	if (t_bio_lists) {
		/* Inside a driver's submit: run after it returns (recursion -> iteration). */
		dmxx::bio_list_add(t_bio_lists[0], b);
		return;
	}
	/*
	 * Depth-first, as the kernel has done since 2017: after a driver's
	 * submit returns, the bios it submitted to lower devices run first,
	 * then those for its own device, then the earlier levels' bios. So a
	 * bio never waits behind a bio of a level above it, and [0] holds only
	 * the current level's bios (what a rescuer may safely offload).
	 */
	dmxx_bio_list lists[2] = {};
	t_bio_lists = lists;
	b->bi_next = nullptr;
	do {
		block_device *q = b->bi_bdev;
		lists[1] = lists[0];
		lists[0] = {};
		q->submit(b);
		dmxx_bio_list lower = {}, same = {};
		while (bio *n = dmxx::bio_list_pop(lists[0]))
			dmxx::bio_list_add(n->bi_bdev == q ? same : lower, n);
		dmxx::bio_list_merge(lists[0], lower);
		dmxx::bio_list_merge(lists[0], same);
		dmxx::bio_list_merge(lists[0], lists[1]);
	} while ((b = dmxx::bio_list_pop(lists[0])));
	t_bio_lists = nullptr;
}

struct dmxx_bio_list *dmxx_current_bio_lists(void) noexcept { return t_bio_lists; }

void dmxx_bio_init(struct bio *b, struct block_device *bdev, void *, unsigned short, unsigned opf) noexcept
{
	*b = bio{};
	b->bi_bdev = bdev;
	b->bi_opf = opf;
}

void dmxx_bio_uninit(struct bio *) noexcept {}

int dmxx_bio_init_clone(struct bio *clone, struct bio *src, struct block_device *bdev,
			enum dmxx_alloc_mode) noexcept
{
	*clone = bio{};
	clone->bi_bdev = bdev;
	clone->bi_opf = src->bi_opf;
	clone->bi_sector = src->bi_sector;
	clone->bi_size = src->bi_size;
	clone->bi_data = src->bi_data;
	return 0;
}

void dmxx_bio_trim(struct bio *b, unsigned long long offset, unsigned long long size) noexcept
{
	if ((offset + size) << 9 > b->bi_size)
		dmxx_fatal("bio_trim beyond the bio");
	b->bi_sector += offset;
	if (b->bi_data)
		b->bi_data += offset << 9;
	b->bi_size = u32(size << 9);
}

/* The model's bios carry one contiguous buffer: count vecs as the kernel would (pages). */
unsigned dmxx_bio_data_vecs(const void *buf, unsigned long len) noexcept
{
	uintptr_t start = reinterpret_cast<uintptr_t>(buf);
	return unsigned(((start + len + 4095) >> 12) - (start >> 12));
}

int dmxx_bio_add_data(struct bio *b, void *buf, unsigned len) noexcept
{
	if (!b->bi_data) {
		b->bi_data = static_cast<u8 *>(buf);
		b->bi_size = len;
		return 0;
	}
	/* Only an extension of the buffer already attached fits the model's one buffer. */
	if (b->bi_data + b->bi_size != buf)
		return -EINVAL;
	b->bi_size += len;
	return 0;
}

void dmxx_bio_endio(struct bio *b) noexcept
{
	/* end_io may run in interrupt context in the kernel: it must not sleep. */
	{
		dmxx::user::AtomicScope atomic;
		if (b->bi_end_io)
			b->bi_end_io(b);
	}
	/* After end_io: whatever the completion made true is visible to the waiter. */
	dmxx::user::progress_bump();
}

unsigned long long dmxx_bdev_nr_sectors(struct block_device *bdev) noexcept { return bdev->nr_sectors(); }

unsigned dmxx_bdev_logical_block_size(struct block_device *bdev) noexcept
{
	return bdev->logical_block_size();
}
