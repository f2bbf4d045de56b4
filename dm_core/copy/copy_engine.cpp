// SPDX-License-Identifier: GPL-2.0
#include "copy_engine.h"

#include <dmxx/bio.h>
#include <dmxx/mem.h>
#include <dmxx/new.h>

namespace dmxx {

Result<void> CopyEngine::init(const char *name, const Options &opts)
{
	if (!opts.slots || !opts.slot_sectors || opts.slot_sectors > (1u << 22))
		return err(EINVAL);
	m_nr_slots = opts.slots;
	m_slot_sectors = opts.slot_sectors;
	unsigned long slot_bytes = (unsigned long)m_slot_sectors << 9;

	m_slots = static_cast<Slot *>(dmxx_zalloc(sizeof(Slot) * m_nr_slots, DMXX_ALLOC_SLEEP));
	if (!m_slots)
		return err(ENOMEM);
	m_fan = static_cast<FanWrite *>(dmxx_zalloc(sizeof(FanWrite) * max_fanout * m_nr_slots, DMXX_ALLOC_SLEEP));
	if (!m_fan)
		return err(ENOMEM);
	m_buffers = static_cast<u8 *>(dmxx_kvalloc(slot_bytes * m_nr_slots, DMXX_ALLOC_SLEEP));
	if (!m_buffers)
		return err(ENOMEM);
	m_zero_buf = static_cast<u8 *>(dmxx_kvzalloc(slot_bytes, DMXX_ALLOC_SLEEP));
	if (!m_zero_buf)
		return err(ENOMEM);
	for (unsigned i = 0; i < m_nr_slots; i++) {
		Slot *s = &m_slots[i];
		s->engine = this;
		s->buf = m_buffers + slot_bytes * i;
		s->fan = m_fan + max_fanout * i;
		s->next = m_free;
		m_free = s;
	}

	/* A buffer may start mid-page in the kernel: one vec more than the pages it spans. */
	unsigned vecs = dmxx_bio_data_vecs(m_buffers, slot_bytes) + 1;
	TRY(m_bios.init(name, m_nr_slots, 0, vecs));

	m_work.engine = this;
	dmxx_work_init(&m_work.work, &CopyEngine::work_fn);
	m_work_spread.engine = this;
	dmxx_work_init(&m_work_spread.work, &CopyEngine::work_fn);
	/* Two queues, one item each, for kick() to choose from; run_exclusive() serialises them. */
	m_wq = dmxx_wq_create(name, DMXX_WQ_MEM_RECLAIM);
	m_wq_spread = dmxx_wq_create(name, DMXX_WQ_UNBOUND | DMXX_WQ_MEM_RECLAIM);
	if (!m_wq || !m_wq_spread)
		return err(ENOMEM);
	return {};
}

CopyEngine::~CopyEngine()
{
	if (m_wq || m_wq_spread)
		drain();
	/* Both drain: a run still finishing (after the last callback) ends first. */
	if (m_wq)
		dmxx_wq_destroy(m_wq);
	if (m_wq_spread)
		dmxx_wq_destroy(m_wq_spread);
	dmxx_kvfree(m_zero_buf);
	dmxx_kvfree(m_buffers);
	dmxx_free(m_fan);
	dmxx_free(m_slots);
}

/*
 * Where the worker runs, measured in the VM (snapshot first writes, 4k
 * chunks, kernel dm-snapshot as the reference): with one job at a time, on
 * the submitter's CPU once it sleeps -- the per-CPU queue (waking a worker
 * on another, idle CPU cost a fifth of the IOPS at depth 1); with several,
 * wherever the scheduler finds room -- the unbound queue (staying on the
 * submitter's CPU cost 60% of the IOPS at depth 16; a per-CPU queue on the
 * next CPU did not win that back). "Several" counts the owner's work in
 * flight too (set_load_counter): a snapshot's copies finish fast, while
 * the writes waiting for their commits are what make the submitter busy.
 */
void CopyEngine::kick()
{
	/*
	 * A run in progress (this may be it: brd completes bios inside
	 * submit) only has to go round once more; queueing the other item
	 * would wake a worker just to be told so.
	 */
	u8 st = m_run_state.load(Order::Acquire);
	while (st != run_idle) {
		if (st == run_again || m_run_state.compare_exchange(st, run_again, Order::AcqRel))
			return;
	}
	const Atomic<u64> *load = m_load;
	if (m_jobs.load(Order::Relaxed) > 1 || (load && load->load(Order::Relaxed) > 1))
		dmxx_queue_work(m_wq_spread, &m_work_spread.work);
	else
		dmxx_queue_work(m_wq, &m_work.work);
}

/* @job is now this engine's until called back: fresh state, counted for drain(). */
void CopyEngine::accept(CopyJob *job, CopyDoneFn done, void *ctx)
{
	job->m_done = done;
	job->m_ctx = ctx;
	job->m_dispatched = 0;
	job->m_outstanding = 0;
	job->m_queued = false;
	job->m_read_failed = false;
	job->m_write_failed = false;
	job->m_stopped = false;
	job->m_external_error = 0;
	job->m_also = nullptr;
	m_jobs.fetch_add(1, Order::Relaxed);
}

void CopyEngine::enqueue(CopyJob *job)
{
	job->m_next = nullptr;
	job->m_queued = true;
	{
		IrqGuard g(m_lock);
		if (m_queue_tail)
			m_queue_tail->m_next = job;
		else
			m_queue_head = job;
		m_queue_tail = job;
	}
	kick();
}

void CopyEngine::copy(CopyJob *job, const CopyRegion &src, const CopyRegion &dst, CopyDoneFn done,
		      void *ctx, CopyJob *also)
{
	accept(job, done, ctx);
	job->m_src = src;
	job->m_dst = {dst.bdev, dst.sector, src.count};
	job->m_zero = false;
	job->m_also = also;
	unsigned n = 1;
	for (CopyJob *d = also; d; d = d->m_also, n++)
		d->m_dst.count = src.count;
	if (n > max_fanout)
		dmxx_fatal("copy engine: more destinations than max_fanout");
	enqueue(job);
}

CopyJob *CopyEngine::attach(CopyJob *job, const CopyRegion &dst, CopyDoneFn done, void *ctx,
			    CopyJob *next)
{
	accept(job, done, ctx); /* drain() here waits for its callback */
	job->m_dst = dst;
	job->m_zero = false;
	job->m_home = this;
	job->m_also = next;
	return job;
}

void CopyEngine::zero(CopyJob *job, const CopyRegion &dst, CopyDoneFn done, void *ctx)
{
	accept(job, done, ctx);
	job->m_src = {nullptr, 0, dst.count};
	job->m_dst = dst;
	job->m_zero = true;
	enqueue(job);
}

void CopyEngine::complete_external(CopyJob *job, int error, CopyDoneFn done, void *ctx)
{
	accept(job, done, ctx);
	job->m_external_error = error;
	push_external(job);
}

/* Queue @job's callback (already counted in m_jobs) for the worker. Any context. */
void CopyEngine::push_external(CopyJob *job)
{
	{
		IrqGuard g(m_lock);
		job->m_next = m_external;
		m_external = job;
	}
	kick();
}

void CopyEngine::drain()
{
	m_idle.wait([this] { return m_jobs.load(Order::Acquire) == 0; });
}

/* Completion context: record, hand to the worker, never block. */
void CopyEngine::bio_done(bio *b, void *priv)
{
	auto *s = static_cast<Slot *>(priv);
	CopyEngine *e = s->engine;
	s->status = bio_status(b);
	BioSet::free(b);
	e->push_ready(s);
}

/* One destination of a fanned-out piece is written; the last one readies the slot. */
void CopyEngine::fan_bio_done(bio *b, void *priv)
{
	auto *w = static_cast<FanWrite *>(priv);
	Slot *s = w->slot;
	w->status = bio_status(b);
	BioSet::free(b);
	if (s->writes_left.fetch_sub(1, Order::AcqRel) == 1)
		s->engine->push_ready(s);
}

void CopyEngine::push_ready(Slot *s)
{
	{
		IrqGuard g(m_lock);
		s->next = m_ready;
		m_ready = s;
	}
	kick();
}

/* Allocate, fill and submit one bio of @s's piece. Worker only, no lock held. */
void CopyEngine::submit(const CopyRegion &r, u32 opf, void *data, Slot *s, BioEndFn done, void *priv)
{
	u32 bytes = s->sectors << 9;
	/* NoIO may wait for a bio of our set; bio completions free them, so it ends. */
	bio *b = m_bios.alloc(r.bdev, opf, dmxx_bio_data_vecs(data, bytes), AllocMode::NoIO, done, priv);
	if (!b)
		dmxx_fatal("copy engine: sleeping bio allocation failed");
	bio_set_sector(b, r.sector + s->offset);
	if (dmxx_bio_add_data(b, data, bytes) < 0)
		dmxx_fatal("copy engine: bio too small for its slot");
	m_stat_bios.fetch_add(1, Order::Relaxed);
	dmxx_submit_bio(b);
}

/* The bio for @s's current phase. */
void CopyEngine::issue(Slot *s)
{
	CopyJob *job = s->job;
	if (job->m_zero)
		submit(job->m_dst, DMXX_REQ_OP_WRITE, m_zero_buf, s, &CopyEngine::bio_done, s);
	else if (!s->writing)
		submit(job->m_src, DMXX_REQ_OP_READ, s->buf, s, &CopyEngine::bio_done, s);
	else if (!job->m_also)
		submit(job->m_dst, DMXX_REQ_OP_WRITE, s->buf, s, &CopyEngine::bio_done, s);
	else
		issue_fanout(s);
}

/*
 * The piece read once, written to every destination: one bio each,
 * allocated and submitted one at a time (a submitted bio completes without
 * us, so waiting for the next one's allocation cannot wait on ourselves).
 * The count holds one extra reference while issuing: a disk that completes
 * inside submit must not ready the slot before its last write is out.
 */
void CopyEngine::issue_fanout(Slot *s)
{
	unsigned n = 0;
	for (CopyJob *d = s->job; d; d = d->m_also)
		s->fan[n++] = {s, d, 0};
	s->writes_left.store(n + 1, Order::Relaxed);
	for (unsigned i = 0; i < n; i++)
		submit(s->fan[i].dest->m_dst, DMXX_REQ_OP_WRITE, s->buf, s, &CopyEngine::fan_bio_done,
		       &s->fan[i]);
	if (s->writes_left.fetch_sub(1, Order::AcqRel) == 1)
		push_ready(s);
}

/* A fanned-out piece's writes are over: mark the destinations that failed. */
void CopyEngine::fanout_result(Slot *s)
{
	unsigned n = 0;
	for (CopyJob *d = s->job; d; d = d->m_also)
		n++;
	IrqGuard g(m_lock);
	for (unsigned i = 0; i < n; i++)
		if (s->fan[i].status) {
			s->fan[i].dest->m_write_failed = true;
			s->job->m_stopped = true;
		}
}

/* Give the first waiting job's next piece a free slot and start it; false if none. */
bool CopyEngine::dispatch_one()
{
	Slot *s;
	CopyJob *finished = nullptr;
	{
		IrqGuard g(m_lock);
		CopyJob *job = m_queue_head;
		/* A failed job dispatches nothing more; it finishes when its pieces do. */
		while (job && (job->m_read_failed || job->m_write_failed || job->m_stopped)) {
			m_queue_head = job->m_next;
			if (!m_queue_head)
				m_queue_tail = nullptr;
			job->m_queued = false;
			if (!job->m_outstanding) {
				job->m_next = finished;
				finished = job;
			}
			job = m_queue_head;
		}
		if (finished) {
			/* Called back through the external list, in order with the rest. */
			while (finished) {
				CopyJob *n = finished->m_next;
				finished->m_next = m_external;
				m_external = finished;
				finished = n;
			}
		}
		if (!job || !m_free)
			return false;
		s = m_free;
		m_free = s->next;
		m_busy++;
		if (m_busy > m_stat_max_busy.load(Order::Relaxed))
			m_stat_max_busy.store(m_busy, Order::Relaxed);

		sector_t left = job->m_src.count - job->m_dispatched;
		s->job = job;
		s->offset = job->m_dispatched;
		s->sectors = u32(left < m_slot_sectors ? left : m_slot_sectors);
		s->writing = false;
		s->status = 0;
		job->m_dispatched += s->sectors;
		job->m_outstanding++;
		if (job->m_dispatched == job->m_src.count) {
			m_queue_head = job->m_next;
			if (!m_queue_head)
				m_queue_tail = nullptr;
			job->m_queued = false;
		}
	}
	m_stat_pieces.fetch_add(1, Order::Relaxed);
	issue(s);
	return true;
}

/* A slot's piece is over (done or failed): release it; queue its job's callback if last. */
void CopyEngine::finish_slot(Slot *s, CopyJob **done_list)
{
	IrqGuard g(m_lock);
	CopyJob *job = s->job;
	job->m_outstanding--;
	if (!job->m_outstanding && !job->m_queued) {
		job->m_next = *done_list;
		*done_list = job;
	}
	s->job = nullptr;
	s->next = m_free;
	m_free = s;
	m_busy--;
}

void CopyEngine::work_fn(dmxx_work *w) { reinterpret_cast<Work *>(w)->engine->run_exclusive(); }

/*
 * The engine's work is one run at a time, but it has two work items (one
 * per queue): whichever runs while the other is running only asks it to
 * go round once more (Again) and returns, so no kick is lost and no two
 * runs overlap. run() drains everything queued when it starts.
 */
void CopyEngine::run_exclusive()
{
	u8 st = run_idle;
	while (!m_run_state.compare_exchange(st, run_running, Order::AcqRel)) {
		if (st == run_again)
			return;
		if (m_run_state.compare_exchange(st, run_again, Order::AcqRel))
			return; /* the runner goes round again */
		st = run_idle; /* it went idle meanwhile: try to be the runner */
	}
	for (;;) {
		run();
		u8 expect = run_running;
		if (m_run_state.compare_exchange(expect, run_idle, Order::AcqRel))
			return;
		m_run_state.store(run_running, Order::Release); /* was run_again */
	}
}

void CopyEngine::run()
{
	for (;;) {
		bool did = false;

		/* Finished I/O: reads become writes, writes end their piece. */
		Slot *ready;
		{
			IrqGuard g(m_lock);
			ready = m_ready;
			m_ready = nullptr;
		}
		Slot *fifo = nullptr; /* completions were pushed LIFO: restore their order */
		while (ready) {
			Slot *n = ready->next;
			ready->next = fifo;
			fifo = ready;
			ready = n;
		}
		CopyJob *done = nullptr;
		while (fifo) {
			Slot *s = fifo;
			fifo = s->next;
			did = true;
			if (s->writing && s->job->m_also) {
				fanout_result(s);
			} else if (s->status) {
				IrqGuard g(m_lock);
				if (s->writing || s->job->m_zero)
					s->job->m_write_failed = true;
				else
					s->job->m_read_failed = true;
			} else if (!s->writing && !s->job->m_zero) {
				s->writing = true;
				issue(s);
				continue;
			}
			finish_slot(s, &done);
		}

		while (dispatch_one())
			did = true;

		/* Callbacks: finished jobs in the order they finished, then external ones. */
		CopyJob *ext;
		{
			IrqGuard g(m_lock);
			ext = m_external;
			m_external = nullptr;
		}
		CopyJob *calls = nullptr;
		while (ext) {
			CopyJob *n = ext->m_next;
			ext->m_next = calls;
			calls = ext;
			ext = n;
		}
		/* done was built LIFO too; append it reversed after the external ones. */
		CopyJob *ordered = nullptr;
		while (done) {
			CopyJob *n = done->m_next;
			done->m_next = ordered;
			ordered = done;
			done = n;
		}
		if (calls) {
			CopyJob *t = calls;
			while (t->m_next)
				t = t->m_next;
			t->m_next = ordered;
		} else {
			calls = ordered;
		}
		while (calls) {
			CopyJob *job = calls;
			calls = job->m_next;
			did = true;
			call_back(job);
		}

		if (!did)
			return;
	}
}

/*
 * Worker: @job is over. Its further destinations go to their own engines'
 * workers first (this job's owner may be gone once called back).
 */
void CopyEngine::call_back(CopyJob *job)
{
	int error = job->m_external_error;
	if (job->m_also) {
		/* Stopped before its last piece: no destination holds the whole copy. */
		bool broken = job->m_read_failed || job->m_dispatched < job->m_src.count;
		for (CopyJob *d = job->m_also; d;) {
			CopyJob *next = d->m_also;
			d->m_also = nullptr;
			d->m_external_error = broken || d->m_write_failed ? -EIO : 0;
			d->m_read_failed = job->m_read_failed;
			d->m_home->push_external(d);
			d = next;
		}
		job->m_also = nullptr;
		if (broken)
			error = -EIO;
	}
	if (job->m_read_failed || job->m_write_failed)
		error = -EIO;
	job->m_done(job, error, job->m_ctx);
	m_stat_jobs.fetch_add(1, Order::Relaxed);
	if (m_jobs.fetch_sub(1, Order::AcqRel) == 1)
		m_idle.wake_all();
}

CopyEngine::Stats CopyEngine::stats() const
{
	return {m_stat_jobs.load(Order::Relaxed), m_stat_pieces.load(Order::Relaxed),
		m_stat_bios.load(Order::Relaxed), m_stat_max_busy.load(Order::Relaxed)};
}

unsigned CopyEngine::busy_slots() const
{
	IrqGuard g(const_cast<SpinLock &>(m_lock));
	return m_busy;
}

} // namespace dmxx
