/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Thin-pool metadata: the pool's devices and their block mappings, stored in
 * the kernel's format (format.h) through the persistent-data layers.
 *
 * One transaction is open at a time. Every change lands in shadowed
 * (copy-on-write) blocks and becomes durable only at commit(), which writes
 * the superblock last; a crash before that leaves the previous commit, and
 * abort() returns to it explicitly.
 *
 * Reference counting, as the kernel does it:
 *   - a data block's count is the number of mapping leaves that hold it
 *     (snapshots share leaves, and a shared leaf is counted once until
 *     btree shadowing splits it and increments every value in it);
 *   - insert() CONSUMES one reference the caller holds (from
 *     alloc_data_block() or inc_data_block()); the value it replaces, if
 *     any, loses one;
 *   - remove()/remove_range()/delete_device() drop the references of what
 *     they unmap.
 *
 * Concurrency: an RwSem guards the in-core roots; lookups share it, changes
 * take it exclusively. Calls may sleep (block I/O): never call with a
 * spinlock held.
 */
#pragma once

#include <dmxx/lock.h>
#include <dmxx/result.h>

#include "format.h"

namespace dmxx::pdata {
class BlockDevice;
class BlockCache;
class TransactionManager;
class SpaceMap;
} // namespace dmxx::pdata

namespace dmxx::thin {

struct LookupResult {
	block_t data_block;
	u32 time;
	bool shared; /* mapped before the device's last snapshot: a write must break sharing */
};

struct DeviceInfo {
	thin_id id;
	u64 mapped_blocks;
	u64 transaction_id;
	u32 creation_time;
	u32 snapshotted_time;
};

/*
 * Visitors run with the root lock held: they must not call back into the
 * ThinMetadata they visit. A negative return stops the walk and is returned.
 */
/* Called for each mapping, in ascending virtual block order. */
using MappingVisitor = int (*)(void *ctx, block_t vblock, block_t data_block, u32 time);
/* Called for each device, in ascending id order. */
using DeviceVisitor = int (*)(void *ctx, const DeviceInfo &dev);

struct OpenOptions {
	u32 data_block_size;     /* sectors; must match the superblock (0: accept any, tools) */
	bool read_only = false;  /* refuse every change; never writes */
	/*
	 * Blocks the cache keeps (0: a default for pools; tests use small caches
	 * so that dirty blocks are written back in the middle of a transaction).
	 */
	unsigned cache_blocks = 0;
};

class ThinMetadata {
public:
	/*
	 * Write fresh metadata over the whole of @dev (which the caller keeps
	 * alive longer than the result): no devices, @nr_data_blocks free data
	 * blocks of @data_block_size sectors, transaction id 0; committed.
	 */
	static Result<ThinMetadata *> format(pdata::BlockDevice &dev, u32 data_block_size,
					     block_t nr_data_blocks);

	/*
	 * Open existing metadata. Every refusal happens before anything could be
	 * written; @problem (optional) says exactly why the superblock was refused
	 * (SuperblockProblem::None when the error came from elsewhere).
	 */
	static Result<ThinMetadata *> open(pdata::BlockDevice &dev, const OpenOptions &opts,
					   SuperblockProblem *problem = nullptr);

	/* Drops the open transaction (no implicit commit: the caller decides). */
	~ThinMetadata();
	ThinMetadata(const ThinMetadata &) = delete;
	ThinMetadata &operator=(const ThinMetadata &) = delete;

	/* ---- devices ---- */
	Result<void> create_thin(thin_id dev);
	/* @dev shares @origin's mapping tree; the pool's time advances. */
	Result<void> create_snap(thin_id dev, thin_id origin);
	Result<void> delete_device(thin_id dev);
	Result<bool> device_exists(thin_id dev);
	Result<DeviceInfo> device_info(thin_id dev);
	Result<void> for_each_device(DeviceVisitor fn, void *ctx);

	/* ---- mappings ---- */
	/* -ENODATA when @vblock is not mapped. */
	Result<LookupResult> lookup(thin_id dev, block_t vblock);
	Result<void> insert(thin_id dev, block_t vblock, block_t data_block);
	/* -ENODATA when @vblock was not mapped. */
	Result<void> remove(thin_id dev, block_t vblock);
	/* Unmap [begin, end); returns how many mappings were removed. */
	Result<u64> remove_range(thin_id dev, block_t begin, block_t end);
	Result<u64> mapped_count(thin_id dev);
	/* -ENODATA when the device maps nothing. */
	Result<block_t> highest_mapped(thin_id dev);
	Result<void> for_each_mapping(thin_id dev, MappingVisitor fn, void *ctx);

	/* ---- data blocks ---- */
	Result<block_t> alloc_data_block();
	Result<void> inc_data_block(block_t b);
	Result<void> dec_data_block(block_t b);
	Result<u32> data_block_count(block_t b);
	Result<block_t> nr_data_blocks();
	Result<block_t> nr_free_data_blocks();

	/* ---- pool ---- */
	Result<u64> transaction_id();
	/* -EINVAL unless @current is the present id (the kernel's guard against stale tools). */
	Result<void> set_transaction_id(u64 current, u64 next);
	u32 time();
	u32 data_block_size() const { return m_data_block_size; }
	Result<block_t> nr_metadata_blocks();
	Result<block_t> nr_free_metadata_blocks();

	/* A consistent copy of the committed metadata for userspace tools (thin_dump -m). */
	Result<void> reserve_metadata_snap();
	Result<void> release_metadata_snap();
	/* 0 when none is held. */
	Result<block_t> metadata_snap();

	/* Grow the data device to @nr blocks; shrinking is -EINVAL. */
	Result<void> resize_data(block_t nr);
	/* Grow the metadata space map to @nr blocks; the device must already be that large. */
	Result<void> resize_metadata(block_t nr);

	Result<void> set_needs_check();
	bool needs_check();

	Result<void> commit();
	/* Forget the open transaction and reopen the last committed one. */
	Result<void> abort();

	/* One open transaction's machinery; opaque (thin_metadata.cpp). */
	struct Impl;

private:
	ThinMetadata(pdata::BlockDevice &dev, u32 data_block_size, bool read_only);
	Impl *m_impl = nullptr;
	pdata::BlockDevice &m_dev;
	u32 m_data_block_size;
	bool m_read_only;
	unsigned m_cache_blocks = 0;
	RwSem m_root_lock;
};

} // namespace dmxx::thin
