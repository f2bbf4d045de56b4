// SPDX-License-Identifier: GPL-2.0
#include "space_map/metadata_space_map.h"

#include <dmxx/mem.h>
#include <dmxx/new.h>
#include <dmxx/platform.h>

#include "space_map/sm_root_check.h"

namespace dmxx::pdata {

MetadataSpaceMap::MetadataSpaceMap(TransactionManager &tm)
	: m_tm(tm), m_cur_index(tm), m_old_index(tm), m_cur(tm, m_cur_index),
	  m_old(tm, m_old_index)
{
	m_cur.set_committed(&m_old);
}

MetadataSpaceMap::~MetadataSpaceMap()
{
	if (m_tm.space_map() == this)
		m_tm.set_space_map(nullptr);
}

Result<MetadataSpaceMap *> MetadataSpaceMap::format(TransactionManager &tm, block_t superblock)
{
	MetadataSpaceMap *sm = new (AllocMode::Sleep) MetadataSpaceMap(tm);
	if (!sm)
		return err(ENOMEM);
	auto r = sm->m_pending.init(DeferredOps::default_capacity);
	if (r.is_ok()) {
		tm.set_space_map(sm);
		r = sm->format_device(superblock);
	}
	if (r.is_error()) {
		delete sm;
		return r.error();
	}
	return sm;
}

Result<void> MetadataSpaceMap::format_device(block_t superblock)
{
	block_t nr_blocks = TRY(m_tm.cache().nr_blocks());
	/* The kernel formats an oversized device as the largest it can describe. */
	if (nr_blocks > metadata_sm_max_blocks)
		nr_blocks = metadata_sm_max_blocks;
	if (superblock >= nr_blocks)
		return err(EINVAL);

	m_bootstrap = true;
	m_search_from = superblock + 1;
	m_bootstrap_end = nr_blocks;
	m_counted_to = superblock; /* the superblock is counted with the structures */
	m_fallback_end = 0;        /* nothing is counted yet: no bitmap to search */

	m_bitmaps_ready = 0;
	TRY(m_cur_index.create());
	TRY(m_cur.create());
	TRY(m_cur.extend(nr_blocks));
	m_bitmaps_ready = nr_blocks;
	TRY(count_bootstrap_allocations());
	m_bootstrap = false;
	return commit();
}

Result<MetadataSpaceMap *> MetadataSpaceMap::open(TransactionManager &tm, const void *root,
						  usize len)
{
	SmRoot smr = TRY(parse_sm_root(tm, root, len, metadata_sm_max_blocks));
	MetadataSpaceMap *sm = new (AllocMode::Sleep) MetadataSpaceMap(tm);
	if (!sm)
		return err(ENOMEM);
	auto r = [&]() -> Result<void> {
		TRY(sm->m_pending.init(DeferredOps::default_capacity));
		u64 nr_bitmaps =
			nr_bitmaps_for(from_le(smr.nr_blocks), RefCounts::entries_per_bitmap);
		TRY(sm->m_cur_index.open(from_le(smr.bitmap_root), nr_bitmaps));
		for (u64 i = 0; i < nr_bitmaps; i++)
			TRY(check_index_entry(tm, TRY(sm->m_cur_index.peek(i))));
		sm->m_cur.open(smr);
		sm->m_old_index.copy_from(sm->m_cur_index);
		sm->m_old.copy_state(sm->m_cur);
		return {};
	}();
	if (r.is_error()) {
		delete sm;
		return r.error();
	}
	tm.set_space_map(sm);
	return sm;
}

/* ---- recursion ---------------------------------------------------------------- */

/*
 * Apply queued changes one block at a time: the unapplied rest of a range
 * stays in the queue, so lookups made while a block is being applied still
 * see every other block of the range as taken.
 */
Result<void> MetadataSpaceMap::apply_deferred()
{
	while (!m_pending.empty()) {
		const BlockOp &op = m_pending.front();
		block_t b = op.begin;
		if (op.kind == BlockOp::Kind::Inc)
			TRY(m_cur.inc(b, b + 1));
		else
			TRY(m_cur.dec(b, b + 1));
		m_pending.consume_first_block();
	}
	return {};
}

Result<void> MetadataSpaceMap::change(BlockOp::Kind kind, block_t b, block_t e)
{
	block_t limit = m_cur.nr_blocks();
	if (m_bootstrap && m_bootstrap_end > limit)
		limit = m_bootstrap_end;
	if (b >= e || e > limit)
		return err(EINVAL);

	if (m_bootstrap || m_depth > 0) {
		auto r = m_pending.push(kind, b, e);
		if (r.is_error())
			dmxx_log(DMXX_LOG_ERR, "metadata space map: too many nested count changes");
		return r;
	}

	m_depth++;
	auto r = kind == BlockOp::Kind::Inc ? m_cur.inc(b, e) : m_cur.dec(b, e);
	/* Even after an error: what was queued belongs to changes already made. */
	auto r2 = apply_deferred();
	m_depth--;
	if (r.is_error())
		return r.error();
	return r2;
}

/*
 * Count the blocks handed out in bootstrap mode (one range increment), and
 * keep going until applying the queue hands out nothing more: every block
 * touched is by then this transaction's copy and changes in place.
 */
Result<void> MetadataSpaceMap::count_bootstrap_allocations()
{
	while (m_counted_to < m_search_from || !m_pending.empty()) {
		if (m_counted_to < m_search_from) {
			TRY(m_pending.push(BlockOp::Kind::Inc, m_counted_to, m_search_from));
			m_counted_to = m_search_from;
		}
		TRY(apply_deferred());
	}
	return {};
}

Result<void> MetadataSpaceMap::inc_range(block_t b, block_t e)
{
	return change(BlockOp::Kind::Inc, b, e);
}

Result<void> MetadataSpaceMap::dec_range(block_t b, block_t e)
{
	return change(BlockOp::Kind::Dec, b, e);
}

/* ---- lookups ------------------------------------------------------------------ */

Result<u32> MetadataSpaceMap::get_count(block_t b)
{
	s64 count;
	if (m_bootstrap && b >= m_counted_to && b < m_search_from)
		count = 1; /* handed out, not counted yet */
	else if (m_bootstrap && b >= m_bitmaps_ready)
		count = 0; /* its bitmap is still being built */
	else
		count = TRY(m_cur.lookup(b));
	count += m_pending.adjustment(b);
	if (count < 0)
		return err(EILSEQ);
	return u32(count);
}

Result<bool> MetadataSpaceMap::count_is_more_than_one(block_t b)
{
	if (m_bootstrap)
		return TRY(get_count(b)) > 1;
	s64 adj = m_pending.adjustment(b);
	u32 v = TRY(m_cur.lookup_bitmap(b));
	/* 3 is "3 or more"; counting it as shared errs on the safe side. */
	if (v == count_in_overflow)
		return true;
	return s64(v) + adj > 1;
}

/* ---- allocation ----------------------------------------------------------------- */

Result<block_t> MetadataSpaceMap::find_unclaimed(block_t begin, block_t end)
{
	for (;;) {
		block_t b = TRY(m_cur.find_free(begin, end));
		if (!m_pending.has_inc(b))
			return b;
		begin = b + 1;
	}
}

/*
 * The new area holds the new bitmaps, and the shadows of the committed
 * bitmaps that counting them touches (the last one, and the ones holding
 * the counts of the blocks shadowed). Growing by a block or two across a
 * bitmap boundary leaves no room for the latter: then take ordinary free
 * blocks of the old area, counted by a queued increment like any other.
 */
Result<block_t> MetadataSpaceMap::bootstrap_new_block()
{
	if (m_search_from < m_bootstrap_end)
		return m_search_from++;
	if (m_fallback_end == 0)
		return err(ENOSPC);
	block_t b = TRY(find_unclaimed(0, m_fallback_end));
	TRY(m_pending.push(BlockOp::Kind::Inc, b, b + 1));
	return b;
}

Result<block_t> MetadataSpaceMap::new_block()
{
	if (m_bootstrap)
		return bootstrap_new_block();

	auto r = find_unclaimed(m_search_from, m_cur.nr_blocks());
	if (r.is_error() && r.error_code() != -ENOSPC)
		return r.error();
	block_t b = r.is_ok() ? r.value() : TRY(find_unclaimed(0, m_search_from));
	m_search_from = b + 1;
	TRY(change(BlockOp::Kind::Inc, b, b + 1));
	check_low_space();
	return b;
}

void MetadataSpaceMap::set_low_space_callback(block_t threshold, LowSpaceFn fn, void *ctx)
{
	m_low_threshold = threshold;
	m_low_fn = fn;
	m_low_ctx = ctx;
	m_low_signalled = false;
}

void MetadataSpaceMap::check_low_space()
{
	if (!m_low_fn)
		return;
	if (m_cur.free_now() > m_low_threshold) {
		m_low_signalled = false;
	} else if (!m_low_signalled) {
		m_low_signalled = true;
		m_low_fn(m_low_ctx);
	}
}

/* ---- changes, commit, growth ------------------------------------------------- */

Result<void> MetadataSpaceMap::set_count(block_t b, u32 count)
{
	if (m_bootstrap || m_depth > 0)
		return err(EINVAL);
	m_depth++;
	auto r = m_cur.set(b, count);
	auto r2 = apply_deferred();
	m_depth--;
	if (r.is_error())
		return r.error();
	return r2;
}

Result<void> MetadataSpaceMap::commit()
{
	if (m_bootstrap || m_depth > 0)
		return err(EBUSY);
	/*
	 * Writing the index shadows its block, which allocates from us: at depth
	 * 0 that is an ordinary allocation, applied before the index is copied.
	 */
	TRY(m_cur.commit());
	if (!m_pending.empty())
		dmxx_fatal("metadata space map: count changes left queued at commit");
	m_old_index.copy_from(m_cur_index);
	m_old.copy_state(m_cur);
	m_cur.reset_free_now();
	check_low_space();
	return {};
}

Result<void> MetadataSpaceMap::extend(block_t extra)
{
	if (m_bootstrap || m_depth > 0)
		return err(EBUSY);
	block_t old_end = m_cur.nr_blocks();
	block_t new_end = old_end + extra;
	if (new_end < old_end || new_end > metadata_sm_max_blocks)
		return err(EINVAL);
	if (extra == 0)
		return {};
	/* The device grows first; the map only describes blocks that exist. */
	if (new_end > TRY(m_tm.cache().nr_blocks()))
		return err(EINVAL);

	/* The new area is free by definition: its first blocks hold its own bitmaps. */
	m_bootstrap = true;
	m_search_from = old_end;
	m_bootstrap_end = new_end;
	m_counted_to = old_end;
	m_fallback_end = old_end;
	m_bitmaps_ready = old_end;

	auto r = m_cur.extend(extra);
	if (r.is_ok()) {
		m_bitmaps_ready = new_end;
		r = count_bootstrap_allocations();
	}

	m_bootstrap = false;
	m_fallback_end = 0;
	return r;
}

Result<void> MetadataSpaceMap::copy_root(void *dst, usize len)
{
	if (len < sizeof(SmRoot))
		return err(ENOSPC);
	SmRoot r = m_cur.root();
	mem_copy(dst, &r, sizeof(r));
	return {};
}

} // namespace dmxx::pdata
