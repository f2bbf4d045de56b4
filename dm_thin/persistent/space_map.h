/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A space map: the reference count of every block of a device.
 *
 * Two implementations, both in the kernel's on-disk format (dm_thin/space_map/):
 *   - the disk space map counts the pool's DATA blocks; its bitmaps and index
 *     btree live on the metadata device;
 *   - the metadata space map counts the METADATA device's own blocks, and so
 *     allocates the blocks that hold its own structures (it must cope with
 *     being re-entered through the transaction manager).
 * The transaction manager (transaction.h) allocates, shadows and frees blocks
 * through this interface and never sees which implementation it has.
 *
 * Counts change within a transaction; commit() makes them durable together
 * with the rest of the metadata. A block whose count drops to zero must not
 * be handed out again by new_block() before the next commit: the last
 * committed transaction may still point at it, and a crash would lose it.
 */
#pragma once

#include <dmxx/result.h>
#include <dmxx/types.h>

namespace dmxx::pdata {

using block_t = u64;

class SpaceMap {
public:
	virtual ~SpaceMap() = default;

	virtual Result<block_t> nr_blocks() = 0;
	virtual Result<block_t> nr_free() = 0;

	virtual Result<u32> get_count(block_t b) = 0;
	/* Cheaper than get_count() for the btree's "is this node shared?" question. */
	virtual Result<bool> count_is_more_than_one(block_t b) = 0;
	virtual Result<void> set_count(block_t b, u32 count) = 0;
	virtual Result<void> inc(block_t b) = 0;
	virtual Result<void> dec(block_t b) = 0;

	/* Allocate a free block (count 0 -> 1); -ENOSPC when there is none. */
	virtual Result<block_t> new_block() = 0;

	/* Make this transaction's counts durable (writes through the transaction manager). */
	virtual Result<void> commit() = 0;

	/* Grow the device by @extra blocks (all free). */
	virtual Result<void> extend(block_t extra) = 0;

	/*
	 * The root this map is reopened from, as stored in the superblock (the
	 * kernel's sm_root: 128 bytes for both maps). Valid after commit().
	 */
	virtual usize root_size() = 0;
	virtual Result<void> copy_root(void *dst, usize len) = 0;
};

} // namespace dmxx::pdata
