/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel platform: sizes and constants, taken from the offsets header that
 * kbuild generates from this kernel's own headers (dm_core/kernel/offsets.c).
 */
#ifndef DMXX_IMPL_PLATFORM_CONFIG_H
#define DMXX_IMPL_PLATFORM_CONFIG_H

#include <dmxx_kernel_offsets.h>

#define DMXX_ROUND8(x) ((((x) + 7) / 8) * 8)
#define DMXX_LOCK_ALIGN 8
#define DMXX_SPINLOCK_SIZE DMXX_ROUND8(DMXX_K_SPINLOCK_SIZE)
#define DMXX_MUTEX_SIZE DMXX_ROUND8(DMXX_K_MUTEX_SIZE)
#define DMXX_RWSEM_SIZE DMXX_ROUND8(DMXX_K_RWSEM_SIZE)
#define DMXX_COMPLETION_SIZE DMXX_ROUND8(DMXX_K_COMPLETION_SIZE)
#define DMXX_WAITQ_SIZE DMXX_ROUND8(DMXX_K_WAITQ_SIZE)
#define DMXX_WAIT_ENTRY_SIZE DMXX_ROUND8(DMXX_K_WAIT_ENTRY_SIZE)
#define DMXX_WORK_SIZE DMXX_ROUND8(DMXX_K_WORK_SIZE)

#endif
