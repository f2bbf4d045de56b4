/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The disk space map's index: a btree of bitmap number -> IndexEntry, with a
 * small write-back cache in front.
 *
 * Why the cache: every count change rewrites its bitmap's entry (nr_free and
 * the search hint move), and a btree insert per change would shadow and
 * re-checksum the leaf each time. Entries are held here, direct-mapped by
 * bitmap number, and written into the btree when their slot is needed for
 * another bitmap or at commit. Writing back allocates metadata blocks, i.e.
 * goes to the *metadata* space map, never back into this one.
 */
#pragma once

#include "persistent/btree.h"
#include "space_map/index_store.h"

namespace dmxx::pdata {

class BtreeIndexStore final : public IndexStore {
public:
	explicit BtreeIndexStore(TransactionManager &tm);

	/* A new, empty index btree. */
	Result<void> create();
	/* Use the btree at @root; the cache starts empty. */
	void open(block_t root);

	Result<IndexEntry> load(u64 index) override;
	/* Never fills or evicts: safe for concurrent readers (no writer running). */
	Result<IndexEntry> peek(u64 index) const override;
	Result<void> save(u64 index, const IndexEntry &ie) override;
	u64 max_entries() const override { return ~u64(0); }
	Result<void> commit() override;
	block_t root() const override { return m_root; }

private:
	static constexpr unsigned cache_slots = 64;

	struct Slot {
		u64 index;
		IndexEntry ie;
		bool valid;
		bool dirty;
	};

	Slot &slot_for(u64 index) { return m_cache[index % cache_slots]; }
	const Slot &slot_for(u64 index) const { return m_cache[index % cache_slots]; }
	Result<void> write_back(Slot &s);
	Result<IndexEntry> lookup_tree(u64 index) const;

	PlainValue m_value_type{sizeof(IndexEntry)};
	mutable Btree m_tree;
	block_t m_root = 0;
	Slot m_cache[cache_slots] = {};
};

} // namespace dmxx::pdata
