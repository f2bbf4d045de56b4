// SPDX-License-Identifier: GPL-2.0
#include "space_map/metadata_index_store.h"

#include <dmxx/mem.h>

#include "space_map/sm_validators.h"

namespace dmxx::pdata {

Result<void> MetadataIndexStore::create()
{
	WriteRef b = TRY(m_tm.new_block(&sm_index_validator()));
	m_root = b.location();
	mem_zero(m_entries, sizeof(m_entries));
	return {};
}

Result<void> MetadataIndexStore::open(block_t root, u64 nr_bitmaps)
{
	if (nr_bitmaps > max_metadata_bitmaps)
		return err(EILSEQ);
	ReadRef b = TRY(m_tm.read_lock(root, &sm_index_validator()));
	auto *disk = static_cast<const MetadataIndexBlock *>(b.data());
	mem_zero(m_entries, sizeof(m_entries));
	mem_copy(m_entries, disk->index, usize(nr_bitmaps) * sizeof(IndexEntry));
	m_root = root;
	return {};
}

void MetadataIndexStore::copy_from(const MetadataIndexStore &o)
{
	m_root = o.m_root;
	mem_copy(m_entries, o.m_entries, sizeof(m_entries));
}

Result<IndexEntry> MetadataIndexStore::peek(u64 index) const
{
	if (index >= max_metadata_bitmaps)
		return err(EINVAL);
	return m_entries[index];
}

Result<void> MetadataIndexStore::save(u64 index, const IndexEntry &ie)
{
	if (index >= max_metadata_bitmaps)
		return err(EINVAL);
	m_entries[index] = ie;
	return {};
}

Result<void> MetadataIndexStore::commit()
{
	/*
	 * Shadowing may allocate, and allocating changes our entries (the map
	 * counts its own new block): so copy the entries only once the shadow
	 * is in hand, and everything it changed is included.
	 */
	Shadow s = TRY(m_tm.shadow_block(m_root, &sm_index_validator()));
	auto *disk = static_cast<MetadataIndexBlock *>(s.block.data());
	mem_copy(disk->index, m_entries, sizeof(m_entries));
	m_root = s.block.location();
	return {};
}

} // namespace dmxx::pdata
