// SPDX-License-Identifier: GPL-2.0
#include "origin_registry.h"

#include <dmxx/bio_list.h>
#include <dmxx/new.h>

#include "snapshot.h"

namespace dmxx::snap {

constinit Registry *g_registry = nullptr;

/* Enough for bursts without the allocator; the pool refills as copies finish. */
static constexpr unsigned pending_reserve = 256;

Result<void> registry_init(unsigned pending_size)
{
	auto *r = new (AllocMode::Sleep) Registry();
	if (!r)
		return err(ENOMEM);
	auto pool = r->pending_pool.init(pending_size, pending_reserve);
	if (pool.is_error()) {
		delete r;
		return pool.error();
	}
	r->retry_wq = dmxx_wq_create("dmxx_snap_retry", DMXX_WQ_MEM_RECLAIM);
	if (!r->retry_wq) {
		delete r;
		return err(ENOMEM);
	}
	g_registry = r;
	return {};
}

void registry_exit()
{
	Registry *r = g_registry;
	if (!r)
		return;
	for (unsigned i = 0; i < Registry::nr_buckets; i++)
		if (r->buckets[i])
			dmxx_fatal("snapshot registry: origin still registered at exit");
	dmxx_wq_destroy(r->retry_wq);
	g_registry = nullptr;
	delete r;
}

static unsigned bucket_of(block_device *bdev)
{
	uptr p = reinterpret_cast<uptr>(bdev);
	return unsigned((p >> 6) ^ (p >> 14)) & (Registry::nr_buckets - 1);
}

Result<OriginEntry *> origin_get(block_device *bdev)
{
	Registry *r = g_registry;
	/* Allocated before the mutex: a sleeping allocation under it would stall every table load. */
	auto *fresh = new (AllocMode::Sleep) OriginEntry();
	Guard g(r->lock);
	OriginEntry **head = &r->buckets[bucket_of(bdev)];
	for (OriginEntry *o = *head; o; o = o->hash_next)
		if (o->bdev == bdev) {
			o->refs++;
			delete fresh;
			return o;
		}
	if (!fresh)
		return err(ENOMEM);
	fresh->bdev = bdev;
	fresh->refs = 1;
	fresh->retry_work.entry = fresh;
	dmxx_work_init(&fresh->retry_work.work, &origin_retry_work);
	fresh->hash_next = *head;
	*head = fresh;
	return fresh;
}

void origin_put(OriginEntry *o)
{
	Registry *r = g_registry;
	{
		Guard g(r->lock);
		if (--o->refs)
			return;
		for (OriginEntry **link = &r->buckets[bucket_of(o->bdev)]; *link; link = &(*link)->hash_next)
			if (*link == o) {
				*link = o->hash_next;
				break;
			}
	}
	/* Its retry work may still be finishing a run that found the list empty. */
	dmxx_flush_workqueue(r->retry_wq);
	if (o->snapshots || o->retry.head)
		dmxx_fatal("snapshot registry: origin entry freed while in use");
	delete o;
}

void OriginEntry::update_min_chunk()
{
	u32 min = 0;
	for (Snapshot *s = snapshots; s; s = s->next_in_origin) {
		u32 cs = s->chunk_size();
		if (cs && (!min || cs < min))
			min = cs;
	}
	min_chunk.store(min, Order::Release);
}

void OriginEntry::retry_bios(dmxx_bio_list &list)
{
	if (!list.head)
		return;
	u64 n = 0;
	for (bio *b = list.head; b; b = pf::bio_next(b))
		n++;
	g_registry->retried_by_worker.fetch_add(n, Order::Relaxed);
	{
		Guard g(retry_lock);
		bio_list_merge(retry, list);
	}
	dmxx_queue_work(g_registry->retry_wq, &retry_work.work);
}

PendingException *alloc_pending()
{
	/* NoIO: sleeps for a free element if the allocator and the reserve are dry. */
	return static_cast<PendingException *>(g_registry->pending_pool.alloc(AllocMode::NoIO));
}

PendingException *alloc_pending_nowait()
{
	return static_cast<PendingException *>(g_registry->pending_pool.alloc(AllocMode::NoWait));
}

void free_pending_memory(PendingException *pe) { g_registry->pending_pool.free(pe); }

} // namespace dmxx::snap
