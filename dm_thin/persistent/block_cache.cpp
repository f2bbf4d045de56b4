// SPDX-License-Identifier: GPL-2.0
/*
 * The block cache. See block_cache.h for the design.
 *
 * Every entry's state (lock counts, dirty, in-I/O) is guarded by the one
 * cache mutex; the block's bytes are guarded by the entry's own lock
 * protocol (readers / writer / io), so the mutex is never held across device
 * I/O or a caller's use of a block. Waiters sleep on one wait queue and
 * re-examine the table when the generation counter moves: the wait condition
 * reads only that atomic, because a waiter that has announced it is about to
 * sleep must not take a mutex.
 */
#include "persistent/block_cache.h"

#include <dmxx/mem.h>
#include <dmxx/new.h>
#include <dmxx/platform.h>

namespace dmxx::pdata {

struct CacheEntry {
	block_t block;
	u8 *data;
	const BlockValidator *validator; /* the block type it was checked or created as */
	CacheEntry *hash_next;
	CacheEntry *lru_prev, *lru_next;
	CacheEntry *dirty_prev, *dirty_next;
	u32 readers;
	bool writer;
	bool io; /* being read from, or written in place to, the device: hands off */
	bool dirty;
	/* Who holds it (dmxx_current_task()), so a task never waits for itself. */
	unsigned long writer_task;
	unsigned long reader_tasks[4]; /* the first readers only; 0 = free slot */
};

namespace {

/*
 * A task asking for a block it already holds in a conflicting mode would
 * wait for itself forever. Well-formed metadata never makes us do that (a
 * block is in one place of one tree); corrupt metadata can (a child that
 * points at its parent, two trees sharing a block). The kernel's
 * block manager catches it only with DM_DEBUG_BLOCK_MANAGER_LOCKING.
 * Readers beyond the remembered ones go unseen: a miss, never a false hit.
 */
bool held_by(const CacheEntry *e, unsigned long task, bool exclusive)
{
	if (e->writer)
		return e->writer_task == task;
	if (exclusive)
		for (unsigned long t : e->reader_tasks)
			if (t == task)
				return true;
	return false;
}

void note_reader(CacheEntry *e, unsigned long task)
{
	for (unsigned long &t : e->reader_tasks)
		if (!t) {
			t = task;
			return;
		}
}

void forget_reader(CacheEntry *e, unsigned long task)
{
	for (unsigned long &t : e->reader_tasks)
		if (t == task) {
			t = 0;
			return;
		}
}

} // namespace

/* ---- CheckFailure ---------------------------------------------------------------- */

void CheckFailure::set(const char *fmt, ...)
{
	__builtin_va_list args;
	__builtin_va_start(args, fmt);
	dmxx_vsnprintf(reason, sizeof(reason), fmt, args);
	__builtin_va_end(args);
}

/* ---- references ------------------------------------------------------------------ */

ReadRef &ReadRef::operator=(ReadRef &&o)
{
	if (this != &o) {
		release();
		m_cache = exchange(o.m_cache, nullptr);
		m_entry = exchange(o.m_entry, nullptr);
	}
	return *this;
}

block_t ReadRef::location() const { return m_entry->block; }
const void *ReadRef::data() const { return m_entry->data; }

void ReadRef::release()
{
	if (m_entry) {
		m_cache->unlock_read(m_entry);
		m_entry = nullptr;
		m_cache = nullptr;
	}
}

WriteRef &WriteRef::operator=(WriteRef &&o)
{
	if (this != &o) {
		release();
		m_cache = exchange(o.m_cache, nullptr);
		m_entry = exchange(o.m_entry, nullptr);
	}
	return *this;
}

block_t WriteRef::location() const { return m_entry->block; }
void *WriteRef::data() const { return m_entry->data; }

void WriteRef::release()
{
	if (m_entry) {
		m_cache->unlock_write(m_entry);
		m_entry = nullptr;
		m_cache = nullptr;
	}
}

void WriteRef::forget()
{
	if (m_entry) {
		m_cache->unlock_write(m_entry, true);
		m_entry = nullptr;
		m_cache = nullptr;
	}
}

/* ---- construction ---------------------------------------------------------------- */

BlockCache::BlockCache(BlockDevice &dev, unsigned capacity)
	: m_dev(dev), m_capacity(capacity < 16 ? 16 : capacity)
{
}

BlockCache::~BlockCache()
{
	if (m_nr_locked)
		dmxx_fatal("block cache destroyed with blocks still locked");
	CacheEntry *e = m_lru_head;
	while (e) {
		CacheEntry *next = e->lru_next;
		free_entry(e);
		e = next;
	}
	dmxx_free(m_buckets);
}

Result<void> BlockCache::init()
{
	unsigned n = 16;
	while (n < m_capacity && n < (1u << 20))
		n <<= 1;
	m_buckets = static_cast<CacheEntry **>(dmxx_zalloc(sizeof(CacheEntry *) * n, DMXX_ALLOC_NOIO));
	if (!m_buckets)
		return err(ENOMEM);
	m_bucket_mask = n - 1;
	return {};
}

void BlockCache::free_entry(CacheEntry *e)
{
	dmxx_free(e->data);
	dmxx_free(e);
}

/* ---- table and lists (m_lock held) ----------------------------------------------- */

static inline unsigned hash_block(block_t b)
{
	u64 h = b * 0x9e3779b97f4a7c15ull;
	return unsigned(h >> 32);
}

CacheEntry *BlockCache::lookup_locked(block_t b)
{
	for (CacheEntry *e = m_buckets[hash_block(b) & m_bucket_mask]; e; e = e->hash_next)
		if (e->block == b)
			return e;
	return nullptr;
}

void BlockCache::hash_insert_locked(CacheEntry *e)
{
	CacheEntry **head = &m_buckets[hash_block(e->block) & m_bucket_mask];
	e->hash_next = *head;
	*head = e;
	/* Most recently used: at the tail. */
	e->lru_next = nullptr;
	e->lru_prev = m_lru_tail;
	if (m_lru_tail)
		m_lru_tail->lru_next = e;
	else
		m_lru_head = e;
	m_lru_tail = e;
	m_nr_cached++;
}

void BlockCache::lru_remove_locked(CacheEntry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		m_lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		m_lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = nullptr;
}

void BlockCache::lru_touch_locked(CacheEntry *e)
{
	if (m_lru_tail == e)
		return;
	lru_remove_locked(e);
	e->lru_prev = m_lru_tail;
	m_lru_tail->lru_next = e;
	m_lru_tail = e;
}

void BlockCache::hash_remove_locked(CacheEntry *e)
{
	CacheEntry **p = &m_buckets[hash_block(e->block) & m_bucket_mask];
	while (*p != e)
		p = &(*p)->hash_next;
	*p = e->hash_next;
	lru_remove_locked(e);
	m_nr_cached--;
}

void BlockCache::dirty_add_locked(CacheEntry *e)
{
	if (e->dirty)
		return;
	e->dirty = true;
	e->dirty_prev = nullptr;
	e->dirty_next = m_dirty_head;
	if (m_dirty_head)
		m_dirty_head->dirty_prev = e;
	m_dirty_head = e;
	m_nr_dirty++;
}

void BlockCache::dirty_remove_locked(CacheEntry *e)
{
	if (!e->dirty)
		return;
	e->dirty = false;
	if (e->dirty_prev)
		e->dirty_prev->dirty_next = e->dirty_next;
	else
		m_dirty_head = e->dirty_next;
	if (e->dirty_next)
		e->dirty_next->dirty_prev = e->dirty_prev;
	e->dirty_prev = e->dirty_next = nullptr;
	m_nr_dirty--;
}

/* Something waiters may care about changed: bump the generation; wake after unlocking. */
bool BlockCache::changed_locked()
{
	m_generation.fetch_add(1, Order::Release);
	return m_nr_waiting != 0;
}

void BlockCache::wait_for_change_locked()
{
	u64 seen = m_generation.load(Order::Acquire);
	m_nr_waiting++;
	m_lock.unlock();
	m_waiters.wait([&] { return m_generation.load(Order::Acquire) != seen; });
	m_lock.lock();
	m_nr_waiting--;
}

void BlockCache::note_failure(const CheckFailure &why, block_t b, const BlockValidator *v)
{
	dmxx_log(DMXX_LOG_ERR, "%s check failed for block %llu: %s", v ? v->name() : "raw",
		 (unsigned long long)b, why.reason);
	Guard<Mutex> g(m_lock);
	m_last_failure = why;
	m_stats.check_failures++;
}

void BlockCache::last_failure(char *buf, usize len)
{
	if (!len)
		return;
	Guard<Mutex> g(m_lock);
	usize n = str_length(m_last_failure.reason);
	if (n >= len)
		n = len - 1;
	mem_copy(buf, m_last_failure.reason, n);
	buf[n] = '\0';
}

/* ---- locking ----------------------------------------------------------------------- */

/*
 * An entry already in memory is requested with @v: it must be the same block
 * type. A block first read raw (no validator) is checked now, unless we dirtied
 * it ourselves (then there is nothing on disk to distrust).
 */
static Result<void> adopt_validator(CacheEntry *e, const BlockValidator *v, CheckFailure &why)
{
	if (!v || e->validator == v)
		return {};
	if (e->validator) {
		why.set("block %llu is cached as %s, requested as %s", (unsigned long long)e->block,
			e->validator->name(), v->name());
		return err(EINVAL);
	}
	if (!e->dirty)
		TRY(v->check(e->data, e->block, why));
	e->validator = v;
	return {};
}

Result<CacheEntry *> BlockCache::lock_entry(block_t b, const BlockValidator *v, Want want)
{
	bool exclusive = want == Want::Write || want == Want::WriteZero;
	unsigned long me = dmxx_current_task();
	CacheEntry *fresh = nullptr;
	CheckFailure why;
	why.clear();

	m_lock.lock();
	for (;;) {
		CacheEntry *e = lookup_locked(b);
		if (e) {
			bool busy = e->io || e->writer || (exclusive && e->readers);
			if (busy) {
				if (want == Want::TryRead) {
					m_lock.unlock();
					if (fresh)
						free_entry(fresh);
					return err(EAGAIN);
				}
				if (!e->io && held_by(e, me, exclusive)) {
					m_lock.unlock();
					if (fresh)
						free_entry(fresh);
					dmxx_log(DMXX_LOG_ERR,
						 "block %llu is already locked by this task: "
						 "the metadata refers to it twice (corrupt?)",
						 (unsigned long long)b);
					return err(EINVAL);
				}
				wait_for_change_locked();
				continue;
			}
			if (want == Want::WriteZero) {
				e->validator = v;
			} else {
				auto r = adopt_validator(e, v, why);
				if (r.is_error()) {
					m_lock.unlock();
					if (fresh)
						free_entry(fresh);
					note_failure(why, b, v);
					return r.error();
				}
			}
			if (exclusive) {
				e->writer = true;
				e->writer_task = me;
				dirty_add_locked(e);
			} else {
				e->readers++;
				note_reader(e, me);
			}
			if (e->writer || e->readers == 1)
				m_nr_locked++;
			lru_touch_locked(e);
			m_stats.hits++;
			m_lock.unlock();
			if (fresh)
				free_entry(fresh);
			if (want == Want::WriteZero)
				mem_zero(e->data, METADATA_BLOCK_SIZE);
			return e;
		}

		if (want == Want::TryRead) {
			m_lock.unlock();
			if (fresh)
				free_entry(fresh);
			return err(EAGAIN);
		}
		if (!fresh) {
			/* Allocate with no lock held, then look again: someone may have beaten us. */
			m_lock.unlock();
			TRY(make_room());
			fresh = static_cast<CacheEntry *>(dmxx_zalloc(sizeof(CacheEntry), DMXX_ALLOC_NOIO));
			if (fresh)
				fresh->data = static_cast<u8 *>(
					dmxx_alloc(METADATA_BLOCK_SIZE, DMXX_ALLOC_NOIO));
			if (!fresh || !fresh->data) {
				dmxx_free(fresh);
				return err(ENOMEM);
			}
			m_lock.lock();
			continue;
		}
		break;
	}

	/* A miss: publish the entry locked, so others wait for it, then fill it. */
	CacheEntry *e = fresh;
	e->block = b;
	e->validator = v;
	if (exclusive) {
		e->writer = true;
		e->writer_task = me;
	} else {
		e->readers = 1;
		note_reader(e, me);
	}
	m_nr_locked++;
	e->io = want != Want::WriteZero;
	hash_insert_locked(e);
	if (want == Want::WriteZero) {
		dirty_add_locked(e);
		m_lock.unlock();
		mem_zero(e->data, METADATA_BLOCK_SIZE);
		return e;
	}
	m_stats.misses++;
	m_lock.unlock();

	auto r = m_dev.read(b, e->data);
	bool bad_check = false;
	if (r.is_ok() && v) {
		r = v->check(e->data, b, why);
		bad_check = r.is_error();
	}

	m_lock.lock();
	e->io = false;
	if (r.is_error()) {
		/* Forget the block: a later attempt reads it again. */
		hash_remove_locked(e);
		m_nr_locked--;
		bool wake = changed_locked();
		m_lock.unlock();
		if (wake)
			m_waiters.wake_all();
		free_entry(e);
		if (bad_check)
			note_failure(why, b, v);
		return r.error();
	}
	if (exclusive)
		dirty_add_locked(e);
	bool wake = changed_locked();
	m_lock.unlock();
	if (wake)
		m_waiters.wake_all();
	return e;
}

Result<ReadRef> BlockCache::read_lock(block_t b, const BlockValidator *v)
{
	CacheEntry *e = TRY(lock_entry(b, v, Want::Read));
	return ReadRef(this, e);
}

Result<ReadRef> BlockCache::read_try_lock(block_t b, const BlockValidator *v)
{
	CacheEntry *e = TRY(lock_entry(b, v, Want::TryRead));
	return ReadRef(this, e);
}

Result<WriteRef> BlockCache::write_lock(block_t b, const BlockValidator *v)
{
	CacheEntry *e = TRY(lock_entry(b, v, Want::Write));
	return WriteRef(this, e);
}

Result<WriteRef> BlockCache::write_lock_zero(block_t b, const BlockValidator *v)
{
	/* Never read: but a block past the end must still be refused. */
	block_t n = TRY(m_dev.nr_blocks());
	if (b >= n)
		return err(EINVAL);
	CacheEntry *e = TRY(lock_entry(b, v, Want::WriteZero));
	return WriteRef(this, e);
}

void BlockCache::unlock_read(CacheEntry *e)
{
	m_lock.lock();
	if (!e->readers)
		dmxx_fatal("block cache: read unlock of a block not read-locked");
	e->readers--;
	forget_reader(e, dmxx_current_task());
	bool wake = false;
	if (!e->readers) {
		m_nr_locked--;
		wake = changed_locked();
	}
	m_lock.unlock();
	if (wake)
		m_waiters.wake_all();
}

void BlockCache::unlock_write(CacheEntry *e, bool forget)
{
	m_lock.lock();
	if (!e->writer)
		dmxx_fatal("block cache: write unlock of a block not write-locked");
	e->writer = false;
	e->writer_task = 0;
	m_nr_locked--;
	if (forget) {
		dirty_remove_locked(e);
		hash_remove_locked(e);
	}
	bool wake = changed_locked();
	m_lock.unlock();
	if (wake)
		m_waiters.wake_all();
	if (forget)
		free_entry(e);
}

/* ---- write-back and eviction ------------------------------------------------------- */

/*
 * Write @e to the device. @exclusive: we hold it with io set and no one else
 * can look at the bytes, so the checksum is stamped in place. Otherwise
 * readers may be looking at it: stamp and write a private copy.
 */
Result<void> BlockCache::write_out(CacheEntry *e, bool exclusive)
{
	if (exclusive) {
		if (e->validator)
			e->validator->prepare_for_write(e->data, e->block);
		return m_dev.write(e->block, e->data);
	}
	u8 *copy = static_cast<u8 *>(dmxx_alloc(METADATA_BLOCK_SIZE, DMXX_ALLOC_NOIO));
	if (!copy)
		return err(ENOMEM);
	mem_copy(copy, e->data, METADATA_BLOCK_SIZE);
	if (e->validator)
		e->validator->prepare_for_write(copy, e->block);
	auto r = m_dev.write(e->block, copy);
	dmxx_free(copy);
	return r;
}

/* Make room for one more entry if the cache is at capacity (soft bound). */
Result<void> BlockCache::make_room()
{
	m_lock.lock();
	while (m_nr_cached >= m_capacity) {
		CacheEntry *victim = nullptr;
		for (CacheEntry *e = m_lru_head; e; e = e->lru_next) {
			if (!e->io && !e->writer && !e->readers && !e->dirty) {
				victim = e;
				break;
			}
		}
		if (!victim) {
			for (CacheEntry *e = m_lru_head; e; e = e->lru_next) {
				if (!e->io && !e->writer && !e->readers) {
					victim = e;
					break;
				}
			}
			if (!victim)
				break; /* everything is locked: grow */
			/* Dirty: write it back first (safe, see the header), holding it exclusively. */
			victim->io = true;
			m_lock.unlock();
			auto r = write_out(victim, true);
			m_lock.lock();
			victim->io = false;
			if (r.is_error()) {
				bool wake = changed_locked();
				m_lock.unlock();
				if (wake)
					m_waiters.wake_all();
				return r.error();
			}
			dirty_remove_locked(victim);
			m_stats.writes++;
			m_stats.evict_writes++;
		}
		hash_remove_locked(victim);
		m_stats.evictions++;
		bool wake = changed_locked();
		m_lock.unlock();
		if (wake)
			m_waiters.wake_all();
		free_entry(victim);
		m_lock.lock();
	}
	m_lock.unlock();
	return {};
}

Result<void> BlockCache::flush(block_t skip)
{
	bool busy = false;
	m_lock.lock();
	for (;;) {
		CacheEntry *e = m_dirty_head;
		bool waiting_on_io = false;
		for (; e; e = e->dirty_next) {
			if (e->block == skip)
				continue;
			if (e->writer) {
				busy = true; /* a caller bug: cannot write a block being changed */
				continue;
			}
			if (e->io) {
				waiting_on_io = true; /* an eviction is writing it: wait and rescan */
				continue;
			}
			break;
		}
		if (!e) {
			if (!waiting_on_io)
				break;
			wait_for_change_locked();
			continue;
		}

		bool exclusive = e->readers == 0;
		if (exclusive)
			e->io = true;
		else
			e->readers++; /* keeps writers off while we write a copy */
		m_lock.unlock();
		auto r = write_out(e, exclusive);
		m_lock.lock();
		if (r.is_ok()) {
			/* Clean before releasing our hold: a writer can only re-dirty it after. */
			dirty_remove_locked(e);
			m_stats.writes++;
		}
		if (exclusive) {
			e->io = false;
		} else if (--e->readers == 0) {
			/*
			 * The readers we joined unlocked while we wrote: their
			 * unlock saw our hold and left the block counted as
			 * locked, so the last hold out uncounts it.
			 */
			m_nr_locked--;
		}
		bool wake = changed_locked();
		if (r.is_error()) {
			m_lock.unlock();
			if (wake)
				m_waiters.wake_all();
			return r.error();
		}
		if (wake) {
			m_lock.unlock();
			m_waiters.wake_all();
			m_lock.lock();
		}
	}
	m_stats.flushes++;
	m_lock.unlock();

	TRY(m_dev.flush());
	if (busy) {
		dmxx_log(DMXX_LOG_ERR, "block cache: flush found dirty blocks still write-locked");
		return err(EBUSY);
	}
	return {};
}

Result<void> BlockCache::discard_all()
{
	CacheEntry *doomed = nullptr;
	{
		Guard<Mutex> g(m_lock);
		if (m_nr_locked)
			return err(EBUSY);
		for (CacheEntry *e = m_lru_head; e; e = e->lru_next)
			if (e->io)
				return err(EBUSY);
		while (m_lru_head) {
			CacheEntry *e = m_lru_head;
			dirty_remove_locked(e);
			hash_remove_locked(e);
			e->hash_next = doomed;
			doomed = e;
		}
		changed_locked();
	}
	m_waiters.wake_all();
	while (doomed) {
		CacheEntry *next = doomed->hash_next;
		free_entry(doomed);
		doomed = next;
	}
	return {};
}

/* ---- statistics -------------------------------------------------------------------- */

BlockCacheStats BlockCache::stats()
{
	Guard<Mutex> g(m_lock);
	return m_stats;
}

unsigned BlockCache::nr_cached()
{
	Guard<Mutex> g(m_lock);
	return m_nr_cached;
}

unsigned BlockCache::nr_dirty()
{
	Guard<Mutex> g(m_lock);
	return m_nr_dirty;
}

unsigned BlockCache::nr_locked()
{
	Guard<Mutex> g(m_lock);
	return m_nr_locked;
}

unsigned BlockCache::nr_waiting()
{
	Guard<Mutex> g(m_lock);
	return m_nr_waiting;
}

} // namespace dmxx::pdata
