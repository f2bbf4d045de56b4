// SPDX-License-Identifier: GPL-2.0
#include "block_io.h"

#include <dmxx/atomic.h>
#include <dmxx/bio.h>
#include <dmxx/wait.h>

namespace dmxx {

namespace {

/* Lives on the waiter's stack; the last reference (a bio or the submitter) completes it. */
struct SyncIo {
	Atomic<unsigned> refs{1};
	Atomic<u8> status{0};
	Completion done;

	void put()
	{
		if (refs.fetch_sub(1, Order::AcqRel) == 1)
			done.complete();
	}
};

void sync_bio_done(bio *b, void *priv)
{
	auto *io = static_cast<SyncIo *>(priv);
	u8 st = bio_status(b);
	BioSet::free(b);
	if (st)
		io->status.store(st, Order::Relaxed);
	io->put();
}

} // namespace

Result<void> block_io_sync(BioSet &set, block_device *bdev, u32 opf, sector_t sector, void *buf,
			   unsigned long bytes, unsigned max_bytes)
{
	SyncIo io;
	u8 *p = static_cast<u8 *>(buf);
	unsigned long off = 0;
	bool first = true;
	do {
		unsigned long left = bytes - off;
		unsigned len = unsigned(left < max_bytes ? left : max_bytes);
		u32 flags = opf;
		if (!first)
			flags &= ~DMXX_REQ_PREFLUSH;
		unsigned vecs = len ? dmxx_bio_data_vecs(p + off, len) : 0;
		bio *b = set.alloc(bdev, flags, vecs, AllocMode::NoIO, sync_bio_done, &io);
		if (!b) {
			io.status.store(DMXX_BLK_STS_RESOURCE, Order::Relaxed);
			break;
		}
		bio_set_sector(b, sector + (off >> 9));
		if (len && dmxx_bio_add_data(b, p + off, len) < 0)
			dmxx_fatal("block_io_sync: bio set has too few vecs");
		io.refs.fetch_add(1, Order::Relaxed);
		dmxx_submit_bio(b);
		off += len;
		first = false;
	} while (off < bytes);
	io.put();
	io.done.wait();
	if (io.status.load(Order::Relaxed))
		return err(EIO);
	return {};
}

Result<void> block_flush_sync(BioSet &set, block_device *bdev)
{
	return block_io_sync(set, bdev, DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH, 0, nullptr, 0);
}

} // namespace dmxx
