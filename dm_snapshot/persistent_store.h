/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The P / PO exception store: the kernel's on-disk format (format.h), with
 * the kernel's durability rule: a finished copy is reported committed only
 * after the metadata area recording it was written with REQ_PREFLUSH (so
 * the copied data reached stable storage first) and REQ_FUA.
 *
 * Commits are group commits on the store's own worker: everything that
 * arrived while the previous area write was in flight goes out in the next
 * one. (The kernel waits until no copy is in flight or the area is full; we
 * write as soon as the device is free, which batches as well under load and
 * does not hold early copies back behind late ones.) A request marked
 * `alone` that finds the store idle is committed on the caller's thread
 * instead, as the kernel always does: at depth 1 the hop to a worker is a
 * large part of an origin write's latency. One committer at a time either
 * way (m_committing); it drains what others queued before it lets go.
 *
 * When an area fills, the next one is zeroed on disk before the full area is
 * written, so a crash can never leave stale bytes looking like exceptions
 * after a full area. A fresh store zeroes area 0 before writing the header,
 * for the same reason.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/platform.h>
#include <dmxx/wait.h>

#include "bioset.h"
#include "exception_store.h"

namespace dmxx::snap {

/*
 * Tests only: commit areas without REQ_PREFLUSH/REQ_FUA (the bug the crash
 * test must catch). Read when a store is built.
 */
void set_unsafe_commits_for_test(bool on);

class PersistentStore final : public ExceptionStore {
public:
	/* @chunk_sectors 0: the default, or the size recorded on disk. */
	static Result<PersistentStore *> create(block_device *origin, block_device *cow,
						u32 chunk_sectors, bool overflow);
	~PersistentStore() override;

	Result<bool> read_metadata(AddFn add, void *ctx) override;
	Result<chunk_t> prepare_exception() override;
	void commit_exception(CommitRequest *req) override;
	bool supports_merge() const override { return true; }
	Result<unsigned> prepare_merge(chunk_t *last_old, chunk_t *last_new) override;
	Result<void> commit_merge(unsigned n) override;
	void drop_snapshot(DropDoneFn done, void *ctx) override;
	Usage usage() override;
	void emit_table(StatusWriter &out) const override;
	void flush() override;

	/* For tests: where area @n lives, and the layout in use. */
	const AreaLayout &layout() const { return m_layout; }
	/* For tests: area writes done on a caller's thread / on the worker. */
	u64 inline_commits() const { return m_inline_commits.load(Order::Relaxed); }
	u64 worker_commits() const { return m_worker_commits.load(Order::Relaxed); }

private:
	PersistentStore(block_device *origin, block_device *cow, bool overflow);

	Result<void> alloc_buffers();
	void free_buffers();
	Result<void> chunk_io(void *buf, chunk_t chunk, u32 opf);
	Result<void> write_header(bool valid);
	Result<void> read_exceptions(AddFn add, void *ctx);
	void commit_queued(); /* with m_committing taken */
	void commit_batch(CommitRequest *batch);
	void flush_area(CommitRequest *waiting, bool full);

	struct Work {
		dmxx_work work; /* first: the work function casts back */
		PersistentStore *store;
	};
	static void work_fn(dmxx_work *w);
	void run();

	block_device *m_origin;
	block_device *m_cow;
	AreaLayout m_layout;
	u8 *m_area = nullptr;   /* the current metadata area: worker only */
	u8 *m_header = nullptr; /* header chunk image */
	u8 *m_zero = nullptr;   /* a zeroed chunk, to wipe the next area */

	bool m_valid = true;     /* worker (and constructor) */
	bool m_unsafe = false;   /* set_unsafe_commits_for_test() */
	u32 m_version = disk_version;
	Atomic<u64> m_current_area{0};
	u32 m_current_committed = 0; /* entries in m_area: worker / merge worker */
	chunk_t m_next_free = AreaLayout::first_free(); /* guarded by alloc_lock */

	BioSet m_bios;
	dmxx_workqueue *m_wq = nullptr;
	Work m_work;

	SpinLock m_queue_lock; /* the queues below */
	CommitRequest *m_queue_head = nullptr;
	CommitRequest *m_queue_tail = nullptr;
	DropDoneFn m_drop_fn = nullptr;
	void *m_drop_ctx = nullptr;
	bool m_drop_pending = false;
	bool m_committing = false; /* a thread is in commit_queued() */
	bool m_on_worker = false;  /* that thread is the worker (stats only) */
	Atomic<u64> m_inline_commits{0};
	Atomic<u64> m_worker_commits{0};
	WaitQueue m_idle;          /* m_committing went false */
};

} // namespace dmxx::snap
