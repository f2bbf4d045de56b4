/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Error numbers used by the core. The values are Linux's (asm-generic/errno),
 * which glibc shares on Linux, so an error crosses the porting seam unchanged
 * in both directions.
 */
#pragma once

/*
 * A userspace file may include <cerrno> before us; its macros have the same
 * Linux values, so then they simply stand in for this enum.
 */
#ifndef EPERM
namespace dmxx {
enum Errno : int {
	EPERM = 1,
	ENOENT = 2,
	EIO = 5,
	ENXIO = 6,
	E2BIG = 7,
	EAGAIN = 11,
	ENOMEM = 12,
	EBUSY = 16,
	EEXIST = 17,
	ENODEV = 19,
	EINVAL = 22,
	ENOSPC = 28,
	ERANGE = 34,
	ENODATA = 61,
	EOVERFLOW = 75,
	EILSEQ = 84,
	EOPNOTSUPP = 95,
	ETIMEDOUT = 110,
};
} // namespace dmxx
#endif
