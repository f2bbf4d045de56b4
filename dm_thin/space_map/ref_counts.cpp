// SPDX-License-Identifier: GPL-2.0
#include "space_map/ref_counts.h"

#include <dmxx/platform.h>
#include <dmxx/utility.h>

#include "space_map/bitmap_words.h"
#include "space_map/sm_validators.h"

namespace dmxx::pdata {

static constexpr u32 E = RefCounts::entries_per_bitmap;

static const u8 *payload(const void *block)
{
	return static_cast<const u8 *>(block) + sizeof(BitmapHeader);
}

static u8 *payload(void *block) { return static_cast<u8 *>(block) + sizeof(BitmapHeader); }

static const BlockValidator *bitmap_v() { return &sm_bitmap_validator(); }

RefCounts::RefCounts(TransactionManager &tm, IndexStore &index)
	: m_tm(tm), m_index(index), m_overflow(tm, 1, m_count_type)
{
}

Result<void> RefCounts::create()
{
	m_overflow_root = TRY(m_overflow.create_empty());
	m_nr_blocks = 0;
	m_nr_allocated = 0;
	m_free_now = 0;
	return {};
}

void RefCounts::open(const SmRoot &root)
{
	m_nr_blocks = from_le(root.nr_blocks);
	m_nr_allocated = from_le(root.nr_allocated);
	m_overflow_root = from_le(root.ref_count_root);
	reset_free_now();
}

void RefCounts::copy_state(const RefCounts &o)
{
	m_nr_blocks = o.m_nr_blocks;
	m_nr_allocated = o.m_nr_allocated;
	m_overflow_root = o.m_overflow_root;
	m_free_now = o.m_free_now;
}

SmRoot RefCounts::root() const
{
	SmRoot r;
	r.nr_blocks = to_le64(m_nr_blocks);
	r.nr_allocated = to_le64(m_nr_allocated);
	r.bitmap_root = to_le64(m_index.root());
	r.ref_count_root = to_le64(m_overflow_root);
	return r;
}

/* ---- the overflow btree ---------------------------------------------------- */

Result<u32> RefCounts::overflow_get(block_t b) const
{
	le32 v;
	auto r = m_overflow.lookup(m_overflow_root, &b, &v);
	if (r.is_error()) {
		/* The bitmap said 3: a missing entry is damage, not "count 0". */
		if (r.error_code() == -ENODATA) {
			dmxx_log(DMXX_LOG_ERR, "space map: block %llu has no overflow count",
				 (unsigned long long)b);
			return err(EILSEQ);
		}
		return r.error();
	}
	u32 count = from_le(v);
	if (count < count_in_overflow)
		return err(EILSEQ);
	return count;
}

Result<void> RefCounts::overflow_put(block_t b, u32 count)
{
	le32 v = to_le32(count);
	m_overflow_root = TRY(m_overflow.insert(m_overflow_root, &b, &v));
	return {};
}

Result<void> RefCounts::overflow_del(block_t b)
{
	auto r = m_overflow.remove(m_overflow_root, &b);
	if (r.is_error())
		return r.error_code() == -ENODATA ? err(EILSEQ) : r.error();
	m_overflow_root = r.value();
	return {};
}

/* ---- lookups ------------------------------------------------------------------ */

Result<u32> RefCounts::lookup_bitmap(block_t b) const
{
	if (b >= m_nr_blocks)
		return err(EINVAL);
	IndexEntry ie = TRY(m_index.peek(b / E));
	ReadRef blk = TRY(m_tm.read_lock(from_le(ie.blocknr), bitmap_v()));
	return bitmap::get(payload(blk.data()), u32(b % E));
}

Result<u32> RefCounts::lookup(block_t b) const
{
	u32 v = TRY(lookup_bitmap(b));
	if (v != count_in_overflow)
		return v;
	return overflow_get(b);
}

Result<block_t> RefCounts::find_free(block_t begin, block_t end)
{
	if (end > m_nr_blocks)
		end = m_nr_blocks;
	if (begin >= end)
		return err(ENOSPC);

	u64 first = begin / E, last = (end - 1) / E;
	for (u64 i = first; i <= last; i++) {
		IndexEntry ie = TRY(m_index.load(i));
		if (from_le(ie.nr_free) == 0)
			continue;
		u32 lo = i == first ? u32(begin % E) : 0;
		u32 hi = i == last ? u32(end - i * E) : E;
		lo = max(lo, from_le(ie.none_free_before));
		if (lo >= hi)
			continue;

		ReadRef cur = TRY(m_tm.read_lock(from_le(ie.blocknr), bitmap_v()));
		ReadRef old;
		const u8 *old_bits = nullptr;
		if (m_committed && i * E < m_committed->m_nr_blocks) {
			IndexEntry oie = TRY(m_committed->m_index.load(i));
			if (from_le(oie.nr_free) == 0)
				continue;
			/* Same block: untouched since commit, so the two views agree. */
			if (from_le(oie.blocknr) != from_le(ie.blocknr)) {
				old = TRY(m_tm.read_lock(from_le(oie.blocknr), bitmap_v()));
				old_bits = payload(old.data());
			}
		}
		u32 pos = bitmap::find_free(payload(cur.data()), old_bits, lo, hi);
		if (pos < hi)
			return i * E + pos;
	}
	return err(ENOSPC);
}

/* ---- changing counts -------------------------------------------------------- */

Result<void> RefCounts::check_range(block_t b, block_t e) const
{
	if (b >= e || e > m_nr_blocks)
		return err(EINVAL);
	return {};
}

/*
 * Shadow the bitmap (re-entrant: nothing is changed yet). Its new location
 * is published by let_go(), before anything else can re-enter.
 */
Result<void> RefCounts::begin_update(u64 index, Cursor &c)
{
	c.index = index;
	c.ie = TRY(m_index.load(index));
	Shadow s = TRY(m_tm.shadow_block(from_le(c.ie.blocknr), bitmap_v()));
	c.block = move(s.block);
	c.ie.blocknr = to_le64(c.block.location());
	return {};
}

/* The bitmap's payload, write-locking it again if it was let go. */
Result<u8 *> RefCounts::hold(Cursor &c)
{
	if (!c.block.valid()) {
		/* Already this transaction's copy: lock it in place, no second shadow. */
		c.block = TRY(m_tm.cache().write_lock(from_le(c.ie.blocknr), bitmap_v()));
	}
	return payload(c.block.data());
}

/* Before anything that may re-enter: entry saved, bitmap unlocked. */
Result<void> RefCounts::let_go(Cursor &c)
{
	c.block.release();
	return m_index.save(c.index, c.ie);
}

/*
 * Is @b (whose count here just left or reached 0) free in the committed
 * view? Only then does the change move the number of usable blocks.
 */
Result<void> RefCounts::note_use_change(const Cursor &c, block_t b, bool now_used)
{
	if (!m_committed)
		return {};
	if (b < m_committed->m_nr_blocks) {
		IndexEntry oie = TRY(m_committed->m_index.load(b / E));
		/*
		 * The same block in both views: the space map committed but the
		 * transaction manager's transaction goes on (formatting creates
		 * the data map after the metadata map's first commit), so blocks
		 * of this transaction still change in place and both views see
		 * the change: the committed count moves with ours. (Reading it
		 * would also wait on our own write lock.)
		 */
		if (from_le(oie.blocknr) != from_le(c.ie.blocknr)) {
			ReadRef old = TRY(m_tm.read_lock(from_le(oie.blocknr), bitmap_v()));
			if (bitmap::get(payload(old.data()), u32(b % E)) != 0)
				return {};
		}
	}
	if (now_used)
		m_free_now--;
	else
		m_free_now++;
	return {};
}

/* Bookkeeping of a count going 0 -> non-zero (the bitmap already says so). */
Result<void> RefCounts::claimed(Cursor &c, block_t b, u32 bit)
{
	m_nr_allocated++;
	c.ie.nr_free = to_le32(from_le(c.ie.nr_free) - 1);
	if (from_le(c.ie.none_free_before) == bit)
		c.ie.none_free_before = to_le32(bit + 1);
	return note_use_change(c, b, true);
}

/* Bookkeeping of a count going non-zero -> 0. */
Result<void> RefCounts::released(Cursor &c, block_t b, u32 bit)
{
	m_nr_allocated--;
	c.ie.nr_free = to_le32(from_le(c.ie.nr_free) + 1);
	if (bit < from_le(c.ie.none_free_before))
		c.ie.none_free_before = to_le32(bit);
	return note_use_change(c, b, false);
}

/* Increments the blocks of [b, e) that share b's bitmap; advances b past them. */
Result<void> RefCounts::inc_in_bitmap(block_t &b, block_t e)
{
	Cursor c;
	TRY(begin_update(b / E, c));
	u32 bit = u32(b % E);
	u32 bit_end = u32(min<u64>(E, bit + (e - b)));

	for (; bit < bit_end; bit++, b++) {
		u8 *bits = TRY(hold(c));
		switch (bitmap::get(bits, bit)) {
		case 0:
			bitmap::set(bits, bit, 1);
			TRY(claimed(c, b, bit));
			break;
		case 1:
			bitmap::set(bits, bit, 2);
			break;
		case 2:
			/* The count must be in the overflow tree before the bitmap points there. */
			TRY(let_go(c));
			TRY(overflow_put(b, 3));
			bitmap::set(TRY(hold(c)), bit, count_in_overflow);
			break;
		default: {
			u32 count = TRY(overflow_get(b));
			if (count == ~u32(0))
				return err(EOVERFLOW);
			TRY(let_go(c));
			TRY(overflow_put(b, count + 1));
			break;
		}
		}
	}
	return let_go(c);
}

Result<void> RefCounts::dec_in_bitmap(block_t &b, block_t e)
{
	Cursor c;
	TRY(begin_update(b / E, c));
	u32 bit = u32(b % E);
	u32 bit_end = u32(min<u64>(E, bit + (e - b)));

	for (; bit < bit_end; bit++, b++) {
		u8 *bits = TRY(hold(c));
		switch (bitmap::get(bits, bit)) {
		case 0:
			dmxx_log(DMXX_LOG_ERR, "space map: decrement of free block %llu",
				 (unsigned long long)b);
			(void)let_go(c);
			return err(EINVAL);
		case 1:
			bitmap::set(bits, bit, 0);
			TRY(released(c, b, bit));
			break;
		case 2:
			bitmap::set(bits, bit, 1);
			break;
		default: {
			u32 count = TRY(overflow_get(b));
			if (count > count_in_overflow) {
				TRY(let_go(c));
				TRY(overflow_put(b, count - 1));
			} else {
				/* The bitmap stops pointing at the entry before it goes. */
				bitmap::set(bits, bit, 2);
				TRY(let_go(c));
				TRY(overflow_del(b));
			}
			break;
		}
		}
	}
	return let_go(c);
}

Result<void> RefCounts::inc(block_t b, block_t e)
{
	TRY(check_range(b, e));
	while (b < e)
		TRY(inc_in_bitmap(b, e));
	return {};
}

Result<void> RefCounts::dec(block_t b, block_t e)
{
	TRY(check_range(b, e));
	while (b < e)
		TRY(dec_in_bitmap(b, e));
	return {};
}

Result<void> RefCounts::set(block_t b, u32 count)
{
	TRY(check_range(b, b + 1));
	Cursor c;
	TRY(begin_update(b / E, c));
	u32 bit = u32(b % E);

	u32 raw = bitmap::get(TRY(hold(c)), bit);
	u32 old = raw == count_in_overflow ? TRY(overflow_get(b)) : raw;

	if (old == 0 && count > 0) {
		/* Claim the block first, so nothing nested can allocate it meanwhile. */
		bitmap::set(TRY(hold(c)), bit, min<u32>(count, 2));
		TRY(claimed(c, b, bit));
	}
	if (count >= count_in_overflow) {
		if (old != count) {
			TRY(let_go(c));
			TRY(overflow_put(b, count));
		}
		bitmap::set(TRY(hold(c)), bit, count_in_overflow);
	} else {
		bitmap::set(TRY(hold(c)), bit, count);
		if (old > 0 && count == 0)
			TRY(released(c, b, bit));
		if (raw == count_in_overflow) {
			TRY(let_go(c));
			TRY(overflow_del(b));
		}
	}
	return let_go(c);
}

Result<void> RefCounts::extend(block_t extra)
{
	block_t nr_blocks = m_nr_blocks + extra;
	if (nr_blocks < m_nr_blocks)
		return err(EINVAL);
	u64 old_bitmaps = nr_bitmaps_for(m_nr_blocks, E);
	u64 new_bitmaps = nr_bitmaps_for(nr_blocks, E);
	if (new_bitmaps > m_index.max_entries())
		return err(EINVAL);

	/*
	 * The new size first: the metadata map allocates the new bitmaps from
	 * the new area itself, and needs to know it exists.
	 */
	m_nr_blocks = nr_blocks;
	m_free_now += extra;
	for (u64 i = old_bitmaps; i < new_bitmaps; i++) {
		WriteRef blk = TRY(m_tm.new_block(bitmap_v()));
		IndexEntry ie;
		ie.blocknr = to_le64(blk.location());
		/* The kernel counts a last bitmap's tail beyond the end as free too. */
		ie.nr_free = to_le32(E);
		ie.none_free_before = to_le32(0);
		blk.release();
		TRY(m_index.save(i, ie));
	}
	return {};
}

} // namespace dmxx::pdata
