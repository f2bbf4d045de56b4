/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Synchronous block I/O through a BioSet, for metadata (exception store
 * headers and areas): the dm-io role for the few places that must wait.
 *
 * The buffer is cut into bios of at most @max_bytes, each allocated and
 * submitted before the next is allocated (bioset.h's rule), then the caller
 * sleeps until all have completed. REQ_PREFLUSH goes on the first bio only
 * (everything written before the call is made durable first), REQ_FUA on
 * every bio that carries it. A flush with no data is one empty bio.
 *
 * Process context only, holding no spinlock, and not from inside bio
 * submission (a target's map): the bios would wait on the caller's own
 * pending list while it sleeps. Table constructors and workers are fine.
 */
#pragma once

#include <dmxx/platform.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

#include "bioset.h"

namespace dmxx {

/*
 * @opf: DMXX_REQ_OP_READ or DMXX_REQ_OP_WRITE plus flags. @buf from dmxx_alloc
 * or dmxx_kvalloc. Ok, or -EIO if any bio failed.
 */
Result<void> block_io_sync(BioSet &set, block_device *bdev, u32 opf, sector_t sector, void *buf,
			   unsigned long bytes, unsigned max_bytes = 64 * 1024);

/* An empty REQ_PREFLUSH write: what blkdev_issue_flush() does. */
Result<void> block_flush_sync(BioSet &set, block_device *bdev);

/* Vecs a BioSet for block_io_sync needs per bio of @max_bytes (page-crossing slack included). */
constexpr unsigned block_io_vecs(unsigned max_bytes) { return (max_bytes + 4095) / 4096 + 1; }

} // namespace dmxx
