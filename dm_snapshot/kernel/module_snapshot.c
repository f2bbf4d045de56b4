// SPDX-License-Identifier: GPL-2.0
/*
 * dmxx_snapshot.ko: snapshot-origin, snapshot and snapshot-merge
 * (dm_snapshot/), registered under the kernel's own target names, so only one
 * of dm-snapshot.ko and this module can be loaded at a time.
 *
 * The module parameter lives here, in C, and reaches the C++ through
 * dmxx_param_read_uint() (include/dmxx/params.h).
 */
#include <linux/errno.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>

#include <dmxx/params.h>

#include "snapshot_module.h"

static unsigned int snapshot_cow_threshold = 2048;
module_param(snapshot_cow_threshold, uint, 0644);
MODULE_PARM_DESC(snapshot_cow_threshold,
		 "Maximum number of chunks being copied on write (0 = no limit; default 2048)");

int dmxx_param_read_uint(const char *name, unsigned *out)
{
	if (!strcmp(name, "snapshot_cow_threshold")) {
		*out = READ_ONCE(snapshot_cow_threshold);
		return 0;
	}
	return -ENOENT;
}

static int __init dmxx_snapshot_module_init(void)
{
	return dmxx_snapshot_init();
}

static void __exit dmxx_snapshot_module_exit(void)
{
	dmxx_snapshot_exit();
}

module_init(dmxx_snapshot_module_init);
module_exit(dmxx_snapshot_module_exit);

MODULE_DESCRIPTION("dmxx: snapshot-origin, snapshot and snapshot-merge targets in kernel C++");
MODULE_AUTHOR("dmxx developers");
MODULE_LICENSE("GPL");
