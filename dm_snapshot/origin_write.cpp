// SPDX-License-Identifier: GPL-2.0
/*
 * The origin write path: before a write reaches the origin, every active
 * snapshot of it must hold a copy of the chunks it overwrites.
 *
 * A walk holds the origin entry's rwsem for read and, per snapshot and
 * chunk not yet copied there, that chunk's spinlock (copied chunks are
 * looked up without it); it never sleeps holding either. When it
 * needs something it cannot get without sleeping -- a pending exception
 * from the pool, or a throttle slot -- it gives up the pass, drops every
 * lock, sleeps for that one thing, and walks again (copies it already
 * started are now found pending). The bio is queued on a pending exception
 * only at the end of a pass, so an abandoned pass leaves it nowhere.
 *
 * Why this cannot deadlock (seed 001): a sleeping writer holds no lock, so
 * a constructor waiting for the rwsem in write mode gets it; a pending
 * exception completes and is freed (copy engine worker, store worker)
 * without waiting for the rwsem; origin bios it releases are walked again
 * right there only if that needs no sleep at all (rwsem trylock, pool
 * without waiting: WalkMode::Inline), else on the retry worker, whose
 * sleeps (pool only) are ended by those workers.
 */
#include <dmxx/bio_list.h>

#include "snapshot.h"

