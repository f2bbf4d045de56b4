/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The metadata space map: reference counts of the metadata device's own
 * blocks, stored in those same blocks (kernel format: one index block of up
 * to 255 entries, bitmaps, overflow btree).
 *
 * It hosts itself. Changing a count shadows a bitmap or an overflow node
 * through the transaction manager, which allocates a block and drops a
 * count - from this very map. So the map tracks a depth: the outermost call
 * changes the bitmaps; calls arriving while it is under way (depth > 0)
 * only queue their change (DeferredOps, a fixed ring) and the outermost
 * call applies the queue before it returns. Lookups and allocations made
 * meanwhile see the queue: a block with a queued increment is in use even
 * though its bitmap still says 0. Nothing allocates memory while recursing.
 *
 * Bootstrap: formatting a device (and growing one) needs blocks for the
 * index, bitmaps and overflow root before there are bitmaps to record them
 * in. In bootstrap mode new_block() hands out blocks one after another from
 * a known-free area (after the superblock; the new area when extending),
 * and every count change is queued; the handed-out run is counted with one
 * range increment at the end, repeated until applying the queue allocates
 * nothing more. Growing by a block or two may leave the new area too small
 * for the shadows this needs: then free blocks of the old area are used.
 *
 * Like the disk map it never hands out a block that was in use at the last
 * commit (two views, see disk_space_map.h); nr_free() counts exactly the
 * blocks new_block() may return.
 *
 * Concurrency as the disk map: one mutating caller at a time (the
 * transaction manager's callers serialise); the read-only calls may run
 * concurrently with each other when no mutating call runs.
 */
#pragma once

#include "persistent/space_map.h"
#include "persistent/transaction.h"
#include "space_map/deferred_ops.h"
#include "space_map/metadata_index_store.h"
#include "space_map/ref_counts.h"

namespace dmxx::pdata {

/* Called (from new_block, with the caller's locks held: must not sleep) when free space is low. */
using LowSpaceFn = void (*)(void *ctx);

class MetadataSpaceMap final : public SpaceMap {
public:
	/*
	 * Format the whole device of @tm (capped at metadata_sm_max_blocks): the
	 * map's structures start right after @superblock, which gets count 1.
	 * The map becomes @tm's space map. Committed on return.
	 */
	static Result<MetadataSpaceMap *> format(TransactionManager &tm, block_t superblock);
	/*
	 * Reopen from a root saved by copy_root() and become @tm's space map.
	 * -EINVAL if @len is short; -EILSEQ if the root or the index block is damaged.
	 */
	static Result<MetadataSpaceMap *> open(TransactionManager &tm, const void *root, usize len);

	~MetadataSpaceMap() override;

	Result<block_t> nr_blocks() override { return m_cur.nr_blocks(); }
	Result<block_t> nr_free() override { return m_cur.free_now(); }
	Result<u32> get_count(block_t b) override;
	Result<bool> count_is_more_than_one(block_t b) override;
	Result<void> set_count(block_t b, u32 count) override;
	Result<void> inc(block_t b) override { return inc_range(b, b + 1); }
	Result<void> dec(block_t b) override { return dec_range(b, b + 1); }
	Result<void> inc_range(block_t b, block_t e);
	Result<void> dec_range(block_t b, block_t e);
	Result<block_t> new_block() override;
	Result<void> commit() override;
	/*
	 * Grow by @extra blocks, up to metadata_sm_max_blocks; the device must
	 * have grown first (-EINVAL otherwise).
	 */
	Result<void> extend(block_t extra) override;
	usize root_size() override { return sizeof(SmRoot); }
	Result<void> copy_root(void *dst, usize len) override;

	/*
	 * Call @fn once each time nr_free() falls to @threshold or below (edge
	 * triggered: again only after it has risen above). The pool's metadata
	 * low-water event.
	 */
	void set_low_space_callback(block_t threshold, LowSpaceFn fn, void *ctx);

	/* The deepest the queue of deferred count changes has been (tests). */
	u32 deferred_high_water() const { return m_pending.high_water(); }

private:
	explicit MetadataSpaceMap(TransactionManager &tm);

	Result<void> format_device(block_t superblock);
	Result<void> change(BlockOp::Kind kind, block_t b, block_t e);
	Result<void> apply_deferred();
	Result<void> count_bootstrap_allocations();
	Result<block_t> find_unclaimed(block_t begin, block_t end);
	Result<block_t> bootstrap_new_block();
	void check_low_space();

	TransactionManager &m_tm;
	MetadataIndexStore m_cur_index;
	MetadataIndexStore m_old_index;
	RefCounts m_cur;
	RefCounts m_old;
	DeferredOps m_pending;

	u32 m_depth = 0;           /* nested calls under way */
	bool m_bootstrap = false;
	block_t m_search_from = 0; /* next block to try (bootstrap: next block to hand out) */
	block_t m_bootstrap_end = 0;
	block_t m_counted_to = 0;  /* bootstrap blocks below this are queued or counted */
	block_t m_fallback_end = 0; /* bootstrap: out of room, take free blocks below this */
	block_t m_bitmaps_ready = 0; /* bootstrap: blocks below this have their bitmaps */

	block_t m_low_threshold = 0;
	LowSpaceFn m_low_fn = nullptr;
	void *m_low_ctx = nullptr;
	bool m_low_signalled = false;
};

} // namespace dmxx::pdata
