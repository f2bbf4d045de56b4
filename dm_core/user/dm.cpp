// SPDX-License-Identifier: GPL-2.0
/*
 * The userspace device-mapper model (see <dmxx/user/dm.h>) and the
 * device-mapper part of the porting interface.
 */
#include <dmxx/user/dm.h>
#include <dmxx/user/testing.h>

#include "internal.h"

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>

/* ---- target registry ---------------------------------------------------------- */

struct dmxx_target_reg {
	dmxx_target_desc desc;
	std::string name;
	std::atomic<int> users{0};
};

namespace {

struct Registry {
	std::mutex lock;
	std::map<std::string, dmxx_target_reg *> by_name;
};

Registry &registry()
{
	static Registry *r = new Registry;
	return *r;
}

dmxx_target_reg *get_target_type(const std::string &name)
{
	Registry &r = registry();
	std::lock_guard<std::mutex> g(r.lock);
	auto it = r.by_name.find(name);
	if (it == r.by_name.end())
		return nullptr;
	it->second->users.fetch_add(1);
	return it->second;
}

std::atomic<unsigned> g_dm_minor{0};

} // namespace

int dmxx_register_target(const struct dmxx_target_desc *desc, struct dmxx_target_reg **out) noexcept
{
	/* The kernel glue kzalloc()s the target_type: that can fail. */
	if (dmxx::user::alloc_should_fail(DMXX_ALLOC_SLEEP))
		return -ENOMEM;
	if (!desc->name || !desc->ctr || !desc->map)
		return -EINVAL;
	Registry &r = registry();
	std::lock_guard<std::mutex> g(r.lock);
	if (r.by_name.count(desc->name))
		return -EEXIST;
	auto *reg = new dmxx_target_reg;
	reg->desc = *desc;
	reg->name = desc->name;
	r.by_name[reg->name] = reg;
	*out = reg;
	return 0;
}

void dmxx_unregister_target(struct dmxx_target_reg *reg) noexcept
{
	Registry &r = registry();
	{
		std::lock_guard<std::mutex> g(r.lock);
		auto it = r.by_name.find(reg->name);
		if (it == r.by_name.end() || it->second != reg)
			dmxx_fatal("unregister_target: not registered");
		if (reg->users.load())
			dmxx_fatal("unregister_target: target type still used by a table");
		r.by_name.erase(it);
	}
	delete reg;
}

/* ---- tables ------------------------------------------------------------------------- */

struct dm_dev {
	block_device *bdev;
	char name[24]; /* "major:minor" */
	int refs;
};

namespace dmxx::user {

struct DmTable {
	DmDevice *md;
	std::vector<std::unique_ptr<dm_target>> targets;
	std::vector<std::unique_ptr<dm_dev>> devices;
	unsigned per_io_data_size = 0;
	bool immutable = false;
	sector_t size = 0;