namespace dmxx::snap {

namespace {

/* What a walk carries between passes. */
struct WalkState {
	PendingException *spare = nullptr; /* allocated while nothing was locked */
	Snapshot *granted = nullptr;       /* a throttle slot we hold there (and a reference) */
	PendingException *to_start = nullptr; /* copies prepared by this pass, in order */
	PendingException **to_start_tail = &to_start;
};

enum class Pass : u8 { Done, NeedPending, NeedSlot, Again, WouldBlock };

struct PassResult {
	Pass pass;
	Snapshot *wait_on = nullptr; /* NeedSlot: whose throttle (referenced) */
	bool queued = false;         /* Done: the bio waits somewhere */
	bool in_flight = false;      /* a copy of the range is in flight (Extent) */
};

/* The chunks of @s that [sector, sector + sectors) touches; false if none (past its end). */
bool chunks_in(const Snapshot *s, sector_t sector, sector_t sectors, chunk_t *first, chunk_t *last)
{
	if (sector >= s->end_sector())
		return false;
	sector_t end = sector + sectors - 1;
	if (end >= s->end_sector())
		end = s->end_sector() - 1;
	*first = sector >> s->chunk_shift();
	*last = end >> s->chunk_shift();
	return true;
}

/* Take a throttle slot in @s for a new copy without sleeping. */
bool take_slot(Snapshot *s, WalkMode mode, WalkState &ws)
{
	CowThrottle &t = s->throttle();
	if (mode != WalkMode::Map || t.mode() == ThrottleMode::Kernel2019) {
		/* Admitted work, or 2019's count-only accounting: never refused here. */
		if (t.mode() != ThrottleMode::Semaphore2018)
			t.acquire_forced();
		return true;
	}
	if (t.mode() == ThrottleMode::Semaphore2018)
		return true; /* 2018 took its slot later, in start_copy (see below) */
	if (ws.granted == s) {
		ws.granted = nullptr;
		s->put(); /* the entry's lock keeps it alive from here */
		return true;
	}
	return t.try_acquire();
}

/*
 * One pass over the snapshots for [sector, sector + sectors). Entry lock
 * held for read. Creates the copies that are missing; if @b, queues it on
 * one pending exception (the first one found) or on an invalidation.
 */
PassResult walk_pass(OriginEntry *o, bio *b, sector_t sector, sector_t sectors, WalkMode mode,
		     WalkState &ws)
{
	PassResult res{Pass::Done};
	Snapshot *wait_snap = nullptr; /* the bio's candidate: a pending copy there... */
	chunk_t wait_chunk = 0;
	Snapshot *invalidating = nullptr; /* ...or a durable invalidation there */

	for (Snapshot *s = o->snapshots; s; s = s->next_in_origin) {
		if (s->is_merge() || !s->active())
			continue;
		SnapState st = s->state();
		if (st == SnapState::Invalid)
			continue;
		if (st == SnapState::Invalidating) {
			if (!invalidating)
				invalidating = s;
			continue;
		}
		chunk_t first, last;
		if (!chunks_in(s, sector, sectors, &first, &last))
			continue;
		for (chunk_t c = first; c <= last; c++) {
			chunk_t ignored;
			/* Copied chunks (the common case once a snapshot has aged) take no lock. */
			if (s->tables().lookup_complete_lockless(c, &ignored) && !s->reads_draining())
				continue;
			ChunkLock lk(s->tables(), c);
			/*
			 * Pending before complete: a finished copy stays pending
			 * while snapshot reads of the origin drain, and this write
			 * must not overtake them.
			 */
			if (s->tables().lookup_pending(c)) {
				res.in_flight = true;
				if (!wait_snap) {
					wait_snap = s;
					wait_chunk = c;
				}
				continue;
			}
			if (s->tables().lookup_complete(c, &ignored))
				continue;
			SnapState now = s->state();
			if (now != SnapState::Valid) {
				/* Invalidated meanwhile: the bio may have to wait for that. */
				if (now == SnapState::Invalidating && !invalidating)
					invalidating = s;
				break;
			}
			/*
			 * Without sleeping first (spinlocks held): with N snapshots
			 * a write needing N copies would otherwise take N + 1
			 * passes. Only a dry pool makes the walk drop everything.
			 */
			if (!ws.spare)
				ws.spare = alloc_pending_nowait();
			if (!ws.spare)
				return {Pass::NeedPending};
			if (!take_slot(s, mode, ws)) {
				s->get();
				return {Pass::NeedSlot, s};
			}
			PendingException *pe = ws.spare;
			if (s->prepare_pending(pe, c).is_error()) {
				/* COW full: this snapshot is finished; writes wait for that to be durable. */
				lk.unlock();
				if (s->throttle().mode() != ThrottleMode::Semaphore2018)
					s->throttle().release();
				s->invalidate(-ENOMEM);
				if (!invalidating)
					invalidating = s;
				break;
			}
			ws.spare = nullptr;
			res.in_flight = true;
			if (!wait_snap) {
				wait_snap = s;
				wait_chunk = c;
			}
			lk.unlock();
			if (s->throttle().mode() == ThrottleMode::Semaphore2018) {
				if (mode == WalkMode::Map)
					s->throttle().legacy_down(); /* 2018: down() with the origin lock held */
				else
					s->throttle().acquire_forced();
				s->start_copy(pe); /* 2018 started each copy before the next down() */
				continue;
			}
			/* Started at the end of the pass, with the other snapshots' copies of it. */
			pe->start_next = nullptr;
			*ws.to_start_tail = pe;
			ws.to_start_tail = &pe->start_next;
		}
	}

	if (!b)
		return res;
	/* Queue the bio on its candidate, if that still holds. */
	if (wait_snap) {
		ChunkLock lk(wait_snap->tables(), wait_chunk);
		auto *pe = static_cast<PendingException *>(wait_snap->tables().lookup_pending(wait_chunk));
		if (!pe)
			return {Pass::Again}; /* finished meanwhile: look again */
		bio_list_add(pe->origin_bios, b);
		res.queued = true;
		return res;
	}
	if (invalidating) {
		if (invalidating->wait_for_invalidation(b)) {
			res.queued = true;
			return res;
		}
		return {Pass::Again};
	}
	return res;
}

/* 2019: before anything, sleep (no lock held) while any snapshot is over the limit. */
void wait_like_2019(OriginEntry *o)
{
	for (;;) {
		Snapshot *over = nullptr;
		{
			SharedGuard g(o->lock);
			for (Snapshot *s = o->snapshots; s; s = s->next_in_origin)
				if (s->throttle().mode() == ThrottleMode::Kernel2019 && s->throttle().over_limit_2019()) {
					over = s;
					over->get();
					break;
				}
		}
		if (!over)
			return;
		over->throttle().wait_2019();
		over->put();
	}
}

/*
 * A pass, then the copies it prepared are started, whatever the pass's
 * outcome (a pass given up for a sleep has published some already). Each
 * prepared copy counts in its snapshot's m_pending, which the destructor
 * waits for: every snapshot named here lives until its copy is over.
 */
PassResult pass_and_start(OriginEntry *o, bio *b, sector_t sector, sector_t sectors, WalkMode mode,
			  WalkState &ws)
{
	PassResult r = walk_pass(o, b, sector, sectors, mode, ws);
	if (ws.to_start) {
		Snapshot::start_copies(ws.to_start);
		ws.to_start = nullptr;
		ws.to_start_tail = &ws.to_start;
	}
	return r;
}

PassResult walk(OriginEntry *o, bio *b, sector_t sector, sector_t sectors, WalkMode mode)
{
	WalkState ws;
	PassResult r;
	for (;;) {
		if (mode == WalkMode::Map && kernel2019_throttle_built())
			wait_like_2019(o); /* one more pass over the rwsem: not on the real path */
		if (mode == WalkMode::Inline) {
			/* A writer waits or holds it: not here, the retry worker may sleep. */
			if (!o->lock.try_lock_shared()) {
				r = {Pass::WouldBlock};
				break;
			}
			do
				r = pass_and_start(o, b, sector, sectors, mode, ws);
			while (r.pass == Pass::Again);
			o->lock.unlock_shared();
		} else {
			SharedGuard g(o->lock);
			do
				r = pass_and_start(o, b, sector, sectors, mode, ws);
			while (r.pass == Pass::Again);
		}
		if (r.pass == Pass::Done)
			break;
		if (r.pass == Pass::NeedPending) {
			/* Nothing is locked: Map and Retry may sleep for the pool, Inline may not. */
			ws.spare = mode == WalkMode::Inline ? alloc_pending_nowait() : alloc_pending();
			if (!ws.spare) {
				r = {Pass::WouldBlock};
				break;
			}
			continue;
		}
		/* NeedSlot: never sleep on one snapshot holding another's slot. */
		if (ws.granted) {
			ws.granted->throttle().release();
			ws.granted->put();
			ws.granted = nullptr;
		}
		if (r.wait_on->throttle().wait_for_grant() == CowThrottle::Wait::Granted)
			ws.granted = r.wait_on; /* keeps the reference until used or returned */
		else
			r.wait_on->put();
	}
	if (ws.spare)
		free_pending_memory(ws.spare);
	if (ws.granted) {
		ws.granted->throttle().release(); /* not needed after all: the next sleeper's */
		ws.granted->put();
	}
	return r;
}

/*
 * The common case once snapshots have aged: every chunk of the write is
 * already copied in every snapshot that could need it. Entry lock held for
 * read; no chunk lock, no walk state. Anything else (a chunk to copy or
 * being copied, a snapshot being invalidated) is the walk's business.
 */
bool copied_everywhere(const OriginEntry *o, sector_t sector, sector_t sectors)
{
	for (const Snapshot *s = o->snapshots; s; s = s->next_in_origin) {
		if (s->is_merge() || !s->active())
			continue;
		SnapState st = s->state();
		if (st == SnapState::Invalid)
			continue;
		if (st != SnapState::Valid)
			return false;
		chunk_t first, last;
		if (!chunks_in(s, sector, sectors, &first, &last))
			continue;
		for (chunk_t c = first; c <= last; c++) {
			chunk_t ignored;
			if (!s->tables().lookup_complete_lockless(c, &ignored))
				return false;
		}
		if (s->reads_draining())
			return false; /* a copied chunk may still hold origin writes back */
	}
	return true;
}

} // namespace

MapResult origin_write(OriginEntry *o, bio *b, WalkMode mode)
{
	sector_t sector = bio_sector(b), sectors = bio_sectors(b) ? bio_sectors(b) : 1;
	if (mode == WalkMode::Map && !kernel2019_throttle_built()) {
		o->lock.lock_shared();
		bool done = copied_everywhere(o, sector, sectors);
		o->lock.unlock_shared();
		if (done)
			return MapResult::Remapped;
	}
	PassResult r = walk(o, b, sector, sectors, mode);
	return r.queued ? MapResult::Submitted : MapResult::Remapped;
}

RetryResult origin_write_inline(OriginEntry *o, bio *b)
{
	PassResult r = walk(o, b, bio_sector(b), bio_sectors(b) ? bio_sectors(b) : 1, WalkMode::Inline);
	if (r.pass == Pass::WouldBlock)
		return RetryResult::WouldBlock; /* copies it started stay pending: no harm */
	return r.queued ? RetryResult::Queued : RetryResult::Remapped;
}

bool origin_write_extent(OriginEntry *o, sector_t sector, sector_t sectors)
{
	return walk(o, nullptr, sector, sectors, WalkMode::Extent).in_flight;
}

void origin_retry_work(dmxx_work *w)
{
	OriginEntry *o = reinterpret_cast<OriginEntry::RetryWork *>(w)->entry;
	for (;;) {
		bio *b;
		{
			Guard g(o->retry_lock);
			b = bio_list_pop(o->retry);
		}
		if (!b)
			return;
		if (origin_write(o, b, WalkMode::Retry) == MapResult::Remapped)
			dmxx_submit_bio(b);
	}
}

} // namespace dmxx::snap
