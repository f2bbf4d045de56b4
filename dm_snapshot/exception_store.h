/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Exception stores: where a snapshot records which chunks it copied.
 *
 *   P   persistent, the kernel's on-disk format (format.h): survives reloads
 *   PO  P, and the snapshot reports "Overflow" instead of going invalid when
 *       a write to the snapshot finds the COW device full
 *   N   transient: in memory only
 *
 * Contexts and locking:
 *  - read_metadata() runs in the table constructor; it may sleep and do I/O.
 *  - prepare_exception() hands out the next free COW chunk. The snapshot
 *    calls it with alloc_lock held (a spinlock: it must not sleep), so the
 *    order of allocation is the order of the sequence numbers the snapshot
 *    assigns under the same lock.
 *  - commit_exception() records a finished copy and later calls req->done
 *    in process context, once the record is durable; possibly before it
 *    returns (the caller's thread may do the commit I/O: process context). The snapshot calls it
 *    in allocation order (it reorders copy completions first), so after a
 *    crash the committed exceptions are a prefix of the allocated chunks and
 *    no COW space leaks.
 *  - drop_snapshot() marks the store invalid for good (persistently for P)
 *    and calls back once that is durable.
 *  - prepare_merge()/commit_merge() are the merge worker's, one at a time.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/result.h>
#include <dmxx/status.h>
#include <dmxx/types.h>

#include "format.h"

namespace dmxx::snap {

struct CommitRequest {
	CommitRequest *next;
	chunk_t old_chunk;
	chunk_t new_chunk;
	bool copied; /* the copy succeeded; false makes the store invalid */
	/*
	 * No other copy of this snapshot is in flight: nothing would join a
	 * group commit, so the store may commit on the caller's thread rather
	 * than hand over to its worker (a hop that costs latency at depth 1).
	 */
	bool alone;
	void *owner; /* the requester's object, for done() */
	/* @success: the exception is durable and the store still valid. Process context. */
	void (*done)(CommitRequest *req, bool success);
};

using DropDoneFn = void (*)(void *ctx);

class ExceptionStore {
public:
	virtual ~ExceptionStore() = default;

	/* Chunk geometry; chunk_size 0 means "not known yet" (P before read_metadata). */
	u32 chunk_size() const { return m_chunk_size.load(Order::Relaxed); }
	u32 chunk_shift() const { return m_chunk_shift.load(Order::Relaxed); }
	u32 chunk_mask() const { return chunk_size() - 1; }
	bool overflow_supported() const { return m_overflow; }
	/* Handover: the overflow reporting of the table that takes the store over. */
	void set_overflow_supported(bool on) { m_overflow = on; }

	/* Calls @add(ctx, old, new) per recorded exception. Ok(true): valid; Ok(false): marked invalid. */
	using AddFn = Result<void> (*)(void *ctx, chunk_t old_chunk, chunk_t new_chunk);
	virtual Result<bool> read_metadata(AddFn add, void *ctx) = 0;

	/* With alloc_lock held. -ENOSPC when the COW device is full. */
	virtual Result<chunk_t> prepare_exception() = 0;
	virtual void commit_exception(CommitRequest *req) = 0;

	virtual bool supports_merge() const { return false; }
	/* The newest still-recorded exception and how many consecutive ones precede it; 0: empty. */
	virtual Result<unsigned> prepare_merge(chunk_t *, chunk_t *) { return err(EOPNOTSUPP); }
	/* Forget the newest @n exceptions, durably. */
	virtual Result<void> commit_merge(unsigned) { return err(EOPNOTSUPP); }

	virtual void drop_snapshot(DropDoneFn done, void *ctx) = 0;
	/* Takes alloc_lock itself. */
	virtual Usage usage() = 0;
	/* The store's part of the TABLE status line, e.g. " P 16". */
	virtual void emit_table(StatusWriter &out) const = 0;
	/* Wait for background metadata work queued so far (destructor, tests). */
	virtual void flush() {}

	/* Guards the allocation state (next free chunk). */
	SpinLock alloc_lock;

protected:
	/* Set while constructing; read by origin walks and status of other tables meanwhile. */
	void set_chunk_size(u32 sectors)
	{
		m_chunk_shift.store(sectors ? u32(__builtin_ctz(sectors)) : 0, Order::Relaxed);
		m_chunk_size.store(sectors, Order::Relaxed);
	}

	Atomic<u32> m_chunk_size{0};
	Atomic<u32> m_chunk_shift{0};
	bool m_overflow = false;
};

/*
 * Build the store named by the table's type word ("P", "PO", "N", any
 * case; P's option letters after the first) with the table's chunk size
 * word, for @cow (and @origin, whose block size the chunk size must also
 * respect). On failure *@why is the kernel's inner reason (for the log);
 * the caller reports "Couldn't create exception store" as the kernel does.
 */
Result<ExceptionStore *> create_exception_store(const char *type, const char *chunk_arg,
						 block_device *origin, block_device *cow,
						 const char **why);

} // namespace dmxx::snap
