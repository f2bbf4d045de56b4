/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The shadowing transaction manager (the kernel's dm-transaction-manager).
 *
 * Why shadowing: metadata must survive a crash at any instant. Nothing that
 * the last committed transaction can reach is ever overwritten; a block is
 * modified by copying it to a newly allocated block ("shadowing") and
 * changing the parent to point at the copy, up to the root. The superblock
 * is the only block written in place, and it is written last, after every
 * other block of the transaction is durable (flush), and then flushed
 * itself. A crash before the superblock write leaves the old superblock,
 * which points only at old, untouched blocks; a crash after it leaves the
 * new transaction complete.
 *
 * Within one transaction a block needs shadowing only once: the copy is new
 * to this transaction, so later changes may go to it in place. That is only
 * true while nothing else points at the copy: if its count was raised since
 * (a snapshot taken in the same transaction shares it), it is copied again.
 * A copy of a block that was shared needs its children's counts raised,
 * because there are now two parents: shadow_block() reports that as
 * inc_children and the caller (the btree) does it.
 *
 * Bootstrapping: the metadata space map lives in blocks that this manager
 * allocates, and this manager allocates through the space map. So the
 * manager is created first, without a space map, and the space map is
 * attached afterwards (set_space_map()); the metadata space map then builds
 * or opens itself through the manager. The manager holds no lock while it
 * calls the space map, so the space map may re-enter it (shadow its own
 * bitmap blocks while allocating for someone else).
 *
 * Concurrency: write operations (new_block, shadow_block, inc, dec,
 * pre_commit, commit, abort) are serialised by the caller (thin metadata's
 * root lock). read_lock may run concurrently with anything; the cache's
 * per-block locks keep readers off a block being written.
 *
 * Read-only clones: a clone shares the cache and space map of a real manager
 * but never shadows, allocates or changes counts (-EPERM). A non-blocking
 * clone's read_lock fails with -EAGAIN (EWOULDBLOCK) instead of waiting for
 * I/O or for a writer, for lookups on the map path; the caller defers the
 * bio to a worker that uses the real manager.
 */
#pragma once

#include <dmxx/result.h>
#include <dmxx/types.h>

#include "persistent/block_cache.h"
#include "persistent/block_set.h"
#include "persistent/space_map.h"

namespace dmxx::pdata {

/* A block made writable by shadow_block(). */
struct Shadow {
	WriteRef block;
	/*
	 * The original was shared (count > 1) and was copied: the caller must
	 * raise the counts of everything the block points to.
	 */
	bool inc_children;
};

enum class CloneMode : u8 {
	Blocking,    /* read_lock waits for I/O and writers */
	NonBlocking, /* read_lock never waits: -EAGAIN */
};

struct TransactionStats {
	u64 new_blocks;
	u64 shadow_copies;   /* shadow_block() that copied */
	u64 shadow_in_place; /* shadow_block() that reused this transaction's copy */
	u64 commits;
};

class TransactionManager {
public:
	/* A real manager; attach a space map before any allocation. */
	explicit TransactionManager(BlockCache &cache);
	/* A read-only clone of @real, which must outlive it. */
	TransactionManager(TransactionManager &real, CloneMode mode);
	~TransactionManager();
	TransactionManager(const TransactionManager &) = delete;
	TransactionManager &operator=(const TransactionManager &) = delete;

	/* Allocates the shadow set; -ENOMEM. Call once (not needed for clones). */
	Result<void> init();

	/* The space map that counts this device's blocks (not owned). */
	void set_space_map(SpaceMap *sm) { m_sm = sm; }
	SpaceMap *space_map() const { return m_sm; }
	BlockCache &cache() const { return m_cache; }
	bool is_clone() const { return m_clone; }

	/*
	 * A new block: allocated in the space map (count 1), zeroed, write-locked
	 * with @v, and known as shadowed (later shadows of it are in place).
	 * -ENOSPC when the metadata device is full.
	 */
	Result<WriteRef> new_block(const BlockValidator *v);

	/*
	 * A writable version of @orig, which the caller must not hold locked:
	 *  - @orig was created or shadowed in this transaction and its count is 1:
	 *    @orig itself, write-locked;
	 *  - otherwise: a new block holding a copy of @orig; @orig's count drops by one
	 *    (the caller's reference moves to the copy). inc_children says whether
	 *    @orig was shared.
	 * The result's location() is the block the parent must now point to.
	 */
	Result<Shadow> shadow_block(block_t orig, const BlockValidator *v);

	/* Read access to any block (checked with @v on first read). */
	Result<ReadRef> read_lock(block_t b, const BlockValidator *v);

	/* Reference counts, straight to the space map. */
	Result<void> inc(block_t b);
	Result<void> dec(block_t b);
	Result<u32> ref_count(block_t b);
	Result<bool> is_shared(block_t b);

	/*
	 * First half of commit: the space map commits its counts (through this
	 * manager), then every dirty block is written and the device flushed.
	 * Call before write-locking the superblock.
	 */
	Result<void> pre_commit();

	/*
	 * Second half: @superblock (write-locked by the caller, fully updated,
	 * with the space map roots taken after pre_commit) is released and
	 * written after every other dirty block is durable, then flushed. Any
	 * other dirty block (changed after pre_commit) is written and flushed
	 * first, so the order holds even then. Ends the transaction: the shadow
	 * set is emptied, whatever the outcome. If the other blocks cannot be
	 * made durable, the superblock is dropped from the cache unwritten; if
	 * the superblock write itself fails, the device may hold either version
	 * (both are complete). After an error, abort() and reopen.
	 */
	Result<void> commit(WriteRef superblock);

	/*
	 * Forget the open transaction: dirty blocks are dropped unwritten and the
	 * shadow set emptied. The space map must be reopened by the caller from
	 * the last committed roots. -EBUSY if any block is still locked.
	 */
	Result<void> abort();

	/* Was @b created or shadowed in the open transaction? (tests, assertions) */
	bool is_shadow(block_t b) const;

	TransactionStats stats() const { return m_stats; }

private:
	BlockCache &m_cache;
	SpaceMap *m_sm = nullptr;
	TransactionManager *m_real = nullptr; /* set for clones */
	bool m_clone = false;
	bool m_non_blocking = false;
	BlockSet m_shadows;
	TransactionStats m_stats = {};
};

} // namespace dmxx::pdata
