/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The disk space map: reference counts of the pool's DATA blocks, stored on
 * the metadata device (kernel format: index btree, bitmaps, overflow btree).
 * Its own structures are allocated through the transaction manager, i.e.
 * counted by the metadata space map; it never re-enters itself.
 *
 * Two views: the open transaction's counts and the last committed ones.
 * new_block() takes only blocks free in both, so a data block freed in this
 * transaction is not overwritten while the committed mappings may still
 * point at it (a crash would otherwise corrupt a committed thin's data).
 * nr_free() counts exactly those blocks, so it is zero exactly when
 * new_block() would fail.
 *
 * nr_blocks() and nr_free() include an extension at once (the kernel's
 * disk map hides it until commit, but lets new_block() use it anyway).
 * copy_root() is meaningful after commit(): index entries are written back
 * into the index btree only then.
 *
 * Concurrency: mutating calls are serialised by the caller; get_count(),
 * count_is_more_than_one(), nr_blocks() and nr_free() change nothing and
 * may run concurrently with each other while no mutating call runs.
 * After any error from a mutating call the transaction must be aborted and
 * the map reopened from the last committed root.
 */
#pragma once

#include "persistent/space_map.h"
#include "persistent/transaction.h"
#include "space_map/btree_index_store.h"
#include "space_map/ref_counts.h"

namespace dmxx::pdata {

class DiskSpaceMap final : public SpaceMap {
public:
	/* A map of @nr_blocks free data blocks, committed (its root is valid at once). */
	static Result<DiskSpaceMap *> create(TransactionManager &tm, block_t nr_blocks);
	/*
	 * Reopen from a root saved by copy_root(). -EINVAL if @len is short,
	 * -EILSEQ if the root or its first index entry and bitmap are damaged.
	 */
	static Result<DiskSpaceMap *> open(TransactionManager &tm, const void *root, usize len);

	~DiskSpaceMap() override = default;

	Result<block_t> nr_blocks() override { return m_cur.nr_blocks(); }
	Result<block_t> nr_free() override { return m_cur.free_now(); }
	Result<u32> get_count(block_t b) override { return m_cur.lookup(b); }
	Result<bool> count_is_more_than_one(block_t b) override;
	Result<void> set_count(block_t b, u32 count) override { return m_cur.set(b, count); }
	Result<void> inc(block_t b) override { return m_cur.inc(b, b + 1); }
	Result<void> dec(block_t b) override { return m_cur.dec(b, b + 1); }
	/* Range forms, for callers that change runs of blocks (thin delete, discard). */
	Result<void> inc_range(block_t b, block_t e) { return m_cur.inc(b, e); }
	Result<void> dec_range(block_t b, block_t e) { return m_cur.dec(b, e); }
	Result<block_t> new_block() override;
	Result<void> commit() override;
	Result<void> extend(block_t extra) override { return m_cur.extend(extra); }
	usize root_size() override { return sizeof(SmRoot); }
	Result<void> copy_root(void *dst, usize len) override;

private:
	explicit DiskSpaceMap(TransactionManager &tm);

	BtreeIndexStore m_cur_index;
	BtreeIndexStore m_old_index;
	RefCounts m_cur;
	RefCounts m_old;
	block_t m_search_from = 0; /* the next search starts here: allocation goes round */
};

} // namespace dmxx::pdata
