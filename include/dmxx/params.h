/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Module parameters, read by name (cold path: table constructors).
 *
 * Plain C so both platforms implement it:
 *   - kernel: each module's C file declares its module_param()s and
 *     implements dmxx_param_read_uint() over them (e.g.
 *     dm_core/kernel/module_linear.c), so the parameters appear under
 *     /sys/module/<module>/parameters/ and kernel headers stay out of C++;
 *   - userspace: dm_core/user/params.cpp, a small table tests can set.
 * Booleans read as 0 or 1. A name the module does not know is -ENOENT:
 * callers fall back to their default.
 */
#ifndef DMXX_PARAMS_H
#define DMXX_PARAMS_H

#ifdef __cplusplus
extern "C" {
#define DMXX_PARAMS_NOEXCEPT noexcept
#else
#define DMXX_PARAMS_NOEXCEPT
#endif

/* 0 and *out set, or -ENOENT (unknown name; *out untouched). */
int dmxx_param_read_uint(const char *name, unsigned *out) DMXX_PARAMS_NOEXCEPT;

/*
 * Userspace only (dm_core/user/params.cpp): set or add a parameter, as
 * insmod or a sysfs write would. 0, or -ENOSPC when the table is full.
 */
int dmxx_user_param_set_uint(const char *name, unsigned value) DMXX_PARAMS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DMXX_PARAMS_H */
