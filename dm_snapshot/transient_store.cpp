// SPDX-License-Identifier: GPL-2.0
/*
 * The N store: exceptions live only in the snapshot's tables. COW chunks are
 * handed out from the start of the device, with no header and no metadata.
 */
#include "transient_store.h"

#include <dmxx/platform.h>

namespace dmxx::snap {

TransientStore::TransientStore(block_device *cow, u32 chunk_sectors) : m_cow(cow)
{
	set_chunk_size(chunk_sectors);
}

Result<bool> TransientStore::read_metadata(AddFn, void *) { return true; }

Result<chunk_t> TransientStore::prepare_exception()
{
	sector_t size = dmxx_bdev_nr_sectors(m_cow);
	if (size < m_next_free + chunk_size())
		return err(ENOSPC);
	chunk_t c = m_next_free >> chunk_shift();
	m_next_free += chunk_size();
	return c;
}

/* Nothing to record: the exception is as durable as it will ever be. */
void TransientStore::commit_exception(CommitRequest *req) { req->done(req, req->copied); }

void TransientStore::drop_snapshot(DropDoneFn done, void *ctx) { done(ctx); }

Usage TransientStore::usage()
{
	Guard g(alloc_lock);
	return {dmxx_bdev_nr_sectors(m_cow), m_next_free, 0};
}

void TransientStore::emit_table(StatusWriter &out) const { out.emit(" N %u", chunk_size()); }

} // namespace dmxx::snap
