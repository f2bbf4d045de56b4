// SPDX-License-Identifier: GPL-2.0
/*
 * Generates dmxx_kernel_offsets.h: struct offsets, sizes and constants that
 * the C++ core needs from kernel headers it cannot include. This is kbuild's
 * asm-offsets technique: the compiler evaluates each DEFINE() into an .s
 * file and kbuild's filechk_offsets turns the markers into #defines. Built
 * against the headers of the kernel we load into, so the layouts are exact.
 */
#define COMPILE_OFFSETS
#include <linux/kbuild.h>
#include <linux/bio.h>
#include <linux/blk_types.h>
#include <linux/completion.h>
#include <linux/device-mapper.h>
#include <linux/dm-ioctl.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#define SIZE(sym, type) DEFINE(sym, sizeof(type))

int main(void)
{
	COMMENT("struct bio");
	OFFSET(DMXX_BIO_NEXT, bio, bi_next);
	OFFSET(DMXX_BIO_BDEV, bio, bi_bdev);
	OFFSET(DMXX_BIO_OPF, bio, bi_opf);
	OFFSET(DMXX_BIO_FLAGS, bio, bi_flags);
	OFFSET(DMXX_BIO_STATUS, bio, bi_status);
	OFFSET(DMXX_BIO_SECTOR, bio, bi_iter.bi_sector);
	OFFSET(DMXX_BIO_SIZE, bio, bi_iter.bi_size);
	OFFSET(DMXX_BIO_END_IO, bio, bi_end_io);
	OFFSET(DMXX_BIO_PRIVATE, bio, bi_private);
	DEFINE(DMXX_BIO_FLAG_REMAPPED, BIO_REMAPPED);
	DEFINE(DMXX_BIO_FLAG_BPS_THROTTLED, BIO_BPS_THROTTLED);
	BLANK();

	COMMENT("request operations and flags");
	DEFINE(DMXX_REQ_OP_MASK, REQ_OP_MASK);
	DEFINE(DMXX_REQ_OP_READ, REQ_OP_READ);
	DEFINE(DMXX_REQ_OP_WRITE, REQ_OP_WRITE);
	DEFINE(DMXX_REQ_OP_FLUSH, REQ_OP_FLUSH);
	DEFINE(DMXX_REQ_OP_DISCARD, REQ_OP_DISCARD);
	DEFINE(DMXX_REQ_OP_SECURE_ERASE, REQ_OP_SECURE_ERASE);
	DEFINE(DMXX_REQ_OP_WRITE_ZEROES, REQ_OP_WRITE_ZEROES);
	DEFINE(DMXX_REQ_SYNC, (__force u32)REQ_SYNC);
	DEFINE(DMXX_REQ_META, (__force u32)REQ_META);
	DEFINE(DMXX_REQ_FUA, (__force u32)REQ_FUA);
	DEFINE(DMXX_REQ_PREFLUSH, (__force u32)REQ_PREFLUSH);
	DEFINE(DMXX_REQ_NOWAIT, (__force u32)REQ_NOWAIT);
	BLANK();

	COMMENT("block status codes");
	DEFINE(DMXX_BLK_STS_OK, (__force u8)BLK_STS_OK);
	DEFINE(DMXX_BLK_STS_NOTSUPP, (__force u8)BLK_STS_NOTSUPP);
	DEFINE(DMXX_BLK_STS_NOSPC, (__force u8)BLK_STS_NOSPC);
	DEFINE(DMXX_BLK_STS_RESOURCE, (__force u8)BLK_STS_RESOURCE);
	DEFINE(DMXX_BLK_STS_AGAIN, (__force u8)BLK_STS_AGAIN);
	DEFINE(DMXX_BLK_STS_IOERR, (__force u8)BLK_STS_IOERR);
	BLANK();

	COMMENT("struct dm_target");
	OFFSET(DMXX_TI_BEGIN, dm_target, begin);
	OFFSET(DMXX_TI_LEN, dm_target, len);
	OFFSET(DMXX_TI_PRIVATE, dm_target, private);
	DEFINE(DMXX_DM_MAPIO_SUBMITTED, DM_MAPIO_SUBMITTED);
	DEFINE(DMXX_DM_MAPIO_REMAPPED, DM_MAPIO_REMAPPED);
	DEFINE(DMXX_DM_MAPIO_REQUEUE, DM_MAPIO_REQUEUE);
	DEFINE(DMXX_DM_MAPIO_DELAY_REQUEUE, DM_MAPIO_DELAY_REQUEUE);
	DEFINE(DMXX_DM_MAPIO_KILL, DM_MAPIO_KILL);
	DEFINE(DMXX_DM_ENDIO_DONE, DM_ENDIO_DONE);
	DEFINE(DMXX_DM_ENDIO_INCOMPLETE, DM_ENDIO_INCOMPLETE);
	DEFINE(DMXX_DM_ENDIO_REQUEUE, DM_ENDIO_REQUEUE);
	DEFINE(DMXX_STATUSTYPE_INFO, STATUSTYPE_INFO);
	DEFINE(DMXX_STATUSTYPE_TABLE, STATUSTYPE_TABLE);
	DEFINE(DMXX_STATUSTYPE_IMA, STATUSTYPE_IMA);
	DEFINE(DMXX_TARGET_SINGLETON, DM_TARGET_SINGLETON);
	DEFINE(DMXX_TARGET_ALWAYS_WRITEABLE, DM_TARGET_ALWAYS_WRITEABLE);
	DEFINE(DMXX_TARGET_IMMUTABLE, DM_TARGET_IMMUTABLE);
	DEFINE(DMXX_TARGET_PASSES_INTEGRITY, DM_TARGET_PASSES_INTEGRITY);
	DEFINE(DMXX_TARGET_ZONED_HM, DM_TARGET_ZONED_HM);
	DEFINE(DMXX_TARGET_NOWAIT, DM_TARGET_NOWAIT);
	DEFINE(DMXX_TARGET_PASSES_CRYPTO, DM_TARGET_PASSES_CRYPTO);
	BLANK();

	COMMENT("bio memory");
	SIZE(DMXX_BIO_STRUCT_SIZE, struct bio);
	SIZE(DMXX_BVEC_SIZE, struct bio_vec);
	BLANK();

	COMMENT("sizes of embeddable platform objects");
	SIZE(DMXX_K_SPINLOCK_SIZE, spinlock_t);
	SIZE(DMXX_K_MUTEX_SIZE, struct mutex);
	SIZE(DMXX_K_RWSEM_SIZE, struct rw_semaphore);
	SIZE(DMXX_K_COMPLETION_SIZE, struct completion);
	SIZE(DMXX_K_WAITQ_SIZE, struct wait_queue_head);
	SIZE(DMXX_K_WAIT_ENTRY_SIZE, struct wait_queue_entry);
	SIZE(DMXX_K_WORK_SIZE, struct work_struct);
	return 0;
}
