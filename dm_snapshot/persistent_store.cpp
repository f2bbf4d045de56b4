// SPDX-License-Identifier: GPL-2.0
#include "persistent_store.h"

#include <dmxx/mem.h>
#include <dmxx/new.h>

#include "block_io.h"

namespace dmxx::snap {

static constexpr unsigned metadata_bio_bytes = 64 * 1024;

static constinit Atomic<bool> g_unsafe_commits{false};

void set_unsafe_commits_for_test(bool on) { g_unsafe_commits.store(on); }

PersistentStore::PersistentStore(block_device *origin, block_device *cow, bool overflow)
	: m_origin(origin), m_cow(cow)
{
	m_overflow = overflow;
	m_unsafe = g_unsafe_commits.load();
}

Result<PersistentStore *> PersistentStore::create(block_device *origin, block_device *cow,
						  u32 chunk_sectors, bool overflow)
{
	auto *ps = new (AllocMode::Sleep) PersistentStore(origin, cow, overflow);
	if (!ps)
		return err(ENOMEM);
	ps->set_chunk_size(chunk_sectors);
	auto r = ps->m_bios.init("dmxx_snap_meta", 4, 0, block_io_vecs(metadata_bio_bytes));
	if (r.is_error()) {
		delete ps;
		return r.error();
	}
	ps->m_work.store = ps;
	dmxx_work_init(&ps->m_work.work, &PersistentStore::work_fn);
	/* Used under load only (see commit_exception): unbound, it runs beside the engine. */
	ps->m_wq = dmxx_wq_create("dmxx_ksnaphd", DMXX_WQ_ORDERED | DMXX_WQ_MEM_RECLAIM);
	if (!ps->m_wq) {
		delete ps;
		return err(ENOMEM);
	}
	return ps;
}

PersistentStore::~PersistentStore()
{
	if (m_wq)
		dmxx_wq_destroy(m_wq); /* drains: every queued commit was called back */
	free_buffers();
}

Result<void> PersistentStore::alloc_buffers()
{
	unsigned long bytes = (unsigned long)chunk_size() << 9;
	m_area = static_cast<u8 *>(dmxx_kvzalloc(bytes, DMXX_ALLOC_SLEEP));
	m_header = static_cast<u8 *>(dmxx_kvzalloc(bytes, DMXX_ALLOC_SLEEP));
	m_zero = static_cast<u8 *>(dmxx_kvzalloc(bytes, DMXX_ALLOC_SLEEP));
	if (!m_area || !m_header || !m_zero)
		return err(ENOMEM);
	return {};
}

void PersistentStore::free_buffers()
{
	dmxx_kvfree(m_area);
	dmxx_kvfree(m_header);
	dmxx_kvfree(m_zero);
	m_area = m_header = m_zero = nullptr;
}

Result<void> PersistentStore::chunk_io(void *buf, chunk_t chunk, u32 opf)
{
	return block_io_sync(m_bios, m_cow, opf, sector_t(chunk) << chunk_shift(), buf,
			     (unsigned long)chunk_size() << 9, metadata_bio_bytes);
}

Result<void> PersistentStore::write_header(bool valid)
{
	mem_zero(m_header, (usize)chunk_size() << 9);
	encode_header(m_header, {disk_magic, valid ? 1u : 0u, m_version, chunk_size()});
	/* PREFLUSH: whatever the header vouches for (a zeroed area 0) is durable first. */
	return chunk_io(m_header, 0, DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH | DMXX_REQ_FUA);
}

/*
 * Constructor time: read the header, pick the chunk size (the disk's wins),
 * initialise a blank device, or load every recorded exception.
 */
Result<bool> PersistentStore::read_metadata(AddFn add, void *ctx)
{
	bool supplied = chunk_size() != 0;
	if (!supplied) {
		u32 lbs = dmxx_bdev_logical_block_size(m_cow) >> 9;
		set_chunk_size(lbs > default_chunk_sectors ? lbs : default_chunk_sectors);
	}
	TRY(alloc_buffers());
	if (chunk_io(m_header, 0, DMXX_REQ_OP_READ).is_error())
		return err(EIO);
	Header h = decode_header(m_header);

	if (h.magic == 0) {
		/* A blank device: make area 0 empty before the header says it is ours. */
		m_layout = AreaLayout(chunk_size());
		TRY(chunk_io(m_zero, m_layout.area_location(0), DMXX_REQ_OP_WRITE));
		if (write_header(true).is_error()) {
			dmxx_log(DMXX_LOG_WARN, "persistent snapshot: write_header failed");
			return err(EIO);
		}
		return true;
	}
	if (h.magic != disk_magic) {
		dmxx_log(DMXX_LOG_WARN, "persistent snapshot: Invalid or corrupt snapshot");
		return err(ENXIO);
	}
	m_valid = h.valid != 0;
	m_version = h.version;
	if (h.chunk_size != chunk_size()) {
		if (supplied)
			dmxx_log(DMXX_LOG_WARN,
				 "persistent snapshot: chunk size %u in device metadata overrides table chunk size of %u.",
				 h.chunk_size, chunk_size());
		const char *why = chunk_size_problem(h.chunk_size, dmxx_bdev_logical_block_size(m_origin),
						     dmxx_bdev_logical_block_size(m_cow));
		if (why) {
			dmxx_log(DMXX_LOG_ERR, "persistent snapshot: invalid on-disk chunk size %u: %s.",
				 h.chunk_size, why);
			return err(EINVAL);
		}
		free_buffers();
		set_chunk_size(h.chunk_size);
		TRY(alloc_buffers());
	}
	m_layout = AreaLayout(chunk_size());
	if (m_version != disk_version) {
		dmxx_log(DMXX_LOG_WARN, "persistent snapshot: unable to handle snapshot disk version %u",
			 m_version);
		return err(EINVAL);
	}
	if (!m_valid)
		return false;
	TRY(read_exceptions(add, ctx));
	return true;
}

/* Areas in order until one that is not full; that one becomes the current area. */
Result<void> PersistentStore::read_exceptions(AddFn add, void *ctx)
{
	chunk_t cow_chunks = dmxx_bdev_nr_sectors(m_cow) >> chunk_shift();
	chunk_t next_free = AreaLayout::first_free();
	for (u64 area = 0;; area++) {
		chunk_t where = m_layout.area_location(area);
		if (where >= cow_chunks || chunk_io(m_area, where, DMXX_REQ_OP_READ).is_error())
			return err(EIO);
		AreaScan scan = TRY(scan_area(m_area, m_layout, [&](const CoreException &e) -> Result<void> {
			if (!exception_plausible(m_layout, cow_chunks, e)) {
				dmxx_log(DMXX_LOG_ERR,
					 "persistent snapshot: exception %llu -> %llu points outside the data chunks",
					 (unsigned long long)e.old_chunk, (unsigned long long)e.new_chunk);
				return err(EILSEQ);
			}
			return add(ctx, e.old_chunk, e.new_chunk);
		}));
		if (scan.count && scan.max_new + 1 > next_free)
			next_free = scan.max_new + 1;
		if (!scan.full) {
			m_current_area.store(area, Order::Relaxed);
			m_current_committed = scan.count;
			break;
		}
		dmxx_cond_resched();
	}
	Guard g(alloc_lock);
	m_next_free = m_layout.skip_metadata(next_free);
	return {};
}

Result<chunk_t> PersistentStore::prepare_exception()
{
	sector_t size = dmxx_bdev_nr_sectors(m_cow);
	if (size < (sector_t(m_next_free) + 1) * chunk_size())
		return err(ENOSPC);
	chunk_t c = m_next_free;
	m_next_free = m_layout.skip_metadata(m_next_free + 1);
	return c;
}

void PersistentStore::commit_exception(CommitRequest *req)
{
	req->next = nullptr;
	bool now;
	{
		Guard g(m_queue_lock);
		if (m_queue_tail)
			m_queue_tail->next = req;
		else
			m_queue_head = req;
		m_queue_tail = req;
		now = req->alone && !m_committing && m_queue_head == req;
		if (now) {
			m_committing = true;
			m_on_worker = false;
		}
	}
	if (now)
		commit_queued();
	else
		dmxx_queue_work(m_wq, &m_work.work);
}

void PersistentStore::drop_snapshot(DropDoneFn done, void *ctx)
{
	{
		Guard g(m_queue_lock);
		if (m_drop_pending)
			dmxx_fatal("persistent snapshot: dropped twice");
		m_drop_fn = done;
		m_drop_ctx = ctx;
		m_drop_pending = true;
	}
	dmxx_queue_work(m_wq, &m_work.work);
}

void PersistentStore::work_fn(dmxx_work *w) { reinterpret_cast<Work *>(w)->store->run(); }

void PersistentStore::run()
{
	{
		Guard g(m_queue_lock);
		if (m_committing)
			return; /* the committer takes what was queued before it lets go */
		m_committing = true;
		m_on_worker = true;
	}
	commit_queued();
}

void PersistentStore::commit_queued()
{
	for (;;) {
		CommitRequest *batch;
		DropDoneFn drop = nullptr;
		void *drop_ctx = nullptr;
		{
			Guard g(m_queue_lock);
			batch = m_queue_head;
			m_queue_head = m_queue_tail = nullptr;
			if (m_drop_pending) {
				drop = m_drop_fn;
				drop_ctx = m_drop_ctx;
				m_drop_pending = false;
			}
			if (!batch && !drop)
				m_committing = false;
		}
		if (!batch && !drop) {
			m_idle.wake_all();
			return;
		}
		if (drop) {
			/* Invalid for good: later commits are refused, and the header says so. */
			m_valid = false;
			if (write_header(false).is_error())
				dmxx_log(DMXX_LOG_WARN, "persistent snapshot: write header failed");
			drop(drop_ctx);
		}
		if (batch)
			commit_batch(batch);
	}
}

/* Record @batch (FIFO) in the current area(s), write, and call each back. Worker only. */
void PersistentStore::commit_batch(CommitRequest *batch)
{
	CommitRequest *waiting = nullptr, **tail = &waiting;
	while (batch) {
		CommitRequest *req = batch;
		batch = req->next;
		req->next = nullptr;
		*tail = req;
		tail = &req->next;
		if (!req->copied)
			m_valid = false;
		if (!m_valid)
			continue;
		encode_exception(m_area, m_current_committed++, {req->old_chunk, req->new_chunk});
		if (m_current_committed == m_layout.exceptions_per_area()) {
			flush_area(waiting, true);
			waiting = nullptr;
			tail = &waiting;
		}
	}
	if (waiting)
		flush_area(waiting, false);
}

/* Make the current area durable (or not, if invalid) and report to @waiting. */
void PersistentStore::flush_area(CommitRequest *waiting, bool full)
{
	u64 area = m_current_area.load(Order::Relaxed);
	if (full && m_valid &&
	    chunk_io(m_zero, m_layout.area_location(area + 1), DMXX_REQ_OP_WRITE).is_error())
		m_valid = false;
	(m_on_worker ? m_worker_commits : m_inline_commits).fetch_add(1, Order::Relaxed);
	/* PREFLUSH: the copies these entries describe are on stable storage before them. */
	u32 opf = DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH | DMXX_REQ_FUA | DMXX_REQ_SYNC;
	if (m_unsafe)
		opf = DMXX_REQ_OP_WRITE;
	if (m_valid && chunk_io(m_area, m_layout.area_location(area), opf).is_error())
		m_valid = false;
	if (full) {
		m_current_area.store(area + 1, Order::Relaxed);
		m_current_committed = 0;
		mem_zero(m_area, (usize)chunk_size() << 9);
	}
	bool ok = m_valid;
	while (waiting) {
		CommitRequest *req = waiting;
		waiting = req->next;
		req->done(req, ok);
	}
}

Result<unsigned> PersistentStore::prepare_merge(chunk_t *last_old, chunk_t *last_new)
{
	if (!m_current_committed) {
		u64 area = m_current_area.load(Order::Relaxed);
		if (!area)
			return 0u;
		/* The previous area is full on disk: step back into it. */
		m_current_area.store(area - 1, Order::Relaxed);
		TRY(chunk_io(m_area, m_layout.area_location(area - 1), DMXX_REQ_OP_READ));
		m_current_committed = m_layout.exceptions_per_area();
	}
	CoreException last = decode_exception(m_area, m_current_committed - 1);
	*last_old = last.old_chunk;
	*last_new = last.new_chunk;
	unsigned n = 1;
	while (n < m_current_committed) {
		CoreException e = decode_exception(m_area, m_current_committed - 1 - n);
		if (e.old_chunk != last.old_chunk - n || e.new_chunk != last.new_chunk - n)
			break;
		n++;
	}
	return n;
}

Result<void> PersistentStore::commit_merge(unsigned n)
{
	if (n > m_current_committed)
		dmxx_fatal("persistent snapshot: merging more exceptions than recorded");
	for (unsigned i = 0; i < n; i++)
		encode_exception(m_area, m_current_committed - 1 - i, {0, 0});
	TRY(chunk_io(m_area, m_layout.area_location(m_current_area.load(Order::Relaxed)),
		     DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH | DMXX_REQ_FUA));
	m_current_committed -= n;
	/*
	 * Only status reads next_free from now on: report the value it would
	 * have if every exception had been committed in allocation order.
	 */
	Guard g(alloc_lock);
	m_next_free = m_layout.area_location(m_current_area.load(Order::Relaxed)) + m_current_committed + 1;
	return {};
}

Usage PersistentStore::usage()
{
	Guard g(alloc_lock);
	return persistent_usage(dmxx_bdev_nr_sectors(m_cow), chunk_size(), m_next_free,
				m_current_area.load(Order::Relaxed));
}

void PersistentStore::emit_table(StatusWriter &out) const
{
	out.emit(" %s %u", m_overflow ? "PO" : "P", chunk_size());
}

void PersistentStore::flush()
{
	dmxx_flush_workqueue(m_wq);
	/*
	 * A commit on a caller's thread is not the worker's: wait for it too.
	 * (It may still be on its way out, about to wake m_idle: the store is
	 * freed only after the copy engine, the one caller that commits
	 * inline, has drained -- see ~Snapshot.)
	 */
	m_idle.wait([this] {
		Guard g(m_queue_lock);
		return !m_committing && !m_queue_head && !m_drop_pending;
	});
}

} // namespace dmxx::snap
