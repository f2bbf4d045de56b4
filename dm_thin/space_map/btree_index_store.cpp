// SPDX-License-Identifier: GPL-2.0
#include "space_map/btree_index_store.h"

#include <dmxx/mem.h>

namespace dmxx::pdata {

BtreeIndexStore::BtreeIndexStore(TransactionManager &tm) : m_tree(tm, 1, m_value_type) {}

Result<void> BtreeIndexStore::create()
{
	m_root = TRY(m_tree.create_empty());
	mem_zero(m_cache, sizeof(m_cache));
	return {};
}

void BtreeIndexStore::open(block_t root)
{
	m_root = root;
	mem_zero(m_cache, sizeof(m_cache));
}

Result<IndexEntry> BtreeIndexStore::lookup_tree(u64 index) const
{
	IndexEntry ie;
	auto r = m_tree.lookup(m_root, &index, &ie);
	if (r.is_error()) {
		/* A bitmap below nr_blocks must have an entry: its absence is damage. */
		if (r.error_code() == -ENODATA)
			return err(EILSEQ);
		return r.error();
	}
	return ie;
}

Result<IndexEntry> BtreeIndexStore::peek(u64 index) const
{
	const Slot &s = slot_for(index);
	if (s.valid && s.index == index)
		return s.ie;
	return lookup_tree(index);
}

Result<void> BtreeIndexStore::write_back(Slot &s)
{
	m_root = TRY(m_tree.insert(m_root, &s.index, &s.ie));
	s.dirty = false;
	return {};
}

Result<IndexEntry> BtreeIndexStore::load(u64 index)
{
	Slot &s = slot_for(index);
	if (s.valid && s.index == index)
		return s.ie;
	IndexEntry ie = TRY(lookup_tree(index));
	if (s.valid && s.dirty)
		TRY(write_back(s));
	s = Slot{index, ie, true, false};
	return ie;
}

Result<void> BtreeIndexStore::save(u64 index, const IndexEntry &ie)
{
	Slot &s = slot_for(index);
	if (s.valid && s.index != index && s.dirty)
		TRY(write_back(s));
	s = Slot{index, ie, true, true};
	return {};
}

Result<void> BtreeIndexStore::commit()
{
	for (Slot &s : m_cache)
		if (s.valid && s.dirty)
			TRY(write_back(s));
	return {};
}

} // namespace dmxx::pdata
