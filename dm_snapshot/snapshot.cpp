// SPDX-License-Identifier: GPL-2.0
/*
 * A snapshot: construction, the snapshot target's I/O, the life of a pending
 * exception, invalidation, status. See snapshot.h for the overview.
 */
#include "snapshot.h"

#include <dmxx/bio_list.h>
#include <dmxx/mem.h>
#include <dmxx/new.h>

namespace dmxx::snap {

/* Tests select a negative-control throttle; snapshots read it when built. */
static constinit Atomic<u8> g_test_throttle_mode{u8(ThrottleMode::Ours)};

/* Sticky: once a 2019 snapshot existed, origin writes check the 2019 limit (a test's negative control). */
static constinit Atomic<bool> g_kernel2019_built{false};

void set_throttle_mode_for_test(ThrottleMode mode) { g_test_throttle_mode.store(u8(mode)); }
bool kernel2019_throttle_built() { return g_kernel2019_built.load(Order::Relaxed); }

Snapshot::Snapshot(dm_target *ti, bool merge)
	: m_ti(ti), m_merge(merge), m_throttle(ThrottleMode(g_test_throttle_mode.load()))
{
	if (m_throttle.mode() == ThrottleMode::Kernel2019)
		g_kernel2019_built.store(true);
}

/* ---- construction ----------------------------------------------------------------------------- */

Result<void> Snapshot::parse_features(TableArgs &args)
{
	if (!args.remaining())
		return {};
	unsigned n = TRY(args.next_group(2, "Invalid number of feature arguments"));
	while (n--) {
		const char *name = TRY(args.next_string("Invalid number of feature arguments"));
		if (str_eq_nocase(name, "discard_zeroes_cow"))
			m_discard_zeroes_cow = true;
		else if (str_eq_nocase(name, "discard_passdown_origin"))
			m_discard_passdown_origin = true;
		else
			return args.fail("Unrecognised feature requested");
	}
	if (m_discard_passdown_origin && !m_discard_zeroes_cow)
		return args.fail("discard_passdown_origin feature depends on discard_zeroes_cow");
	/* Words after the features are ignored, as the kernel ignores them. */
	return {};
}

Result<void> Snapshot::add_loaded(void *ctx, chunk_t old_chunk, chunk_t new_chunk)
{
	auto *s = static_cast<Snapshot *>(ctx);
	auto *e = new (AllocMode::Sleep) CompleteException(old_chunk, new_chunk);
	if (!e)
		return err(ENOMEM);
	ChunkLock lk(s->m_tables, old_chunk);
	if (s->m_tables.insert_complete(e).is_error()) {
		delete e;
		dmxx_log(DMXX_LOG_ERR, "snapshots: chunk %llu is recorded twice in the exception store",
			 (unsigned long long)old_chunk);
		return err(EILSEQ);
	}
	return {};
}

/*
 * snapshot <origin> <cow> <P|PO|N> <chunk_sectors> [<#features> <feature>...]
 * Checks in the kernel's order, each with the kernel's ti->error.
 */
Result<void> Snapshot::setup(TableArgs &args)
{
	const char *origin_path = TRY(args.next_string("requires 4 or more arguments"));
	const char *cow_path = TRY(args.next_string("requires 4 or more arguments"));
	const char *type = TRY(args.next_string("requires 4 or more arguments"));
	const char *chunk_arg = TRY(args.next_string("requires 4 or more arguments"));
	TRY(parse_features(args));

	int r = dmxx_dm_get_device(m_ti, origin_path, &m_origin_dev);
	if (r < 0) {
		m_origin_dev = nullptr;
		return args.fail("Cannot get origin device", r);
	}
	m_origin = dmxx_dm_dev_bdev(m_origin_dev);

	dm_dev *cow = nullptr;
	r = dmxx_dm_get_device(m_ti, cow_path, &cow);
	if (r < 0)
		return args.fail("Cannot get COW device", r);
	if (dmxx_dm_dev_bdev(cow) == m_origin) {
		dmxx_dm_put_device(m_ti, cow);
		return args.fail("COW device cannot be the same as origin device");
	}
	m_cow_dev = cow;
	m_cow = dmxx_dm_dev_bdev(cow);

	const char *why = nullptr;
	auto store = create_exception_store(type, chunk_arg, m_origin, m_cow, &why);
	if (store.is_error()) {
		/* The kernel reports only the outer message; the log says which check failed. */
		dmxx_log(DMXX_LOG_ERR, "snapshots: %s", why ? why : "exception store failed");
		return args.fail("Couldn't create exception store");
	}
	m_store = store.value();
	if (m_merge && !m_store->supports_merge())
		return args.fail("Snapshot exception store does not support snapshot-merge.");

	m_end = pf::ti_begin(m_ti) + pf::ti_len(m_ti);
	if (m_tables.init(dmxx_bdev_nr_sectors(m_cow) >> m_store->chunk_shift()).is_error())
		return args.fail("Unable to allocate hash table space", ENOMEM);

	TRY(register_with_origin(args));

	u32 cs;
	if (m_handover_dest) {
		/* The store is in the source's hands until our resume: do not read it. */
		cs = m_handover_chunk;
	} else {
		auto loaded = m_store->read_metadata(&Snapshot::add_loaded, this);
		if (loaded.is_error())
			return args.fail("Failed to read snapshot metadata", -loaded.error_code());
		if (!loaded.value()) {
			m_state.store(u8(SnapState::Invalid));
			dmxx_log(DMXX_LOG_WARN, "snapshots: Snapshot is marked invalid.");
		}
		if (!m_store->chunk_size())
			return args.fail("Chunk size not set");
		reposition_in_origin();
		cs = m_store->chunk_size();
	}

	CopyEngine::Options eo;
	eo.slot_sectors = cs < 128 ? cs : 128;
	eo.slots = 32;
	if (m_engine.init("dmxx_kcopyd", eo).is_error())
		return args.fail("Could not create kcopyd client", ENOMEM);
	m_engine.set_load_counter(&m_pending); /* writes waiting on copies or commits */
	m_engine_ready = true;
	if (m_sync_bios.init("dmxx_snap_sync", 2, 0, 0).is_error())
		return args.fail("Could not create kcopyd client", ENOMEM);
	if (m_merge) {
		m_merge_work.snap = this;
		dmxx_work_init(&m_merge_work.work, &Snapshot::merge_work_fn);
		m_merge_wq = dmxx_wq_create("dmxx_snap_merge", DMXX_WQ_ORDERED | DMXX_WQ_MEM_RECLAIM);
		if (!m_merge_wq)
			return args.fail("Could not create kcopyd client", ENOMEM);
	}

	dmxx_ti_config cfg{};
	cfg.num_flush_bios = m_merge ? 2 : 1;
	if (m_discard_zeroes_cow)
		cfg.num_discard_bios = m_discard_passdown_origin ? 2 : 1;
	cfg.max_io_len = cs;
	if (ti_configure<Snapshot>(m_ti, cfg).is_error())
		return args.fail("Cannot configure target");
	return {};
}

Result<void> Snapshot::register_with_origin(TableArgs &args)
{
	auto entry = origin_get(m_origin);
	if (entry.is_error())
		return args.fail("Snapshot origin struct allocation failed", ENOMEM);
	m_entry = entry.value();
	Guard g(m_entry->lock);
	/* Who already uses our COW device: an active source to take over from, or trouble. */
	Snapshot *src = nullptr, *dest = nullptr, *merging = nullptr;
	unsigned sharing = 0;
	for (Snapshot *s = m_entry->snapshots; s; s = s->next_in_origin) {
		if (s->m_merge)
			merging = s;
		if (s->m_cow != m_cow)
			continue;
		if (s->active())
			src = s;
		else
			dest = s;
		sharing++;
	}
	if (sharing == 2 || dest)
		return args.fail("Snapshot cow pairing for exception table handover failed");
	if (src) {
		if (m_merge && merging)
			return args.fail("A snapshot is already merging.");
		if (m_merge && !src->m_store->supports_merge())
			return args.fail("Snapshot exception store does not support snapshot-merge.");
		m_handover_dest = true;
		m_handover_chunk = src->chunk_size();
	}
	m_registered = true;
	Snapshot **link = &m_entry->snapshots;
	while (*link && (*link)->chunk_size() >= chunk_size())
		link = &(*link)->next_in_origin;
	next_in_origin = *link;
	*link = this;
	m_entry->update_min_chunk();
	return {};
}

/* The chunk size is known now: keep the list sorted largest first, and the origin's split right. */
void Snapshot::reposition_in_origin()
{
	Guard g(m_entry->lock);
	for (Snapshot **link = &m_entry->snapshots; *link; link = &(*link)->next_in_origin)
		if (*link == this) {
			*link = next_in_origin;
			break;
		}
	Snapshot **link = &m_entry->snapshots;
	while (*link && (*link)->chunk_size() >= chunk_size())
		link = &(*link)->next_in_origin;
	next_in_origin = *link;
	*link = this;
	m_entry->update_min_chunk();
}

void Snapshot::unregister_from_origin()
{
	Guard g(m_entry->lock);
	for (Snapshot **link = &m_entry->snapshots; *link; link = &(*link)->next_in_origin)
		if (*link == this) {
			*link = next_in_origin;
			break;
		}
	next_in_origin = nullptr;
	m_registered = false;
	m_entry->update_min_chunk();
}

void Snapshot::quiesce_dec(Atomic<u64> &count)
{
	/* The destructor takes this lock after its wait: nobody is past the decrement inside. */
	Guard g(m_quiesce_lock);
	if (count.fetch_sub(1, Order::AcqRel) == 1)
		m_quiesce.wake_all();
}

Snapshot::~Snapshot()
{
	if (m_merge_wq)
		stop_merge();
	if (m_registered) {
		/* A source going away before its handover: the destination cannot be trusted. */
		Guard g(m_entry->lock);
		for (Snapshot *s = m_entry->snapshots; s; s = s->next_in_origin)
			if (s != this && s->m_cow == m_cow && s->m_handover_dest && active()) {
				s->m_state.store(u8(SnapState::Invalid), Order::Release);
				dmxx_log(DMXX_LOG_ERR, "snapshots: Cancelling snapshot handover.");
			}
	}
	/* No new copies, no new sleepers from here on. */
	if (m_registered)
		unregister_from_origin();
	m_throttle.close();
	m_quiesce.wait([this] {
		return m_pending.load(Order::Acquire) == 0 && m_users.load(Order::Acquire) == 0;
	});
	{
		Guard g(m_quiesce_lock);
	}
	if (m_store)
		m_store->flush(); /* an invalidation's header write and its callback */
	if (m_merge_wq)
		dmxx_wq_destroy(m_merge_wq);
	if (m_engine_ready)
		m_engine.drain();
	delete m_store;
	if (m_entry)
		origin_put(m_entry);
	if (m_cow_dev)
		dmxx_dm_put_device(m_ti, m_cow_dev);
	if (m_origin_dev)
		dmxx_dm_put_device(m_ti, m_origin_dev);
}

/* ---- the snapshot target's I/O -------------------------------------------------------------- */

void Snapshot::remap_cow(bio *b, chunk_t chunk, chunk_t old_base, chunk_t new_base)
{
	u32 shift = m_store->chunk_shift();
	bio_set_dev(b, m_cow);
	bio_set_sector(b, ((new_base + (chunk - old_base)) << shift) | (bio_sector(b) & m_store->chunk_mask()));
}

MapResult Snapshot::map_snapshot(bio *b)
{
	auto *pb = static_cast<SnapPerBio *>(pf::per_bio_data(b, sizeof(SnapPerBio)));
	TrackedChunks::init_node(&pb->node);

	if (bio_is_flush(b)) {
		bio_set_dev(b, m_cow);
		return MapResult::Remapped;
	}
	if (state() != SnapState::Valid)
		return MapResult::Kill;
	chunk_t chunk = bio_sector(b) >> m_store->chunk_shift();
	if (bio_is_discard(b))
		return discard(b, pb, chunk);
	if (bio_is_write(b))
		return snapshot_write(b, chunk);

	chunk_t nc;
	if (m_tables.lookup_complete_lockless(chunk, &nc)) {
		remap_cow(b, chunk, chunk, nc); /* copied: final */
		return MapResult::Remapped;
	}
	/*
	 * Still the origin's data; a copy of it must not finish under this
	 * read. Track first, then look again, both without the chunk lock: a
	 * finishing copy publishes its exception before it checks for tracked
	 * reads under the tracker's lock, and so does track() here. Whichever
	 * takes that lock second sees the other: the copy waits for this
	 * read, or the second look finds the exception.
	 */
	m_tracked.track(&pb->node, chunk);
	if (m_tables.lookup_complete_lockless(chunk, &nc)) {
		m_tracked.untrack(&pb->node);
		remap_cow(b, chunk, chunk, nc);
		return MapResult::Remapped;
	}
	bio_set_dev(b, m_origin);
	return MapResult::Remapped;
}

MapResult Snapshot::discard(bio *b, SnapPerBio *pb, chunk_t chunk)
{
	u32 cs = m_store->chunk_size();
	u32 into = u32(bio_sector(b) & m_store->chunk_mask());
	if (bio_sectors(b) > cs - into) {
		/*
		 * The kernel's io_hints cap discards at one chunk; here we cut
		 * them ourselves. Duplicated discards (passdown) cannot be cut:
		 * the origin's copy passes whole, the COW's does nothing.
		 */
		if (!m_discard_passdown_origin) {
			pf::accept_partial_bio(b, cs - into);
		} else if (!dmxx_bio_target_nr(b)) {
			bio_complete(b, DMXX_BLK_STS_OK);
			return MapResult::Submitted;
		}
	}
	ChunkLock lk(m_tables, chunk);
	if (m_discard_passdown_origin && dmxx_bio_target_nr(b)) {
		/* The second discard frees origin space; it creates no exceptions. */
		bio_set_dev(b, m_origin);
		m_tracked.track(&pb->node, chunk);
		return MapResult::Remapped;
	}
	chunk_t nc;
	if (!m_tables.lookup_complete(chunk, &nc)) {
		/* Nothing copied: the snapshot still reads the origin; discarding must not copy. */
		lk.unlock();
		bio_complete(b, DMXX_BLK_STS_OK);
		return MapResult::Submitted;
	}
	remap_cow(b, chunk, chunk, nc);
	if (bio_size(b) != (u32(m_store->chunk_size()) << 9))
		return MapResult::Remapped;
	/* A whole copied chunk: zero it in the COW, then complete the discard. */
	lk.unlock();
	m_throttle.acquire_forced();
	get();
	pb->owner = this;
	m_engine.zero(&pb->zero_job, {m_cow, bio_sector(b), m_store->chunk_size()}, &Snapshot::zero_done, b);
	return MapResult::Submitted;
}

void Snapshot::zero_done(CopyJob *job, int error, void *ctx)
{
	auto *b = static_cast<bio *>(ctx);
	auto *pb = reinterpret_cast<SnapPerBio *>(reinterpret_cast<u8 *>(job) -
						   __builtin_offsetof(SnapPerBio, zero_job));
	Snapshot *s = pb->owner;
	s->m_throttle.release();
	bio_complete(b, error ? DMXX_BLK_STS_IOERR : DMXX_BLK_STS_OK);
	s->put();
}

MapResult Snapshot::snapshot_write(bio *b, chunk_t chunk)
{
	PendingException *spare = nullptr;
	bool have_slot = false;
	MapResult result = MapResult::Kill;
	ThrottleMode mode = m_throttle.mode();
	chunk_t copied;
	if (mode == ThrottleMode::Ours && !m_overflowed.load(Order::Relaxed) &&
	    m_tables.lookup_complete_lockless(chunk, &copied)) {
		/* A chunk the snapshot already owns: no lock (state was checked by map). */
		remap_cow(b, chunk, chunk, copied);
		return MapResult::Remapped;
	}
	for (;;) {
		if (mode == ThrottleMode::Kernel2019)
			m_throttle.wait_2019();
		enum { Done, NeedPending, NeedSlot } need = Done;
		PendingException *start = nullptr;
		bool full = false;
		bool full_cow = false;
		{
			ChunkLock lk(m_tables, chunk);
			chunk_t nc;
			PendingException *pe;
			if (state() != SnapState::Valid || m_overflowed.load(Order::Relaxed)) {
				result = MapResult::Kill;
			} else if (m_tables.lookup_complete(chunk, &nc)) {
				remap_cow(b, chunk, chunk, nc);
				result = MapResult::Remapped;
			} else if ((pe = static_cast<PendingException *>(m_tables.lookup_pending(chunk)))) {
				remap_cow(b, chunk, chunk, pe->new_chunk);
				bio_list_add(pe->snapshot_bios, b);
				result = MapResult::Submitted;
			} else if (!spare) {
				need = NeedPending;
			} else if (!have_slot && mode == ThrottleMode::Ours && !m_throttle.try_acquire()) {
				need = NeedSlot;
			} else {
				if (!have_slot && mode != ThrottleMode::Ours)
					m_throttle.acquire_forced();
				have_slot = false;
				if (prepare_pending(spare, chunk).is_error()) {
					m_throttle.release();
					full_cow = true;
				} else {
					pe = spare;
					spare = nullptr;
					remap_cow(b, chunk, chunk, pe->new_chunk);
					full = bio_size(b) == (u32(m_store->chunk_size()) << 9);
					if (!full)
						bio_list_add(pe->snapshot_bios, b);
					start = pe;
					result = MapResult::Submitted;
				}
			}
		}
		if (full_cow) {
			if (m_store->overflow_supported()) {
				if (state() == SnapState::Valid && !m_overflowed.exchange(true))
					dmxx_log(DMXX_LOG_ERR, "snapshots: Snapshot overflowed: Unable to allocate exception.");
			} else {
				invalidate(-ENOMEM);
			}
			result = MapResult::Kill;
			break;
		}
		if (need == Done) {
			if (start && full)
				start_full_bio(start, b);
			else if (start)
				start_copy(start);
			break;
		}
		if (need == NeedPending) {
			spare = alloc_pending(); /* nothing is locked */
			continue;
		}
		if (m_throttle.wait_for_grant() == CowThrottle::Wait::Granted)
			have_slot = true;
	}
	if (spare)
		free_pending_memory(spare);
	if (have_slot)
		m_throttle.release();
	return result;
}

EndioResult Snapshot::end_io(bio *b, u8 *)
{
	auto *pb = static_cast<SnapPerBio *>(pf::per_bio_data(b, sizeof(SnapPerBio)));
	if (TrackedChunks::is_tracked(&pb->node))
		m_tracked.untrack(&pb->node);
	return EndioResult::Done;
}

/* ---- pending exceptions ------------------------------------------------------------------------ */

Result<void> Snapshot::prepare_pending(PendingException *pe, chunk_t chunk)
{
	{
		Guard g(m_store->alloc_lock);
		pe->new_chunk = TRY(m_store->prepare_exception());
		pe->seq = m_next_seq++;
	}
	pe->old_chunk = chunk;
	pe->hash_next = nullptr;
	pe->snap = this;
	pe->order_next = nullptr;
	pe->origin_bios = {};
	pe->snapshot_bios = {};
	pe->full_bio = nullptr;
	pe->copy_error = 0;
	m_pending.fetch_add(1, Order::Relaxed);
	m_tables.insert_pending(pe);
	return {};
}

/* What the copy for @pe reads: its chunk of the origin (count 0 past the origin's end). */
CopyRegion Snapshot::copy_source(const PendingException *pe) const
{
	sector_t from = sector_t(pe->old_chunk) << m_store->chunk_shift();
	sector_t size = dmxx_bdev_nr_sectors(m_origin);
	sector_t count = m_store->chunk_size();
	if (from >= size)
		count = 0;
	else if (size - from < count)
		count = size - from; /* the origin's last, partial chunk */
	return {m_origin, from, count};
}

CopyRegion Snapshot::copy_dest(const PendingException *pe) const
{
	return {m_cow, sector_t(pe->new_chunk) << m_store->chunk_shift(), 0};
}

void Snapshot::start_copy(PendingException *pe)
{
	CopyRegion src = copy_source(pe);
	if (!src.count) {
		m_engine.complete_external(&pe->job, 0, &Snapshot::copy_done, pe);
		return;
	}
	m_engine.copy(&pe->job, src, copy_dest(pe), &Snapshot::copy_done, pe);
}

/*
 * @n copies of one origin range: one engine reads it and writes every COW.
 * The lead rotates with the chunk so that, with N snapshots, the N engines
 * (and their workers) share the work. Each member is called back on its
 * own snapshot's engine: commit order and draining are as for start_copy.
 */
void Snapshot::start_group(PendingException **group, unsigned n)
{
	if (n == 1 || !group[0]->snap->copy_source(group[0]).count) {
		for (unsigned i = 0; i < n; i++)
			group[i]->snap->start_copy(group[i]);
		return;
	}
	unsigned lead = unsigned(group[0]->old_chunk % n);
	CopyJob *also = nullptr;
	for (unsigned i = 0; i < n; i++) {
		if (i == lead)
			continue;
		Snapshot *s = group[i]->snap;
		also = s->m_engine.attach(&group[i]->job, s->copy_dest(group[i]), &Snapshot::copy_done,
					  group[i], also);
	}
	PendingException *pe = group[lead];
	Snapshot *s = pe->snap;
	s->m_engine.copy(&pe->job, s->copy_source(pe), s->copy_dest(pe), &Snapshot::copy_done, pe, also);
}

void Snapshot::start_copies(PendingException *list)
{
	/* Cut the list into per-snapshot runs; more runs than we track start one by one. */
	constexpr unsigned max_runs = 16;
	PendingException *run[max_runs];
	unsigned runs = 0;
	while (list) {
		PendingException *tail = list;
		while (tail->start_next && tail->start_next->snap == list->snap)
			tail = tail->start_next;
		PendingException *head = list;
		list = tail->start_next;
		tail->start_next = nullptr;
		if (runs < max_runs) {
			run[runs++] = head;
			continue;
		}
		while (head) {
			PendingException *next = head->start_next;
			head->snap->start_copy(head);
			head = next;
		}
	}
	/* Merge the runs by origin range; equal ranges (same chunk size) go as one group. */
	for (;;) {
		int best = -1;
		CopyRegion key{};
		for (unsigned i = 0; i < runs; i++) {
			if (!run[i])
				continue;
			CopyRegion r = run[i]->snap->copy_source(run[i]);
			if (best < 0 || r.sector < key.sector || (r.sector == key.sector && r.count < key.count)) {
				best = int(i);
				key = r;
			}
		}
		if (best < 0)
			return;
		PendingException *group[CopyEngine::max_fanout];
		unsigned n = 0;
		for (unsigned i = unsigned(best); i < runs && n < CopyEngine::max_fanout; i++) {
			if (!run[i])
				continue;
			CopyRegion r = run[i]->snap->copy_source(run[i]);
			if (r.sector != key.sector || r.count != key.count)
				continue;
			group[n++] = run[i];
			run[i] = run[i]->start_next;
		}
		start_group(group, n);
	}
}

/* A snapshot write covering the whole chunk is its own copy. */
void Snapshot::start_full_bio(PendingException *pe, bio *b)
{
	pe->full_bio = b;
	pe->full_end_io = pf::bio_end_io(b);
	pe->full_private = pf::bio_private(b);
	pf::bio_set_end_io(b, &Snapshot::full_bio_end_io);
	pf::bio_set_private(b, pe);
	dmxx_submit_bio(b);
}

void Snapshot::full_bio_end_io(bio *b)
{
	auto *pe = static_cast<PendingException *>(pf::bio_private(b));
	pe->snap->m_engine.complete_external(&pe->job, bio_status(b) ? -EIO : 0, &Snapshot::copy_done, pe);
}

void Snapshot::copy_done(CopyJob *, int error, void *ctx)
{
	auto *pe = static_cast<PendingException *>(ctx);
	pe->snap->copy_finished(pe, error);
}

/* Engine worker. Commits go to the store in allocation order. */
void Snapshot::copy_finished(PendingException *pe, int error)
{
	pe->copy_error = error;
	if (m_throttle.mode() != ThrottleMode::Semaphore2018)
		m_throttle.release();

	PendingException **link = &m_reorder;
	while (*link && (*link)->seq < pe->seq)
		link = &(*link)->order_next;
	pe->order_next = *link;
	*link = pe;

	while (m_reorder && m_reorder->seq == m_commit_seq) {
		PendingException *next = m_reorder;
		m_reorder = next->order_next;
		m_commit_seq++;
		next->commit.next = nullptr;
		next->commit.old_chunk = next->old_chunk;
		next->commit.new_chunk = next->new_chunk;
		next->commit.copied = next->copy_error == 0;
		next->commit.alone = m_pending.load(Order::Relaxed) == 1;
		next->commit.done = &Snapshot::commit_done;
		next->commit.owner = next;
		m_store->commit_exception(&next->commit);
	}
}

void Snapshot::commit_done(CommitRequest *req, bool success)
{
	auto *pe = static_cast<PendingException *>(req->owner);
	pe->snap->pending_complete(pe, success);
}

/* Store worker (or engine worker for N): the copy is durable, or failed. */
void Snapshot::pending_complete(PendingException *pe, bool success)
{
	bool ok = success;
	CompleteException *e = nullptr;
	if (!success) {
		invalidate(-EIO);
	} else {
		e = new (AllocMode::NoIO) CompleteException(pe->old_chunk, pe->new_chunk);
		if (!e) {
			invalidate(-ENOMEM);
			ok = false;
		}
	}

	dmxx_bio_list origin_bios, snapshot_bios;
	{
		ChunkLock lk(m_tables, pe->old_chunk);
		if (ok && state() == SnapState::Valid) {
			/*
			 * From here on snapshot reads of the chunk go to the COW,
			 * and the origin waits for the reads that went there
			 * before. Origin writes that come meanwhile must wait too:
			 * under the chunk lock they find this exception still
			 * pending; without it they find m_draining raised (before
			 * the release that publishes the chunk) and take the lock.
			 */
			m_draining.fetch_add(1, Order::Relaxed);
			if (m_tables.insert_complete(e).is_error())
				dmxx_fatal("snapshot: a pending chunk was already complete");
			e = nullptr;
			if (m_tracked.busy(pe->old_chunk)) {
				lk.unlock();
				m_tracked.wait_idle(pe->old_chunk);
				lk.lock();
			}
			m_draining.fetch_sub(1, Order::Release);
		} else {
			ok = false;
		}
		m_tables.remove_pending(pe);
		origin_bios = pe->origin_bios;
		snapshot_bios = pe->snapshot_bios;
	}
	delete e;

	if (bio *full = pe->full_bio) {
		pf::bio_set_end_io(full, pe->full_end_io);
		pf::bio_set_private(full, pe->full_private);
		if (!ok)
			bio_set_status(full, DMXX_BLK_STS_IOERR);
		dmxx_bio_endio(full);
	}
	while (bio *b = bio_list_pop(snapshot_bios)) {
		if (ok)
			dmxx_submit_bio(b);
		else
			bio_complete(b, DMXX_BLK_STS_IOERR);
	}
	if (m_throttle.mode() == ThrottleMode::Semaphore2018) {
		/* 2018: retry here, then up(): the retry's down_read is where it deadlocked. */
		while (bio *b = bio_list_pop(origin_bios))
			if (origin_write(m_entry, b, WalkMode::Retry) == MapResult::Remapped)
				dmxx_submit_bio(b);
		m_throttle.release();
	} else {
		retry_origin_bios(origin_bios);
	}
	free_pending(pe);
}

/*
 * Origin writes that waited for this exception: walk each again here, as
 * the kernel does in its copy callback, saving a hop through the retry
 * worker (at queue depth 1 that hop is a good part of the write's latency).
 * Whatever would have to sleep goes to the retry worker after all.
 */
void Snapshot::retry_origin_bios(dmxx_bio_list &bios)
{
	dmxx_bio_list later = {};
	while (bio *b = bio_list_pop(bios)) {
		switch (origin_write_inline(m_entry, b)) {
		case RetryResult::Remapped:
			g_registry->retried_inline.fetch_add(1, Order::Relaxed);
			dmxx_submit_bio(b);
			break;
		case RetryResult::Queued:
			g_registry->retried_inline.fetch_add(1, Order::Relaxed);
			break;
		case RetryResult::WouldBlock:
			bio_list_add(later, b);
			break;
		}
	}
	m_entry->retry_bios(later);
}

void Snapshot::free_pending(PendingException *pe)
{
	free_pending_memory(pe);
	Registry *r = g_registry;
	r->pending_done.fetch_add(1, Order::AcqRel);
	r->pending_done_wait.wake_all();
	quiesce_dec(m_pending); /* last: the destructor may run once this is 0 */
}

/* ---- invalidation ------------------------------------------------------------------------------- */

void Snapshot::invalidate(int error)
{
	{
		Guard g(m_state_lock);
		if (state() != SnapState::Valid)
			return;
		m_state.store(u8(SnapState::Invalidating), Order::Release);
	}
	if (error == -EIO)
		dmxx_log(DMXX_LOG_ERR, "snapshots: Invalidating snapshot: Error reading/writing.");
	else if (error == -ENOMEM)
		dmxx_log(DMXX_LOG_ERR, "snapshots: Invalidating snapshot: Unable to allocate exception.");
	get(); /* until the store says the invalid mark is durable */
	m_store->drop_snapshot(&Snapshot::invalidation_durable, this);
	dmxx_dm_table_event(m_ti);
}

void Snapshot::invalidation_durable(void *ctx)
{
	auto *s = static_cast<Snapshot *>(ctx);
	dmxx_bio_list waiters;
	{
		Guard g(s->m_state_lock);
		s->m_state.store(u8(SnapState::Invalid), Order::Release);
		waiters = s->m_invalidation_waiters;
		s->m_invalidation_waiters = {};
	}
	s->m_entry->retry_bios(waiters);
	s->put();
}

bool Snapshot::wait_for_invalidation(bio *b)
{
	Guard g(m_state_lock);
	if (state() != SnapState::Invalidating)
		return false;
	bio_list_add(m_invalidation_waiters, b);
	return true;
}

/* ---- resume, status, devices -------------------------------------------------------------------- */

Result<void> Snapshot::preresume()
{
	SharedGuard g(m_entry->lock);
	Snapshot *src = nullptr, *dest = nullptr;
	for (Snapshot *s = m_entry->snapshots; s; s = s->next_in_origin) {
		if (s->m_cow != m_cow)
			continue;
		if (s->active())
			src = s;
		else if (s->m_handover_dest)
			dest = s;
	}
	if (src && dest) {
		if (src == this) {
			dmxx_log(DMXX_LOG_ERR, "snapshots: Unable to resume snapshot source until handover completes.");
			return err(EINVAL);
		}
		if (!src->m_suspended.load(Order::Acquire)) {
			dmxx_log(DMXX_LOG_ERR, "snapshots: Unable to perform snapshot handover until source is suspended.");
			return err(EINVAL);
		}
	}
	return {};
}

/*
 * Take the source's exceptions and store. Origin walks are shut out by the
 * entry lock; the source is suspended; its copies in flight are waited for
 * (they finish without that lock), so nothing references what moves.
 */
void Snapshot::take_over_from_source()
{
	Guard g(m_entry->lock);
	if (!m_handover_dest)
		return;
	m_handover_dest = false;
	Snapshot *src = nullptr;
	for (Snapshot *s = m_entry->snapshots; s; s = s->next_in_origin)
		if (s != this && s->m_cow == m_cow && s->active())
			src = s;
	if (!src)
		return; /* the source was cancelled: our state says so already */
	src->m_quiesce.wait([src] { return src->m_pending.load(Order::Acquire) == 0; });
	{
		Guard a(src->m_state_lock);
		Guard b(m_state_lock);
		m_tables.swap(src->m_tables);
		bool overflow = m_store->overflow_supported();
		ExceptionStore *mine = m_store;
		m_store = src->m_store;
		src->m_store = mine;
		m_store->set_overflow_supported(overflow);
		m_state.store(src->m_state.load(), Order::Release);
		m_overflowed.store(src->m_overflowed.load());
		/* The source gets no further I/O. */
		src->m_state.store(u8(SnapState::Invalid), Order::Release);
	}
	dmxx_ti_config cfg{};
	cfg.num_flush_bios = m_merge ? 2 : 1;
	if (m_discard_zeroes_cow)
		cfg.num_discard_bios = m_discard_passdown_origin ? 2 : 1;
	cfg.max_io_len = m_store->chunk_size();
	(void)ti_configure<Snapshot>(m_ti, cfg);
}

void Snapshot::resume()
{
	take_over_from_source();
	reposition_in_origin();
	m_suspended.store(false, Order::Release);
	m_active.store(true, Order::Release);
}

void Snapshot::status(StatusType type, unsigned, StatusWriter &out)
{
	Guard g(m_state_lock); /* m_store may change hands at a handover */
	switch (type) {
	case StatusType::Info:
		if (state() != SnapState::Valid) {
			out.emit("Invalid");
		} else if (m_merge_failed.load()) {
			out.emit("Merge failed");
		} else if (m_overflowed.load()) {
			out.emit("Overflow");
		} else {
			Usage u = m_store->usage();
			out.emit("%llu/%llu %llu", (unsigned long long)u.allocated, (unsigned long long)u.total,
				 (unsigned long long)u.metadata);
		}
		break;
	case StatusType::Table: {
		out.emit("%s %s", dmxx_dm_dev_name(m_origin_dev), dmxx_dm_dev_name(m_cow_dev));
		m_store->emit_table(out);
		unsigned n = unsigned(m_discard_zeroes_cow) + unsigned(m_discard_passdown_origin);
		if (n) {
			out.emit(" %u", n);
			if (m_discard_zeroes_cow)
				out.emit(" discard_zeroes_cow");
			if (m_discard_passdown_origin)
				out.emit(" discard_passdown_origin");
		}
		break;
	}
	case StatusType::Ima:
		out.emit(",snap_origin_name=%s", dmxx_dm_dev_name(m_origin_dev));
		out.emit(",snap_cow_name=%s", dmxx_dm_dev_name(m_cow_dev));
		out.emit(",snap_valid=%c", state() == SnapState::Valid ? 'y' : 'n');
		out.emit(",snap_merge_failed=%c", m_merge_failed.load() ? 'y' : 'n');
		out.emit(",snapshot_overflowed=%c", m_overflowed.load() ? 'y' : 'n');
		out.emit(";");
		break;
	}
}

int Snapshot::iterate_devices(dmxx_iterate_fn fn, void *data)
{
	int r = fn(m_ti, m_origin_dev, 0, pf::ti_len(m_ti), data);
	if (!r)
		r = fn(m_ti, m_cow_dev, 0, dmxx_bdev_nr_sectors(m_cow), data);
	return r;
}

} // namespace dmxx::snap
