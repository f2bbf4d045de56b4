// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel glue: checksums. Kept out of platform_kernel.c so that only the
 * modules that checksum metadata (thin) depend on libcrc32c.
 */
#include <linux/crc32c.h>
#include <dmxx/platform.h>

unsigned dmxx_crc32c(unsigned seed, const void *data, unsigned long len)
{
	return crc32c(seed, data, len);
}