	dm_target *find_target(sector_t sector) const
	{
		for (const auto &ti : targets)
			if (sector >= ti->begin && sector - ti->begin < ti->len)
				return ti.get();
		return nullptr;
	}
};

namespace {

dmxx_target_reg *reg_of(const dm_target *ti)
{
	return reinterpret_cast<dmxx_target_reg *>(const_cast<dmxx_target_desc *>(ti->type));
}
static_assert(offsetof(dmxx_target_reg, desc) == 0, "ti->type points at the registration");

/* dm_table_destroy(): dtr every target (in order), then check the devices were put. */
void destroy_table(DmTable *t)
{
	if (!t)
		return;
	for (auto &ti : t->targets) {
		if (ti->type->dtr)
			ti->type->dtr(ti.get());
		reg_of(ti.get())->users.fetch_sub(1);
	}
	t->targets.clear();
	if (!t->devices.empty()) {
		dmxx_log(DMXX_LOG_ERR, "dm_table_destroy: dm_put_device call missing for %s",
			 t->devices.front()->name);
		dmxx_fatal("table destroyed with devices still open");
	}
	delete t;
}

/* dm_split_args(): whitespace separates, backslash escapes the next character. */
std::vector<std::string> split_args(const std::string &s)
{
	std::vector<std::string> out;
	std::string cur;
	bool in_word = false;
	for (size_t i = 0; i < s.size(); i++) {
		char c = s[i];
		if (c == '\\' && i + 1 < s.size()) {
			cur += s[++i];
			in_word = true;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			if (in_word)
				out.push_back(cur);
			cur.clear();
			in_word = false;
		} else {
			cur += c;
			in_word = true;
		}
	}
	if (in_word)
		out.push_back(cur);
	return out;
}

bool parse_sector(const std::string &s, sector_t *out)
{
	if (s.empty() || s.size() > 20)
		return false;
	unsigned long long v = 0;
	for (char c : s) {
		if (c < '0' || c > '9')
			return false;
		unsigned long long d = unsigned(c - '0');
		if (v > (~0ull - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Calls ctr with a heap argv that is freed right after, as DM does. */
int call_ctr(dm_target *ti, const std::vector<std::string> &args)
{
	std::vector<char *> argv;
	for (const auto &a : args)
		argv.push_back(strdup(a.c_str()));
	argv.push_back(nullptr);
	int r = ti->type->ctr(ti, unsigned(args.size()), argv.data());
	for (char *a : argv)
		free(a);
	return r;
}

struct AreaCheck {
	std::string error;
};

/* device_area_is_invalid() of dm-table.c. */
int check_area(dm_target *, dm_dev *dev, unsigned long long start, unsigned long long len, void *data)
{
	auto *c = static_cast<AreaCheck *>(data);
	sector_t dev_size = dev->bdev->nr_sectors();
	unsigned lbs_sectors = dev->bdev->logical_block_size() >> 9;
	char buf[256];
	if (start > dev_size || len > dev_size - start) {
		snprintf(buf, sizeof(buf), "%s too small for target: start=%llu, len=%llu, dev_size=%llu",
			 dev->name, start, len, (unsigned long long)dev_size);
		c->error = buf;
		return 1;
	}
	if (lbs_sectors > 1 && (start & (lbs_sectors - 1))) {
		snprintf(buf, sizeof(buf), "start=%llu not aligned to h/w logical block size %u of %s", start,
			 dev->bdev->logical_block_size(), dev->name);
		c->error = buf;
		return 1;
	}
	if (lbs_sectors > 1 && (len & (lbs_sectors - 1))) {
		snprintf(buf, sizeof(buf), "len=%llu not aligned to h/w logical block size %u of %s", len,
			 dev->bdev->logical_block_size(), dev->name);
		c->error = buf;
		return 1;
	}
	return 0;
}

DmResult fail(DmTable *t, int code, std::string error)
{
	destroy_table(t);
	return {code, std::move(error)};
}

DmResult build_table(DmDevice *md, const std::string &text, DmTable **out)
{
	/* The model's own allocations use plain new: fault injection covers the target's only. */
	auto *t = new DmTable;
	t->md = md;
	sector_t next = 0;
	size_t pos = 0;
	while (pos <= text.size()) {
		size_t nl = text.find('\n', pos);
		std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
		pos = nl == std::string::npos ? text.size() + 1 : nl + 1;
		std::vector<std::string> words = split_args(line);
		if (words.empty())
			continue;
		sector_t start, len;
		if (words.size() < 3 || !parse_sector(words[0], &start) || !parse_sector(words[1], &len))
			return fail(t, -EINVAL, "Invalid table line: " + line);
		if (len == 0) {
			dmxx_log(DMXX_LOG_ERR, "%s: zero-length target", md->name().c_str());
			return fail(t, -EINVAL, "zero-length target");
		}
		if (start != next)
			return fail(t, -EINVAL, "Gap in table");
		if (len > ~0ull - start)
			return fail(t, -EINVAL, "Target length overflows the device");
		dmxx_target_reg *reg = get_target_type(words[2]);
		if (!reg) {
			dmxx_log(DMXX_LOG_ERR, "%s: %s: unknown target type", md->name().c_str(), words[2].c_str());
			return fail(t, -EINVAL, "unknown target type");
		}
		auto ti = std::make_unique<dm_target>();
		ti->begin = start;
		ti->len = len;
		ti->type = &reg->desc;
		ti->table = t;
		ti->error = "Unknown error"; /* as dm_table_add_target() presets it */
		std::vector<std::string> args(words.begin() + 3, words.end());
		int r = call_ctr(ti.get(), args);
		if (r) {
			reg->users.fetch_sub(1);
			std::string err = ti->error ? ti->error : "";
			dmxx_log(DMXX_LOG_ERR, "%s: %s: %s (%d)", md->name().c_str(), words[2].c_str(), err.c_str(), r);
			return fail(t, r < 0 ? r : -EINVAL, err);
		}
		if (ti->per_io_data_size > t->per_io_data_size)
			t->per_io_data_size = ti->per_io_data_size;
		if (reg->desc.features & DMXX_TARGET_IMMUTABLE)
			t->immutable = true;
		t->targets.push_back(std::move(ti));
		next = start + len;
	}
	if (t->targets.empty())
		return fail(t, -EINVAL, "empty table");
	t->size = next;
	for (auto &ti : t->targets) {
		if (!ti->type->iterate_devices)
			continue;
		AreaCheck c;
		if (ti->type->iterate_devices(ti.get(), check_area, &c)) {
			dmxx_log(DMXX_LOG_ERR, "%s: %s", md->name().c_str(), c.error.c_str());
			return fail(t, -EINVAL, c.error);
		}
	}
	*out = t;
	return {};
}

} // namespace

/* ---- the I/O path ----------------------------------------------------------------------- */

struct DmDevice::Io {
	DmDevice *md;
	DmTable *t;
	bio *orig;
	std::atomic<int> pending{1}; /* one for the submitter, one per clone in flight */
	std::atomic<u8> status{DMXX_BLK_STS_OK};
	std::atomic<bool> requeue{false};
	std::atomic<bool> delay{false};
	/* The piece of orig this io maps, if orig was split (orig now holds the rest). */
	bool split = false;
	u32 opf = 0;
	sector_t sector = 0;
	u32 bytes = 0;
	u8 *data = nullptr;
};

namespace {

/*
 * bio_inc_remaining() / bio_endio() of a bio DM split: the original is
 * trimmed to its remainder and resubmitted, so it completes once per piece.
 * The first split saves the caller's completion and the bio's extent; the
 * last piece restores them and completes the bio with the first error.
 */
struct Chain {
	dmxx_bio_end_io_t end_io;
	void *priv;
	sector_t sector;
	u32 size;
	u8 *data;
	std::atomic<int> remaining;
	std::atomic<u8> status;
};

void chain_endio(bio *) { dmxx_fatal("a split DM bio completed outside the DM model"); }

void chain_inc(bio *orig)
{
	if (orig->bi_end_io == chain_endio) {
		static_cast<Chain *>(orig->bi_private)->remaining.fetch_add(1);
		return;
	}
	auto *c = new Chain{orig->bi_end_io, orig->bi_private, orig->bi_sector, orig->bi_size, orig->bi_data, {2},
			    {DMXX_BLK_STS_OK}};
	orig->bi_end_io = chain_endio;
	orig->bi_private = c;
}

/* One piece of @orig is done with @status; completes @orig after the last. */
void complete_orig(bio *orig, u8 status)
{
	if (orig->bi_end_io != chain_endio) {
		orig->bi_status = status;
		dmxx_bio_endio(orig);
		return;
	}
	auto *c = static_cast<Chain *>(orig->bi_private);
	if (status != DMXX_BLK_STS_OK) {
		u8 ok = DMXX_BLK_STS_OK;
		c->status.compare_exchange_strong(ok, status);
	}
	if (c->remaining.fetch_sub(1) != 1)
		return;
	orig->bi_end_io = c->end_io;
	orig->bi_private = c->priv;
	orig->bi_sector = c->sector;
	orig->bi_size = c->size;
	orig->bi_data = c->data;
	orig->bi_status = c->status.load();
	delete c;
	dmxx_bio_endio(orig);
}

/* A requeued piece of a split bio: DM's bio_split() at requeue time. */
void piece_endio(bio *p)
{
	bio *orig = static_cast<bio *>(p->bi_private);
	u8 status = p->bi_status;
	delete p;
	complete_orig(orig, status);
}

} // namespace

namespace {

/* The clone and the model's state for it; per-bio data sits right in front. */
struct Tio {
	bio clone;
	DmDevice::Io *io;
	dm_target *ti;
	unsigned *len_ptr; /* the piece length the splitter advances by */
	bool duplicate;    /* flush or one of several abnormal clones: no partial accept */
	unsigned target_bio_nr; /* which of the target's duplicates (dm_bio_get_target_bio_nr) */
	size_t front;
};
static_assert(offsetof(Tio, clone) == 0, "the clone starts the tio");

thread_local Tio *t_mapping; /* the clone whose map() is running on this thread */

constexpr u8 sts_requeue = DMXX_USER_BLK_STS_DM_REQUEUE;

size_t round16(size_t n) { return (n + 15) & ~size_t(15); }

void dec_pending(DmDevice::Io *io, u8 status, bool delay = false)
{
	if (status == sts_requeue) {
		io->requeue.store(true);
		if (delay)
			io->delay.store(true);
	} else if (status != DMXX_BLK_STS_OK) {
		u8 expected = DMXX_BLK_STS_OK;
		io->status.compare_exchange_strong(expected, status);
	}
	if (io->pending.fetch_sub(1) == 1)
		io->md->io_done(io);
}

void free_tio(Tio *tio)
{
	u8 *mem = reinterpret_cast<u8 *>(tio) - tio->front;
	tio->~Tio();
	free(mem);
}

void clone_endio(bio *clone)
{
	Tio *tio = static_cast<Tio *>(clone->bi_dm_tio);
	dm_target *ti = tio->ti;
	DmDevice::Io *io = tio->io;
	u8 status = clone->bi_status;
	bool delay = false;
	if (ti->type->end_io) {
		int r = ti->type->end_io(ti, clone, &status);
		switch (r) {
		case DMXX_DM_ENDIO_DONE:
			break;
		case DMXX_DM_ENDIO_INCOMPLETE:
			return; /* the target owns the clone again and will end it */
		case DMXX_DM_ENDIO_REQUEUE:
			status = sts_requeue;
			break;
		case 3: /* DM_ENDIO_DELAY_REQUEUE */
			status = sts_requeue;
			delay = true;
			break;
		default:
			dmxx_fatal("unimplemented target endio return value");
		}
	}
	free_tio(tio);
	dec_pending(io, status, delay);
}

Tio *alloc_tio(DmDevice::Io *io, dm_target *ti, block_device *bdev, u32 opf, sector_t sector, u32 bytes,
	       u8 *data, bool duplicate)
{
	size_t front = round16(io->t->per_io_data_size);
	u8 *mem = static_cast<u8 *>(aligned_alloc(16, front + round16(sizeof(Tio))));
	if (!mem)
		dmxx_fatal("out of memory for a clone");
	memset(mem, 0xa5, front); /* DM does not zero per-bio data: neither do we */
	auto *tio = new (mem + front) Tio{};
	tio->io = io;
	tio->ti = ti;
	tio->duplicate = duplicate;
	tio->front = front;
	bio &c = tio->clone;
	c.bi_bdev = bdev;
	c.bi_opf = opf;
	c.bi_sector = sector;
	c.bi_size = bytes;
	c.bi_data = data;
	c.bi_end_io = clone_endio;
	c.bi_private = nullptr;
	c.bi_pbd_size = ti->per_io_data_size;
	c.bi_dm_tio = tio;
	return tio;
}

/* __map_bio(). */
void map_tio(Tio *tio, unsigned *len)
{
	DmDevice::Io *io = tio->io;
	dm_target *ti = tio->ti;
	io->pending.fetch_add(1);
	tio->len_ptr = tio->duplicate ? nullptr : len;
	t_mapping = tio;
	int r = ti->type->map(ti, &tio->clone);
	t_mapping = nullptr;
	switch (r) {
	case DMXX_DM_MAPIO_SUBMITTED:
		break; /* the clone may already be gone */
	case DMXX_DM_MAPIO_REMAPPED:
		dmxx_submit_bio(&tio->clone);
		break;
	case DMXX_DM_MAPIO_KILL:
		free_tio(tio);
		dec_pending(io, DMXX_BLK_STS_IOERR);
		break;
	case DMXX_DM_MAPIO_REQUEUE:
	case DMXX_DM_MAPIO_DELAY_REQUEUE:
		free_tio(tio);
		dec_pending(io, sts_requeue, r == DMXX_DM_MAPIO_DELAY_REQUEUE);
		break;
	default:
		dmxx_fatal("unimplemented target map return value");
	}
}

unsigned num_abnormal_bios(const dm_target *ti, u32 op)
{
	switch (op) {
	case DMXX_REQ_OP_DISCARD:
		return ti->num_discard_bios;
	case DMXX_REQ_OP_SECURE_ERASE:
		return ti->num_secure_erase_bios;
	default:
		return ti->num_write_zeroes_bios;
	}
}

} // namespace

/* dm_split_and_process_bio(). */
void DmDevice::process(DmTable *t, bio *orig)
{
	auto *io = new Io;
	io->md = this;
	io->t = t;
	io->orig = orig;
	const u32 op = orig->bi_opf & DMXX_REQ_OP_MASK;

	if ((orig->bi_opf & DMXX_REQ_PREFLUSH) || op == DMXX_REQ_OP_FLUSH) {
		/* __send_empty_flush(); the data part follows from io_done(). */
		for (auto &ti : t->targets)
			for (unsigned i = 0; i < ti->num_flush_bios; i++) {
				Tio *tio = alloc_tio(io, ti.get(), this,
						     DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH | DMXX_REQ_SYNC, 0, 0,
						     nullptr, true);
				tio->target_bio_nr = i;
				map_tio(tio, nullptr);
			}
		dec_pending(io, DMXX_BLK_STS_OK);
		return;
	}

	const bool abnormal = op == DMXX_REQ_OP_DISCARD || op == DMXX_REQ_OP_SECURE_ERASE ||
			      op == DMXX_REQ_OP_WRITE_ZEROES;
	sector_t sector = orig->bi_sector;
	sector_t remaining = orig->bi_size >> 9;
	if ((orig->bi_size & 511) || sector > t->size || remaining > t->size - sector) {
		dec_pending(io, DMXX_BLK_STS_IOERR);
		return;
	}
	/*
	 * One piece per call, as 6.1's dm_split_and_process_bio(): map up to
	 * the target boundary / max_io_len (or what the target accepts), then
	 * trim the original to the rest and resubmit it, so it is processed
	 * after the clones just submitted (depth-first), not before them.
	 */
	dm_target *ti = t->find_target(sector);
	sector_t max = ti->begin + ti->len - sector;
	if (!abnormal && ti->max_io_len) {
		sector_t off = sector - ti->begin;
		sector_t to_boundary = ti->max_io_len - off % ti->max_io_len;
		max = max < to_boundary ? max : to_boundary;
	}
	unsigned len = unsigned(remaining < max ? remaining : max);
	u8 *data = orig->bi_data;
	io->opf = orig->bi_opf;
	io->sector = sector;
	io->data = data;
	bool error = false;
	if (abnormal) {
		unsigned n = num_abnormal_bios(ti, op);
		if (!n) {
			io->status.store(DMXX_BLK_STS_NOTSUPP);
			error = true;
		}
		for (unsigned i = 0; i < n; i++) {
			Tio *tio = alloc_tio(io, ti, this, orig->bi_opf, sector, len << 9, data, n > 1);
			tio->target_bio_nr = i;
			map_tio(tio, &len);
		}
	} else {
		map_tio(alloc_tio(io, ti, this, orig->bi_opf, sector, len << 9, data, false), &len);
	}
	io->bytes = len << 9;
	remaining -= len;
	if (!error && remaining) {
		io->split = true;
		chain_inc(orig);
		dmxx_bio_trim(orig, len, remaining);
		dmxx_submit_bio(orig);
	}
	dec_pending(io, DMXX_BLK_STS_OK);
}

void DmDevice::io_done(Io *io)
{
	bio *orig = io->orig;
	const bool requeue = io->requeue.load();
	const bool delay = io->delay.load();
	const u8 status = io->status.load();
	const bool flush_data = !requeue && status == DMXX_BLK_STS_OK && !io->split &&
				(orig->bi_opf & DMXX_REQ_PREFLUSH) && orig->bi_size;
	if (requeue && io->split) {
		/* Only this piece goes back: split it off the original, which has moved on. */
		bio *p = new bio{};
		p->bi_bdev = this;
		p->bi_opf = io->opf;
		p->bi_sector = io->sector;
		p->bi_size = io->bytes;
		p->bi_data = io->data;
		p->bi_end_io = piece_endio;
		p->bi_private = orig;
		orig = p;
	}
	delete io;
	if (requeue || flush_data) {
		if (flush_data)
			orig->bi_opf &= ~DMXX_REQ_PREFLUSH;
		std::lock_guard<std::mutex> g(m_lock);
		orig->bi_next = nullptr;
		if (requeue) {
			orig->bi_next = m_deferred_head;
			m_deferred_head = orig;
			if (!m_deferred_tail)
				m_deferred_tail = orig;
		} else {
			(m_deferred_tail ? m_deferred_tail->bi_next : m_deferred_head) = orig;
			m_deferred_tail = orig;
		}
		if (delay)
			m_delay = true;
		kick(); /* before the in-flight count drops: the device may go away after */
		if (--m_in_flight == 0)
			m_idle.notify_all();
		return;
	}
	complete_orig(orig, status);
	std::lock_guard<std::mutex> g(m_lock);
	if (--m_in_flight == 0)
		m_idle.notify_all();
}

void DmDevice::submit(bio *b)
{
	std::unique_lock<std::mutex> g(m_lock);
	if (m_blocked) {
		defer(b, false);
		return;
	}
	if (!m_active) {
		g.unlock();
		dmxx::bio_complete(b, DMXX_BLK_STS_IOERR);
		return;
	}
	m_in_flight++;
	DmTable *t = m_active;
	g.unlock();
	process(t, b);
}

/* Called with m_lock held. */
void DmDevice::defer(bio *b, bool at_head)
{
	b->bi_next = nullptr;
	if (at_head) {
		b->bi_next = m_deferred_head;
		m_deferred_head = b;
		if (!m_deferred_tail)
			m_deferred_tail = b;
	} else {
		(m_deferred_tail ? m_deferred_tail->bi_next : m_deferred_head) = b;
		m_deferred_tail = b;
	}
}

void DmDevice::kick() { dmxx_queue_work(m_wq, &m_work.work); }

void DmDevice::deferred_work(dmxx_work *w)
{
	reinterpret_cast<DeferredWork *>(w)->md->run_deferred();
}

void DmDevice::run_deferred()
{
	for (;;) {
		std::unique_lock<std::mutex> g(m_lock);
		if (m_blocked || !m_deferred_head)
			return;
		if (m_delay) {
			m_delay = false;
			g.unlock();
			dmxx_sleep_ms(10);
			continue;
		}
		bio *b = m_deferred_head;
		m_deferred_head = b->bi_next;
		if (!m_deferred_head)
			m_deferred_tail = nullptr;
		b->bi_next = nullptr;
		g.unlock();
		/* As dm_wq_work(): resubmitted, so its clones and remainder queue depth-first. */
		dmxx_submit_bio(b);
	}
}

/* ---- device lifecycle ------------------------------------------------------------------- */

DmDevice::DmDevice(const std::string &name, unsigned minor) : block_device(name, 253, minor, 512)
{
	NoFaultScope no_fault;
	dmxx_spin_init(&m_publish);
	m_wq = dmxx_wq_create(("kdmflush/" + name).c_str(), DMXX_WQ_ORDERED | DMXX_WQ_MEM_RECLAIM);
	if (!m_wq)
		dmxx_fatal("cannot create the DM model's workqueue");
	m_work.md = this;
	dmxx_work_init(&m_work.work, deferred_work);
}

std::unique_ptr<DmDevice> DmDevice::create_empty(const std::string &name, DmResult *result)
{
	if (lookup_bdev(name) || lookup_bdev("mapper/" + name)) {
		if (result)
			*result = {-EBUSY, "device name already in use"};
		return nullptr;
	}
	unsigned minor = g_dm_minor.fetch_add(1);
	std::unique_ptr<DmDevice> md(new DmDevice(name, minor));
	md->publish({"mapper/" + name, "dm-" + std::to_string(minor)});
	if (result)
		*result = {};
	return md;
}

std::unique_ptr<DmDevice> DmDevice::create(const std::string &name, const std::string &table, DmResult *result)
{
	DmResult r;
	auto md = create_empty(name, &r);
	if (md) {
		r = md->load(table);
		if (r.ok())
			r = md->resume();
		if (!r.ok())
			md.reset();
	}
	if (result)
		*result = r;
	return md;
}

DmDevice::~DmDevice()
{
	if (open_count())
		dmxx_fatal("removing a DM device that a table still holds open");
	unpublish();
	dmxx::user::might_sleep("dm remove");
	bio *deferred;
	{
		std::unique_lock<std::mutex> g(m_lock);
		m_idle.wait(g, [this] { return m_in_flight == 0; });
		m_blocked = true;
		deferred = m_deferred_head;
		m_deferred_head = m_deferred_tail = nullptr;
	}
	dmxx_wq_destroy(m_wq);
	while (deferred) {
		bio *next = deferred->bi_next;
		deferred->bi_next = nullptr;
		dmxx::bio_complete(deferred, DMXX_BLK_STS_IOERR);
		deferred = next;
	}
	destroy_table(m_inactive);
	destroy_table(m_active);
	dmxx_free(m_type_setup);
}

/* The type's per-device resources (dm_setup_md_queue's allocations): may block. */
static void *alloc_type_setup(unsigned pdata)
{
	NoFaultScope no_fault;
	return dmxx_alloc(64 + pdata, DMXX_ALLOC_SLEEP);
}

DmResult DmDevice::load(const std::string &table)
{
	/* Build without the publication lock: constructors may sleep. */
	DmTable *t = nullptr;
	DmResult r = build_table(this, table, &t);
	if (!r.ok())
		return r;
	dmxx_spin_lock(&m_publish);
	bool bound = m_type_bound;
	dmxx_spin_unlock(&m_publish);
	/* Speculatively, outside the lock: a racing load may bind first, then we free it. */
	void *setup = nullptr;
	if (!bound && !m_setup_under_lock)
		setup = alloc_type_setup(t->per_io_data_size);

	DmTable *drop = nullptr;
	dmxx_spin_lock(&m_publish);
	if (!m_type_bound) {
		if (m_setup_under_lock)
			setup = alloc_type_setup(t->per_io_data_size); /* the bug the test must see */
		/* Binding the type and publishing the table: one critical section. */
		m_type_bound = true;
		m_type_immutable = t->immutable;
		m_type_pdata = t->per_io_data_size;
		m_type_setup = setup;
		setup = nullptr;
		drop = m_inactive;
		m_inactive = t;
	} else if (m_type_immutable != t->immutable || m_type_pdata != t->per_io_data_size) {
		r = {-EINVAL, "can't change device type after initial table load"};
		drop = t;
	} else {
		drop = m_inactive;
		m_inactive = t;
	}
	dmxx_spin_unlock(&m_publish);
	if (!r.ok())
		dmxx_log(DMXX_LOG_ERR, "%s: %s", name().c_str(), r.error.c_str());
	destroy_table(drop); /* destructors may sleep: not under the lock */
	dmxx_free(setup);
	return r;
}

std::string DmDevice::type_name() const
{
	dmxx_spin_lock(&m_publish);
	bool bound = m_type_bound, imm = m_type_immutable;
	unsigned pdata = m_type_pdata;
	dmxx_spin_unlock(&m_publish);
	if (!bound)
		return "none";
	return std::string(imm ? "bio-based-immutable" : "bio-based") + " pdata=" + std::to_string(pdata);
}

void DmDevice::clear_inactive()
{
	dmxx_spin_lock(&m_publish);
	DmTable *t = m_inactive;
	m_inactive = nullptr;
	dmxx_spin_unlock(&m_publish);
	destroy_table(t);
}

bool DmDevice::suspended() const
{
	std::lock_guard<std::mutex> g(m_lock);
	return m_suspended;
}

bool DmDevice::has_inactive() const
{
	dmxx_spin_lock(&m_publish);
	bool r = m_inactive != nullptr;
	dmxx_spin_unlock(&m_publish);
	return r;
}

DmResult DmDevice::suspend(bool noflush)
{
	std::lock_guard<std::mutex> s(m_suspend_lock);
	return do_suspend(noflush);
}

DmResult DmDevice::do_suspend(bool)
{
	if (suspended())
		return {-EINVAL, "device already suspended"};
	DmTable *t = m_active;
	if (t)
		for (auto &ti : t->targets)
			if (ti->type->presuspend)
				ti->type->presuspend(ti.get());
	dmxx::user::might_sleep("dm_suspend");
	{
		std::unique_lock<std::mutex> g(m_lock);
		m_blocked = true;
		m_idle.wait(g, [this] { return m_in_flight == 0; });
	}
	dmxx_flush_workqueue(m_wq);
	if (t)
		for (auto &ti : t->targets)
			if (ti->type->postsuspend)
				ti->type->postsuspend(ti.get());
	std::lock_guard<std::mutex> g(m_lock);
	m_suspended = true;
	return {};
}

DmResult DmDevice::resume()
{
	std::lock_guard<std::mutex> s(m_suspend_lock);
	/*
	 * As dm-ioctl's do_resume(): the table swapped out is destroyed after
	 * the new one's preresume/resume (whether they succeed or not), so its
	 * targets still exist while the new ones resume (snapshot handover).
	 */
	DmTable *old = nullptr;
	DmResult r = resume_locked(&old);
	destroy_table(old);
	return r;
}

DmResult DmDevice::resume_locked(DmTable **old)
{
	if (has_inactive()) {
		if (!suspended()) {
			DmResult r = do_suspend(false);
			if (!r.ok())
				return r;
		}
		dmxx_spin_lock(&m_publish);
		DmTable *next = m_inactive;
		m_inactive = nullptr;
		dmxx_spin_unlock(&m_publish);
		if (!next) /* cleared meanwhile: keep the active table, stay suspended */
			return {-EINVAL, "inactive table cleared during resume"};
		*old = m_active;
		{
			std::lock_guard<std::mutex> g(m_lock);
			m_active = next;
		}
		set_nr_sectors(m_active->size);
	}
	if (!suspended())
		return {};
	if (m_active) {
		for (auto &ti : m_active->targets)
			if (ti->type->preresume) {
				int r = ti->type->preresume(ti.get());
				if (r)
					return {r, "preresume failed"};
			}
		for (auto &ti : m_active->targets)
			if (ti->type->resume)
				ti->type->resume(ti.get());
	}
	std::lock_guard<std::mutex> g(m_lock);
	m_suspended = false;
	m_blocked = false;
	if (m_deferred_head)
		kick();
	return {};
}

/* ---- status, messages, devices ---------------------------------------------------------- */

std::vector<std::string> DmDevice::target_status(int type, unsigned flags, unsigned maxlen)
{
	std::lock_guard<std::mutex> s(m_suspend_lock);
	std::vector<std::string> out;
	if (!m_active)
		return out;
	std::vector<char> buf(maxlen ? maxlen : 1);
	for (auto &ti : m_active->targets) {
		buf[0] = '\0';
		if (ti->type->status)
			ti->type->status(ti.get(), type, flags, buf.data(), maxlen);
		out.emplace_back(buf.data(), strnlen(buf.data(), buf.size()));
	}
	return out;
}

std::string DmDevice::status(int type, unsigned flags)
{
	std::vector<std::string> results = target_status(type, flags);
	std::lock_guard<std::mutex> s(m_suspend_lock);
	std::string out;
	if (!m_active)
		return out;
	for (size_t i = 0; i < m_active->targets.size() && i < results.size(); i++) {
		const dm_target *ti = m_active->targets[i].get();
		if (i)
			out += '\n';
		out += std::to_string(ti->begin) + " " + std::to_string(ti->len) + " " + ti->type->name;
		if (!results[i].empty())
			out += " " + results[i];
	}
	return out;
}

DmResult DmDevice::message(sector_t sector, const std::string &msg, std::string *result)
{
	std::lock_guard<std::mutex> s(m_suspend_lock);
	if (!m_active)
		return {-EINVAL, "no active table"};
	dm_target *ti = m_active->find_target(sector);
	if (!ti)
		return {-EINVAL, "Target message sector outside device."};
	if (!ti->type->message)
		return {-EINVAL, "Target type does not support messages"};
	std::vector<std::string> words = split_args(msg);
	if (words.empty())
		return {-EINVAL, "Empty message received."};
	std::vector<char *> argv;
	for (const auto &w : words)
		argv.push_back(strdup(w.c_str()));
	argv.push_back(nullptr);
	std::vector<char> buf(4096, '\0');
	int r = ti->type->message(ti, unsigned(words.size()), argv.data(), buf.data(), unsigned(buf.size()));
	for (char *a : argv)
		free(a);
	if (result)
		*result = buf.data();
	if (r < 0)
		return {r, "Target message failed"};
	return {};
}

std::vector<DmDevice::DevArea> DmDevice::iterate_devices(unsigned index)
{
	std::lock_guard<std::mutex> s(m_suspend_lock);
	std::vector<DevArea> out;
	if (!m_active || index >= m_active->targets.size())
		return out;
	dm_target *ti = m_active->targets[index].get();
	if (!ti->type->iterate_devices)
		return out;
	ti->type->iterate_devices(
		ti,
		[](dm_target *, dm_dev *dev, unsigned long long start, unsigned long long len, void *data) {
			static_cast<std::vector<DevArea> *>(data)->push_back({dev->name, start, len});
			return 0;
		},
		&out);
	return out;
}

unsigned DmDevice::num_targets()
{
	std::lock_guard<std::mutex> s(m_suspend_lock);
	return m_active ? unsigned(m_active->targets.size()) : 0;
}

dm_target *DmDevice::target(unsigned index)
{
	std::lock_guard<std::mutex> s(m_suspend_lock);
	if (!m_active || index >= m_active->targets.size())
		return nullptr;
	return m_active->targets[index].get();
}

} // namespace dmxx::user

/* ---- the porting interface ------------------------------------------------------------------ */

using dmxx::user::DmTable;

static DmTable *table_of(dm_target *ti) { return static_cast<DmTable *>(ti->table); }

int dmxx_dm_get_device(struct dm_target *ti, const char *path, struct dm_dev **out) noexcept
{
	DmTable *t = table_of(ti);
	block_device *bdev = dmxx::user::lookup_bdev(path);
	if (!bdev)
		return -ENODEV;
	if (bdev == t->md)
		return -EINVAL;
	for (auto &d : t->devices)
		if (d->bdev == bdev) {
			d->refs++;
			*out = d.get();
			return 0;
		}
	/* dm_get_device() allocates the table's device entry: that can fail. */
	if (dmxx::user::alloc_should_fail(DMXX_ALLOC_SLEEP))
		return -ENOMEM;
	auto d = std::make_unique<dm_dev>();
	d->bdev = bdev;
	d->refs = 1;
	snprintf(d->name, sizeof(d->name), "%u:%u", bdev->dev_major(), bdev->dev_minor());
	bdev->get_open();
	*out = d.get();
	t->devices.push_back(std::move(d));
	return 0;
}

void dmxx_dm_put_device(struct dm_target *ti, struct dm_dev *dev) noexcept
{
	DmTable *t = table_of(ti);
	for (auto it = t->devices.begin(); it != t->devices.end(); ++it)
		if (it->get() == dev) {
			if (--dev->refs == 0) {
				dev->bdev->put_open();
				t->devices.erase(it);
			}
			return;
		}
	dmxx_fatal("dm_put_device: device not held by this table");
}

struct block_device *dmxx_dm_dev_bdev(struct dm_dev *dev) noexcept { return dev->bdev; }
const char *dmxx_dm_dev_name(struct dm_dev *dev) noexcept { return dev->name; }
void dmxx_ti_set_error(struct dm_target *ti, const char *msg) noexcept { ti->error = msg; }
const char *dmxx_ti_error(struct dm_target *ti) noexcept { return ti->error; }

int dmxx_ti_configure(struct dm_target *ti, const struct dmxx_ti_config *cfg) noexcept
{
	ti->num_flush_bios = cfg->num_flush_bios;
	ti->num_discard_bios = cfg->num_discard_bios;
	ti->num_secure_erase_bios = cfg->num_secure_erase_bios;
	ti->num_write_zeroes_bios = cfg->num_write_zeroes_bios;
	ti->per_io_data_size = cfg->per_io_data_size;
	ti->flush_supported = cfg->flush_supported != 0;
	ti->discards_supported = cfg->discards_supported != 0;
	ti->max_io_len = cfg->max_io_len;
	return 0;
}

void dmxx_dm_table_event(struct dm_target *ti) noexcept { table_of(ti)->md->table_event(); }

unsigned dmxx_bio_target_nr(struct bio *b) noexcept
{
	auto *tio = static_cast<dmxx::user::Tio *>(b->bi_dm_tio);
	return tio ? tio->target_bio_nr : 0;
}

void dmxx_user_accept_partial_bio(struct bio *b, unsigned n_sectors) noexcept
{
	auto *tio = static_cast<dmxx::user::Tio *>(b->bi_dm_tio);
	if (!tio || tio != dmxx::user::t_mapping)
		dmxx_fatal("dm_accept_partial_bio outside the target's map()");
	if (tio->duplicate || !tio->len_ptr)
		dmxx_fatal("dm_accept_partial_bio on a flush or duplicate bio");
	unsigned sectors = b->bi_size >> 9;
	if (n_sectors == 0 || n_sectors > sectors)
		dmxx_fatal("dm_accept_partial_bio: bad sector count");
	*tio->len_ptr -= sectors - n_sectors;
	b->bi_size = n_sectors << 9;
}
