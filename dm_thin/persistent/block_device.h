/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where metadata blocks live: a device addressed in fixed 4 KiB blocks.
 *
 * Why an interface of its own rather than bios: the persistent-data layers
 * (cache, transactions, btrees, space maps) must run unchanged on a kernel
 * block device, on an image file that thin_check reads, in memory, and under
 * fault injection that models a crash mid-commit. All of them only need
 * "read this block, write this block, make what was written durable".
 *
 * Durability model (what crash tests rely on): a write() that returned may
 * still sit in a volatile cache; only after flush() returns are all earlier
 * writes durable. Writes are atomic per block (no torn 4 KiB blocks); the
 * kernel format's commit protocol assumes the same of real devices.
 *
 * Implementations must accept concurrent calls for different blocks; the
 * block cache never reads and writes the same block at once.
 */
#pragma once

#include <dmxx/result.h>
#include <dmxx/types.h>

#include "persistent/space_map.h" /* block_t */

namespace dmxx::pdata {

/* The kernel's THIN_METADATA_BLOCK_SIZE / DM_SM_METADATA_BLOCK_SIZE. */
constexpr usize METADATA_BLOCK_SIZE = 4096;
constexpr unsigned METADATA_BLOCK_SHIFT = 12;

class BlockDevice {
public:
	virtual ~BlockDevice() = default;

	/* Size in METADATA_BLOCK_SIZE blocks (it may grow: metadata resize). */
	virtual Result<block_t> nr_blocks() = 0;

	/*
	 * Copy block @b into @buf (METADATA_BLOCK_SIZE bytes). -EINVAL if @b is
	 * beyond the end, -EIO on a device error.
	 */
	virtual Result<void> read(block_t b, void *buf) = 0;

	/* Write @buf to block @b; volatile until the next flush(). Errors as read(). */
	virtual Result<void> write(block_t b, const void *buf) = 0;

	/* Barrier: every write that returned before this call is durable when it returns. */
	virtual Result<void> flush() = 0;
};

} // namespace dmxx::pdata
