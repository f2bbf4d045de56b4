/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The metadata space map's index: one block of up to 255 entries, kept in
 * memory. Loads and saves never touch the disk, which is what lets the map
 * look up its own bitmaps while it is in the middle of allocating for
 * itself; commit() shadows the block and writes the entries into it.
 */
#pragma once

#include "persistent/transaction.h"
#include "space_map/index_store.h"

namespace dmxx::pdata {

class MetadataIndexStore final : public IndexStore {
public:
	explicit MetadataIndexStore(TransactionManager &tm) : m_tm(tm) {}

	/* A new, empty index block (counted by whoever allocates through @tm). */
	Result<void> create();
	/*
	 * Read the index block at @root; entries of bitmaps beyond @nr_bitmaps
	 * are ignored. -EILSEQ if the block fails its check or @nr_bitmaps > 255.
	 */
	Result<void> open(block_t root, u64 nr_bitmaps);
	/* Become a copy of @o (the committed view taking the current one's state). */
	void copy_from(const MetadataIndexStore &o);

	Result<IndexEntry> load(u64 index) override { return peek(index); }
	Result<IndexEntry> peek(u64 index) const override;
	Result<void> save(u64 index, const IndexEntry &ie) override;
	u64 max_entries() const override { return max_metadata_bitmaps; }
	Result<void> commit() override;
	block_t root() const override { return m_root; }

private:
	TransactionManager &m_tm;
	block_t m_root = 0;
	IndexEntry m_entries[max_metadata_bitmaps] = {};
};

} // namespace dmxx::pdata
