/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Origins and their snapshots.
 *
 * One OriginEntry per origin block device, shared by the snapshot-origin
 * target writing to it and every snapshot (and snapshot-merge) of it, each
 * holding a reference. The entry's rwsem guards its snapshot list: origin
 * writes walk the list holding it for read, constructors and destructors
 * change it holding it for write. It is per origin, so writers to one
 * origin never contend with another origin's, and the origin write path
 * never sleeps while holding it (see origin_write.cpp): that is what makes
 * the 2019 deadlock impossible, a writer-preferring rwsem notwithstanding.
 *
 * The registry itself (hash of entries, their mutex, the pending-exception
 * pool, the retry workqueue) is allocated at module init: static storage
 * holds only a constant-initialised pointer.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/platform.h>
#include <dmxx/result.h>
#include <dmxx/wait.h>

#include "mempool.h"

namespace dmxx::snap {

class Snapshot;

struct OriginEntry {
	OriginEntry *hash_next;
	block_device *bdev;
	unsigned refs; /* guarded by the registry mutex */

	RwSem lock;                   /* guards the list below */
	Snapshot *snapshots = nullptr; /* largest chunk size first, as the kernel keeps them */
	Atomic<u32> min_chunk{0};     /* smallest chunk size among them (0: none) */

	/*
	 * Origin bios released by a finished copy are walked again (other
	 * snapshots may still need copies). The thread that finished the copy
	 * does it only if it can without sleeping (WalkMode::Inline): it is one
	 * of those that free pending exceptions and end a writer's hold on the
	 * rwsem. Otherwise the bio goes to the retry worker, which may sleep.
	 */
	SpinLock retry_lock;
	dmxx_bio_list retry = {};
	struct RetryWork {
		dmxx_work work; /* first: the work function casts back */
		OriginEntry *entry;
	} retry_work;

	/* Recompute min_chunk; entry lock held for write. */
	void update_min_chunk();
	/* Queue @list for the retry worker (any process context). */
	void retry_bios(dmxx_bio_list &list);
};

class Registry {
public:
	static constexpr unsigned nr_buckets = 256;

	Mutex lock;
	OriginEntry *buckets[nr_buckets] = {};
	dmxx_workqueue *retry_wq = nullptr;
	Mempool pending_pool; /* every snapshot's pending exceptions */

	/* Released origin bios walked again by the completing thread / by the retry worker. */
	Atomic<u64> retried_inline{0};
	Atomic<u64> retried_by_worker{0};

	/* Bumped whenever any pending exception finishes (the merge waits on it). */
	Atomic<u64> pending_done{0};
	WaitQueue pending_done_wait;
};

/* The module's registry, set by registry_init(); nullptr before and after. */
extern constinit Registry *g_registry;

Result<void> registry_init(unsigned pending_size);
void registry_exit();

/* The entry for @bdev, created if needed, with a reference. -ENOMEM. */
Result<OriginEntry *> origin_get(block_device *bdev);
void origin_put(OriginEntry *o);

} // namespace dmxx::snap
