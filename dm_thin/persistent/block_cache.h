/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The block cache (the kernel's dm-block-manager over dm-bufio).
 *
 * Why it exists: btree and space-map code touches the same few metadata
 * blocks again and again inside one transaction; reading each from the
 * device every time would be slow, and writing each immediately would
 * multiply writes. The cache keeps blocks in memory, hands out per-block
 * read/write locks as RAII references, remembers which blocks are dirty and
 * writes them when the transaction manager commits.
 *
 * Validators: every block type (btree node, bitmap, index, superblock) has a
 * validator that stamps the block's checksum and own location just before it
 * goes to disk, and checks both when it comes back. A block is checked once,
 * when it is read from the device; a block already in memory was either
 * checked then or written by us. Asking for a cached block with a different
 * validator than the one it was checked with is -EINVAL: one location cannot
 * be two block types (a corrupt pointer would otherwise be believed).
 *
 * Write-back timing: the checksum is stamped into the cached buffer itself
 * when it is written out (not at every unlock), so a block modified many
 * times in a transaction is checksummed once. Dirty blocks may be written
 * before commit (to make room); this is safe because the transaction manager
 * only ever dirties blocks that the last committed transaction does not
 * reference (shadowing). The one exception, the superblock, is dirtied only
 * inside TransactionManager::commit(), which writes it last.
 *
 * Locking: concurrent readers or one writer per block; lockers wait without
 * holding the cache's mutex. A task that asks for a block it already holds
 * in a conflicting mode (only corrupt metadata makes it) gets -EINVAL rather
 * than waiting for itself; references are released by the task that took
 * them. Device I/O happens with no cache lock held, so
 * one slow read does not stall hits on other blocks, and an I/O completion
 * path never needs a lock that a waiter holds.
 *
 * Capacity is a soft bound: when full, the least recently used clean
 * unlocked block is dropped (or, if every block is dirty, the least recently
 * used dirty unlocked block is written back and dropped). If every cached
 * block is locked the cache grows instead of failing: refusing would turn a
 * deep btree operation into a spurious -ENOMEM.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/result.h>
#include <dmxx/types.h>
#include <dmxx/utility.h>
#include <dmxx/wait.h>

#include "persistent/block_device.h"

namespace dmxx::pdata {

/* Why a validator rejected a block: a short human-readable sentence. */
struct CheckFailure {
	char reason[128];

	void clear() { reason[0] = '\0'; }
	/* printf-style; truncates. */
	void set(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
};

/*
 * One block type's on-disk self-description. Stateless; one shared instance
 * per type (constinit), used concurrently.
 */
class BlockValidator {
public:
	/* For error messages ("btree_node", "sm_bitmap", "superblock"). */
	virtual const char *name() const = 0;

	/* Stamp the checksum and location into @data, about to be written at @where. */
	virtual void prepare_for_write(void *data, block_t where) const = 0;

	/*
	 * Verify @data, just read from @where: -EILSEQ (with @why filled) for a bad
	 * checksum, a wrong self-recorded location or an impossible header.
	 */
	virtual Result<void> check(const void *data, block_t where, CheckFailure &why) const = 0;

protected:
	~BlockValidator() = default;
};

class BlockCache;
struct CacheEntry; /* private to block_cache.cpp */

/* A shared (read) lock on one cached block; released when destroyed. Move-only. */
class ReadRef {
public:
	ReadRef() = default;
	ReadRef(ReadRef &&o) : m_cache(exchange(o.m_cache, nullptr)), m_entry(exchange(o.m_entry, nullptr)) {}
	ReadRef &operator=(ReadRef &&o);
	ReadRef(const ReadRef &) = delete;
	ReadRef &operator=(const ReadRef &) = delete;
	~ReadRef() { release(); }

	bool valid() const { return m_entry != nullptr; }
	block_t location() const;
	const void *data() const;
	const u8 *bytes() const { return static_cast<const u8 *>(data()); }
	/* Drop the lock now (idempotent). */
	void release();

private:
	friend class BlockCache;
	ReadRef(BlockCache *c, CacheEntry *e) : m_cache(c), m_entry(e) {}
	BlockCache *m_cache = nullptr;
	CacheEntry *m_entry = nullptr;
};

/*
 * An exclusive (write) lock on one cached block; the block is dirty from the
 * moment it is locked. Released when destroyed. Move-only.
 */
class WriteRef {
public:
	WriteRef() = default;
	WriteRef(WriteRef &&o) : m_cache(exchange(o.m_cache, nullptr)), m_entry(exchange(o.m_entry, nullptr)) {}
	WriteRef &operator=(WriteRef &&o);
	WriteRef(const WriteRef &) = delete;
	WriteRef &operator=(const WriteRef &) = delete;
	~WriteRef() { release(); }

	bool valid() const { return m_entry != nullptr; }
	block_t location() const;
	void *data() const;
	u8 *bytes() const { return static_cast<u8 *>(data()); }
	void release();
	/*
	 * Release and drop the block from the cache unwritten: its changes are
	 * forgotten and the next lock reads the device again. For a superblock
	 * whose commit failed, which must never reach the disk later by accident.
	 */
	void forget();

private:
	friend class BlockCache;
	WriteRef(BlockCache *c, CacheEntry *e) : m_cache(c), m_entry(e) {}
	BlockCache *m_cache = nullptr;
	CacheEntry *m_entry = nullptr;
};

/* No block: for "skip nothing" arguments. */
constexpr block_t NO_BLOCK = ~block_t(0);

struct BlockCacheStats {
	u64 hits;
	u64 misses;        /* blocks read from the device */
	u64 writes;        /* blocks written to the device */
	u64 evictions;     /* blocks dropped to make room */
	u64 evict_writes;  /* of which dirty, written first */
	u64 flushes;       /* device flushes issued */
	u64 check_failures;
};

class BlockCache {
public:
	/* @capacity: blocks kept in memory (at least 16; see the soft bound above). */
	BlockCache(BlockDevice &dev, unsigned capacity);
	/* Every reference must have been released. Dirty blocks are dropped unwritten. */
	~BlockCache();
	BlockCache(const BlockCache &) = delete;
	BlockCache &operator=(const BlockCache &) = delete;

	/* Allocates the lookup table; -ENOMEM. Call once before anything else. */
	Result<void> init();

	BlockDevice &device() { return m_dev; }
	Result<block_t> nr_blocks() { return m_dev.nr_blocks(); }

	/*
	 * Lock @b for reading, reading and checking it with @v if not cached.
	 * @v may be nullptr (no check: raw access for tools and tests).
	 * Waits while the block is write-locked. Errors: the device's, -EILSEQ
	 * (check failed; the reason is logged and kept, see last_failure()),
	 * -EINVAL (cached under another validator, or @b beyond the device),
	 * -ENOMEM.
	 */
	Result<ReadRef> read_lock(block_t b, const BlockValidator *v);

	/*
	 * As read_lock() but never waits: -EAGAIN (EWOULDBLOCK) if the block is
	 * not cached or is write-locked. May take the cache mutex briefly; does no I/O.
	 * For the map path's lookups, which must not sleep on I/O.
	 */
	Result<ReadRef> read_try_lock(block_t b, const BlockValidator *v);

	/* Lock @b for writing (read and checked with @v if not cached); marks it dirty. */
	Result<WriteRef> write_lock(block_t b, const BlockValidator *v);

	/*
	 * Lock @b for writing without reading it: the buffer is zeroed and from
	 * now on belongs to validator @v (a new block).
	 */
	Result<WriteRef> write_lock_zero(block_t b, const BlockValidator *v);

	/*
	 * Write every dirty block except @skip, then flush the device. Blocks
	 * read-locked by others are written from a private copy; a dirty block
	 * write-locked by anyone (other than @skip) is a caller bug: -EBUSY.
	 * A block whose write fails stays dirty and the error is returned.
	 */
	Result<void> flush(block_t skip = NO_BLOCK);

	/*
	 * Drop every dirty block unwritten, and every clean unlocked block
	 * (abort a transaction; tests: force re-reads). -EBUSY if any block is locked.
	 */
	Result<void> discard_all();

	/* The reason of the most recent check failure ("" if none). Copies into @buf. */
	void last_failure(char *buf, usize len);

	BlockCacheStats stats();
	unsigned nr_cached();
	unsigned nr_dirty();
	unsigned nr_locked();
	/* Threads sleeping for a block's lock or I/O right now (tests observe blocking). */
	unsigned nr_waiting();
	unsigned capacity() const { return m_capacity; }

private:
	friend class ReadRef;
	friend class WriteRef;

	enum class Want : u8 { Read, TryRead, Write, WriteZero };
	Result<CacheEntry *> lock_entry(block_t b, const BlockValidator *v, Want want);
	void unlock_read(CacheEntry *e);
	void unlock_write(CacheEntry *e, bool forget = false);

	CacheEntry *lookup_locked(block_t b);
	void hash_insert_locked(CacheEntry *e);
	void hash_remove_locked(CacheEntry *e);
	void lru_touch_locked(CacheEntry *e);
	void lru_remove_locked(CacheEntry *e);
	void dirty_add_locked(CacheEntry *e);
	void dirty_remove_locked(CacheEntry *e);
	bool changed_locked();
	void wait_for_change_locked();
	Result<void> make_room(); /* called with m_lock NOT held */
	Result<void> write_out(CacheEntry *e, bool exclusive);
	void free_entry(CacheEntry *e);
	void note_failure(const CheckFailure &why, block_t b, const BlockValidator *v);

	BlockDevice &m_dev;
	unsigned m_capacity;
	Mutex m_lock;        /* the table, the lists, every entry's lock state */
	WaitQueue m_waiters; /* anyone waiting for an entry's state to change */
	Atomic<u64> m_generation; /* moves whenever an entry's state changes */
	unsigned m_nr_waiting = 0;

	CacheEntry **m_buckets = nullptr;
	unsigned m_bucket_mask = 0;
	CacheEntry *m_lru_head = nullptr; /* least recently used */
	CacheEntry *m_lru_tail = nullptr; /* most recently used */
	CacheEntry *m_dirty_head = nullptr;
	unsigned m_nr_cached = 0;
	unsigned m_nr_dirty = 0;
	unsigned m_nr_locked = 0;
	BlockCacheStats m_stats = {};
	CheckFailure m_last_failure = {};
};

} // namespace dmxx::pdata
