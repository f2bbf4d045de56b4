/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The reference counts of one device as stored on disk: bitmaps of 2-bit
 * counts found through an IndexStore, and an overflow btree (block -> le32)
 * for counts of 3 and more. This is the part both space maps share (the
 * kernel's "ll_disk"); the maps add the policy around it.
 *
 * A space map keeps two of these: the open transaction's counts, which it
 * changes, and the last committed ones, which only answer "was this block
 * in use when we last committed?". The committed view stays readable all
 * transaction long because shadowing never changes a committed block.
 *
 * Re-entrance: changing a bitmap or the overflow btree goes through the
 * transaction manager, which may allocate, and for the metadata space map
 * allocation comes back here (to search, and to queue count changes). So
 * every change below follows three rules, which make whatever a nested call
 * can observe consistent:
 *  - a bitmap's index entry is saved before anything that may re-enter, so
 *    a nested search finds the bitmap's current copy and its free count;
 *  - no bitmap block is held locked across anything that may re-enter;
 *  - a block is claimed in its bitmap before anything that may re-enter,
 *    and an overflow entry exists before the bitmap says 3 and is removed
 *    only after the bitmap stopped saying 3, so a lookup never meets a 3
 *    without its count.
 *
 * Concurrency: one writer (the caller serialises every mutating call);
 * lookup()/lookup_bitmap() change no state and may run concurrently with
 * each other while no writer runs.
 */
#pragma once

#include "persistent/btree.h"
#include "persistent/transaction.h"
#include "space_map/index_store.h"
#include "space_map/sm_format.h"

namespace dmxx::pdata {

class RefCounts {
public:
	/* Entries per 4 KiB bitmap block. */
	static constexpr u32 entries_per_bitmap =
		bitmap_entries_per_block(u32(METADATA_BLOCK_SIZE));

	RefCounts(TransactionManager &tm, IndexStore &index);

	/* Start empty (0 blocks) with a new overflow btree; the index store is created apart. */
	Result<void> create();
	/* Take the counts described by @root (the index store is opened apart). */
	void open(const SmRoot &root);
	/* Become a copy of @o's state (the committed view catching up at commit). */
	void copy_state(const RefCounts &o);
	/*
	 * The committed view: find_free() only returns blocks free there too, and
	 * free_now() counts only such blocks. Null for a committed view itself.
	 */
	void set_committed(RefCounts *committed) { m_committed = committed; }

	block_t nr_blocks() const { return m_nr_blocks; }
	block_t nr_allocated() const { return m_nr_allocated; }
	/* Blocks whose count is 0 here and in the committed view: what new_block() may use. */
	block_t free_now() const { return m_free_now; }
	/* After commit: both views agree, every free block is usable again. */
	void reset_free_now() { m_free_now = m_nr_blocks - m_nr_allocated; }
	SmRoot root() const;

	/* The raw 2-bit value (3: "look in the overflow btree"). -EINVAL beyond the end. */
	Result<u32> lookup_bitmap(block_t b) const;
	Result<u32> lookup(block_t b) const;

	/*
	 * The first block in [begin, end) with count 0 here and in the committed
	 * view; -ENOSPC if none.
	 */
	Result<block_t> find_free(block_t begin, block_t end);

	/* Raise / lower the count of every block in [b, e) by one. */
	Result<void> inc(block_t b, block_t e);
	Result<void> dec(block_t b, block_t e);
	Result<void> set(block_t b, u32 count);

	/* Add @extra blocks (count 0), allocating their bitmaps through the manager. */
	Result<void> extend(block_t extra);

	/* Write the index (bitmaps and overflow nodes are already in the manager's hands). */
	Result<void> commit() { return m_index.commit(); }

private:
	/* A bitmap being changed: its index entry and (while held) its write lock. */
	struct Cursor {
		u64 index;
		IndexEntry ie;
		WriteRef block;
	};

	Result<void> begin_update(u64 index, Cursor &c);
	Result<u8 *> hold(Cursor &c);
	Result<void> let_go(Cursor &c);
	Result<void> claimed(Cursor &c, block_t b, u32 bit);
	Result<void> released(Cursor &c, block_t b, u32 bit);
	Result<void> note_use_change(const Cursor &c, block_t b, bool now_used);

	Result<void> inc_in_bitmap(block_t &b, block_t e);
	Result<void> dec_in_bitmap(block_t &b, block_t e);
	Result<void> check_range(block_t b, block_t e) const;

	Result<u32> overflow_get(block_t b) const;
	Result<void> overflow_put(block_t b, u32 count);
	Result<void> overflow_del(block_t b);

	TransactionManager &m_tm;
	IndexStore &m_index;
	PlainValue m_count_type{sizeof(le32)};
	mutable Btree m_overflow;
	RefCounts *m_committed = nullptr;

	block_t m_nr_blocks = 0;
	block_t m_nr_allocated = 0;
	block_t m_overflow_root = 0;
	block_t m_free_now = 0;
};

} // namespace dmxx::pdata
