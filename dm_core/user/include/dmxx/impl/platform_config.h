/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace platform: sizes and constants.
 *
 * The constants are Linux 6.1's values (the kernel build generates them from
 * the kernel's headers, dm_core/kernel/offsets.c), so numbers seen in tests
 * mean what they mean in the kernel. The opaque object sizes are this
 * platform's own: they hold pthread objects plus debug state, and
 * dm_core/user/platform.cpp static_asserts that the real types fit.
 *
 * Plain C, no includes: the portable core is built with -nostdinc. Define
 * exactly the names the kernel build generates (dm_core/kernel/offsets.c),
 * so core code that compiles here compiles in the kernel too; anything the
 * model alone needs is named DMXX_USER_*.
 */
#ifndef DMXX_IMPL_PLATFORM_CONFIG_H
#define DMXX_IMPL_PLATFORM_CONFIG_H

/* ---- request operations and flags (include/linux/blk_types.h) ---- */
#define DMXX_REQ_OP_MASK 0xffu /* (1 << REQ_OP_BITS) - 1 */
#define DMXX_REQ_OP_READ 0u
#define DMXX_REQ_OP_WRITE 1u
#define DMXX_REQ_OP_FLUSH 2u
#define DMXX_REQ_OP_DISCARD 3u
#define DMXX_REQ_OP_SECURE_ERASE 5u
#define DMXX_REQ_OP_WRITE_ZEROES 9u
/* flag bits: __REQ_FAILFAST_DEV = REQ_OP_BITS, ... (6.1 enum req_flag_bits) */
#define DMXX_REQ_SYNC (1u << 11)
#define DMXX_REQ_META (1u << 12)
#define DMXX_REQ_FUA (1u << 17)
#define DMXX_REQ_PREFLUSH (1u << 18)
#define DMXX_REQ_NOWAIT (1u << 21)

/* ---- block status codes (blk_status_t) ---- */
#define DMXX_BLK_STS_OK 0
#define DMXX_BLK_STS_NOTSUPP 1
#define DMXX_BLK_STS_NOSPC 3
#define DMXX_BLK_STS_RESOURCE 9
#define DMXX_BLK_STS_IOERR 10
#define DMXX_BLK_STS_AGAIN 12
/* Private to DM (BLK_STS_DM_REQUEUE): model only, not part of the core's interface. */
#define DMXX_USER_BLK_STS_DM_REQUEUE 11

/* ---- struct bio flags (enum bio flag bits) ---- */
#define DMXX_BIO_FLAG_BPS_THROTTLED 6
#define DMXX_BIO_FLAG_REMAPPED 11

/* ---- device-mapper (include/linux/device-mapper.h) ---- */
#define DMXX_DM_MAPIO_SUBMITTED 0
#define DMXX_DM_MAPIO_REMAPPED 1
#define DMXX_DM_MAPIO_REQUEUE 2 /* DM_ENDIO_REQUEUE */
#define DMXX_DM_MAPIO_DELAY_REQUEUE 3
#define DMXX_DM_MAPIO_KILL 4
#define DMXX_DM_ENDIO_DONE 0
#define DMXX_DM_ENDIO_INCOMPLETE 1
#define DMXX_DM_ENDIO_REQUEUE 2
#define DMXX_STATUSTYPE_INFO 0
#define DMXX_STATUSTYPE_TABLE 1
#define DMXX_STATUSTYPE_IMA 2
#define DMXX_TARGET_SINGLETON 0x00000001ull
#define DMXX_TARGET_ALWAYS_WRITEABLE 0x00000002ull
#define DMXX_TARGET_IMMUTABLE 0x00000004ull
#define DMXX_TARGET_PASSES_INTEGRITY 0x00000020ull
#define DMXX_TARGET_ZONED_HM 0x00000040ull
#define DMXX_TARGET_NOWAIT 0x00000080ull
#define DMXX_TARGET_PASSES_CRYPTO 0x00000100ull

/* ---- embeddable platform objects (pthread-based, see platform.cpp) ---- */
#define DMXX_LOCK_ALIGN 8
#define DMXX_SPINLOCK_SIZE 64
#define DMXX_MUTEX_SIZE 64
#define DMXX_RWSEM_SIZE 64
#define DMXX_COMPLETION_SIZE 128
#define DMXX_WAITQ_SIZE 112
#define DMXX_WAIT_ENTRY_SIZE 32
#define DMXX_WORK_SIZE 48

#endif
