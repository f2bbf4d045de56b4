// SPDX-License-Identifier: GPL-2.0
#include "space_map/disk_space_map.h"

#include <dmxx/mem.h>
#include <dmxx/new.h>

#include "space_map/sm_root_check.h"

namespace dmxx::pdata {

DiskSpaceMap::DiskSpaceMap(TransactionManager &tm)
	: m_cur_index(tm), m_old_index(tm), m_cur(tm, m_cur_index), m_old(tm, m_old_index)
{
	m_cur.set_committed(&m_old);
}

Result<DiskSpaceMap *> DiskSpaceMap::create(TransactionManager &tm, block_t nr_blocks)
{
	DiskSpaceMap *sm = new (AllocMode::Sleep) DiskSpaceMap(tm);
	if (!sm)
		return err(ENOMEM);
	auto r = [&]() -> Result<void> {
		TRY(sm->m_cur_index.create());
		TRY(sm->m_cur.create());
		TRY(sm->m_cur.extend(nr_blocks));
		return sm->commit();
	}();
	if (r.is_error()) {
		delete sm;
		return r.error();
	}
	return sm;
}

Result<DiskSpaceMap *> DiskSpaceMap::open(TransactionManager &tm, const void *root, usize len)
{
	SmRoot smr = TRY(parse_sm_root(tm, root, len, ~u64(0)));
	DiskSpaceMap *sm = new (AllocMode::Sleep) DiskSpaceMap(tm);
	if (!sm)
		return err(ENOMEM);
	sm->m_cur_index.open(from_le(smr.bitmap_root));
	sm->m_cur.open(smr);
	auto r = [&]() -> Result<void> {
		/*
		 * Read the first index entry and its bitmap now, so a damaged map
		 * is refused when the pool opens rather than at its first write.
		 */
		if (sm->m_cur.nr_blocks() > 0) {
			IndexEntry ie = TRY(sm->m_cur_index.load(0));
			TRY(check_index_entry(tm, ie));
			TRY(sm->m_cur.lookup_bitmap(0));
		}
		return sm->commit();
	}();
	if (r.is_error()) {
		delete sm;
		return r.error();
	}
	return sm;
}

Result<bool> DiskSpaceMap::count_is_more_than_one(block_t b)
{
	u32 v = TRY(m_cur.lookup_bitmap(b));
	/* 3 means "3 or more": no need to read the overflow btree. */
	return v > 1;
}

Result<block_t> DiskSpaceMap::new_block()
{
	/* Round the device from where the last search stopped. */
	auto r = m_cur.find_free(m_search_from, m_cur.nr_blocks());
	if (r.is_error() && r.error_code() != -ENOSPC)
		return r.error();
	block_t b = r.is_ok() ? r.value() : TRY(m_cur.find_free(0, m_search_from));
	TRY(m_cur.inc(b, b + 1));
	m_search_from = b + 1;
	return b;
}

Result<void> DiskSpaceMap::commit()
{
	TRY(m_cur.commit());
	m_old_index.open(m_cur_index.root());
	m_old.copy_state(m_cur);
	m_cur.reset_free_now();
	return {};
}

Result<void> DiskSpaceMap::copy_root(void *dst, usize len)
{
	if (len < sizeof(SmRoot))
		return err(ENOSPC);
	SmRoot r = m_cur.root();
	mem_copy(dst, &r, sizeof(r));
	return {};
}

} // namespace dmxx::pdata
