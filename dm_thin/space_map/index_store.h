/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a space map keeps its index entries (one per bitmap block).
 *
 * The two maps differ only here: the disk space map has a btree of entries
 * (it can grow without limit), the metadata space map one index block that it
 * keeps in memory (it must not need its own btree to find its own bitmaps).
 * Everything else - bitmaps, overflow counts, search - is shared
 * (ref_counts.h) and sees only this interface.
 *
 * load()/save() are for the one (serialised) writer and may change cached
 * state; peek() is for readers that may run concurrently with each other and
 * changes nothing. commit() makes the entries durable through the
 * transaction manager; root() is what the space map root records afterwards.
 */
#pragma once

#include <dmxx/result.h>

#include "persistent/space_map.h"
#include "space_map/sm_format.h"

namespace dmxx::pdata {

class IndexStore {
public:
	virtual Result<IndexEntry> load(u64 index) = 0;
	virtual Result<IndexEntry> peek(u64 index) const = 0;
	virtual Result<void> save(u64 index, const IndexEntry &ie) = 0;
	/* How many bitmaps this store can describe. */
	virtual u64 max_entries() const = 0;
	virtual Result<void> commit() = 0;
	virtual block_t root() const = 0;

protected:
	~IndexStore() = default;
};

} // namespace dmxx::pdata
