// SPDX-License-Identifier: GPL-2.0
#include "exception_table.h"

#include <dmxx/new.h>
#include <dmxx/platform.h>

namespace dmxx {
template <typename T> static void swap_values(T &a, T &b)
{
	T t = a;
	a = b;
	b = t;
}
} // namespace dmxx

namespace dmxx::snap {

static u64 round_down_pow2(u64 v)
{
	u64 p = 1;
	while (p <= v / 2)
		p <<= 1;
	return p;
}

/*
 * The kernel's sizing: one complete-table bucket per COW chunk, at most
 * 2 MiB of bucket heads, at least 64; the pending table an eighth of that.
 */
Result<void> ExceptionTables::init(u64 cow_chunks)
{
	constexpr u64 max_buckets = (2ull << 20) / sizeof(void *);
	u64 size = cow_chunks < max_buckets ? cow_chunks : max_buckets;
	if (size < 64)
		size = 64;
	size = round_down_pow2(size);
	u64 pending = size >> 3 < 64 ? 64 : size >> 3;

	m_complete = static_cast<CompleteException **>(
		dmxx_kvzalloc(size * sizeof(*m_complete), DMXX_ALLOC_SLEEP));
	if (!m_complete)
		return err(ENOMEM);
	m_pending = static_cast<PendingLink **>(dmxx_kvzalloc(pending * sizeof(*m_pending), DMXX_ALLOC_SLEEP));
	if (!m_pending)
		return err(ENOMEM);
	m_complete_mask = size - 1;
	m_pending_mask = pending - 1;

	m_stripes = unsigned(pending < max_stripes ? pending : max_stripes);
	m_locks = new (AllocMode::Sleep) SpinLock[2 * m_stripes];
	if (!m_locks)
		return err(ENOMEM);
	return {};
}

void ExceptionTables::swap(ExceptionTables &o)
{
	dmxx::swap_values(m_complete, o.m_complete);
	dmxx::swap_values(m_pending, o.m_pending);
	dmxx::swap_values(m_complete_mask, o.m_complete_mask);
	dmxx::swap_values(m_pending_mask, o.m_pending_mask);
	dmxx::swap_values(m_locks, o.m_locks);
	dmxx::swap_values(m_stripes, o.m_stripes);
	u64 mine = m_complete_chunks.load(Order::Relaxed);
	m_complete_chunks.store(o.m_complete_chunks.load(Order::Relaxed), Order::Relaxed);
	o.m_complete_chunks.store(mine, Order::Relaxed);
}

ExceptionTables::~ExceptionTables()
{
	if (m_complete) {
		for (u64 i = 0; i <= m_complete_mask; i++) {
			CompleteException *e = m_complete[i];
			while (e) {
				CompleteException *n = e->next;
				delete e;
				e = n;
			}
			if ((i & 4095) == 4095)
				dmxx_cond_resched();
		}
	}
	dmxx_kvfree(m_complete);
	dmxx_kvfree(m_pending);
	delete[] m_locks;
}

bool ExceptionTables::lookup_complete(chunk_t chunk, chunk_t *new_chunk) const
{
	for (CompleteException *e = m_complete[complete_bucket(chunk)]; e; e = e->next) {
		if (chunk < e->old_chunk)
			return false; /* sorted: it is not further along */
		if (chunk - e->old_chunk <= e->extra) {
			*new_chunk = chunk + e->cow_offset;
			return true;
		}
	}
	return false;
}

bool ExceptionTables::lookup_complete_lockless(chunk_t chunk, chunk_t *new_chunk) const
{
	const CompleteException *e = load_once(&m_complete[complete_bucket(chunk)], Order::Acquire);
	for (; e; e = load_once(&e->next, Order::Acquire)) {
		u32 extra = load_once(&e->extra, Order::Acquire); /* before old_chunk: see the header */
		chunk_t first = load_once(&e->old_chunk, Order::Acquire);
		if (chunk < first)
			return false;
		if (chunk - first <= extra) {
			*new_chunk = chunk + e->cow_offset;
			return true;
		}
	}
	return false;
}

/*
 * Under ChunkLock. Stores to linked runs go through store_once (lock-free
 * readers load them); a new run is fully built before the release store
 * that links it.
 */
Result<void> ExceptionTables::insert_complete(CompleteException *n)
{
	CompleteException **link = &m_complete[complete_bucket(n->old_chunk)];
	n->extra = 0;
	for (CompleteException *e = *link; e; link = &e->next, e = *link) {
		if (n->old_chunk >= e->old_chunk && n->old_chunk - e->old_chunk <= e->extra)
			return err(EEXIST);
		if (n->cow_offset == e->cow_offset) {
			/* Right after this run, in both spaces: extend it. */
			if (n->old_chunk == e->old_chunk + e->extra + 1) {
				store_once(&e->extra, e->extra + 1, Order::Release);
				delete n;
				m_complete_chunks.fetch_add(1, Order::Relaxed);
				return {};
			}
			/* Right before it: grow it downwards (start first, then length). */
			if (n->old_chunk + 1 == e->old_chunk) {
				store_once(&e->old_chunk, n->old_chunk, Order::Release);
				store_once(&e->extra, e->extra + 1, Order::Release);
				delete n;
				m_complete_chunks.fetch_add(1, Order::Relaxed);
				return {};
			}
		}
		if (n->old_chunk < e->old_chunk)
			break;
	}
	n->next = *link;
	store_once(link, n, Order::Release);
	m_complete_chunks.fetch_add(1, Order::Relaxed);
	return {};
}

/* Under ChunkLock, on tables nobody reads without it (merging). */
Result<void> ExceptionTables::remove_complete(chunk_t chunk, CompleteException **spare)
{
	CompleteException **link = &m_complete[complete_bucket(chunk)];
	for (CompleteException *e = *link; e; link = &e->next, e = *link) {
		if (chunk < e->old_chunk)
			break;
		chunk_t off = chunk - e->old_chunk;
		if (off > e->extra)
			continue;
		if (e->extra == 0) {
			store_once(link, e->next, Order::Relaxed);
			delete e;
		} else if (off == 0) {
			store_once(&e->old_chunk, e->old_chunk + 1, Order::Relaxed);
			store_once(&e->extra, e->extra - 1, Order::Relaxed);
		} else if (off == e->extra) {
			store_once(&e->extra, e->extra - 1, Order::Relaxed);
		} else {
			/* The middle of a run: the tail becomes a run of its own. */
			CompleteException *tail = *spare;
			if (!tail)
				return err(ENOMEM);
			*spare = nullptr;
			tail->old_chunk = chunk + 1;
			tail->cow_offset = e->cow_offset;
			tail->extra = u32(e->extra - off - 1);
			tail->next = e->next;
			store_once(&e->extra, u32(off - 1), Order::Relaxed);
			store_once(&e->next, tail, Order::Release);
		}
		m_complete_chunks.fetch_sub(1, Order::Relaxed);
		return {};
	}
	return err(ENOENT);
}

PendingLink *ExceptionTables::lookup_pending(chunk_t chunk) const
{
	for (PendingLink *p = m_pending[pending_bucket(chunk)]; p; p = p->hash_next)
		if (p->old_chunk == chunk)
			return p;
	return nullptr;
}

void ExceptionTables::insert_pending(PendingLink *p)
{
	PendingLink **head = &m_pending[pending_bucket(p->old_chunk)];
	p->hash_next = *head;
	*head = p;
}

void ExceptionTables::remove_pending(PendingLink *p)
{
	for (PendingLink **link = &m_pending[pending_bucket(p->old_chunk)]; *link; link = &(*link)->hash_next)
		if (*link == p) {
			*link = p->hash_next;
			p->hash_next = nullptr;
			return;
		}
	dmxx_fatal("snapshot: pending exception missing from its table");
}

} // namespace dmxx::snap
