// SPDX-License-Identifier: GPL-2.0
/*
 * dmxx_thin.ko: today the thin-provisioning core only - bio prison, persistent
 * data (block cache, transactions, btrees, space maps) and thin metadata - so
 * that every build compiles, objtool-checks and links it as kernel code. The
 * thin-pool and thin targets that use it come next and will register here.
 */
#include <linux/module.h>

static int __init dmxx_thin_module_init(void)
{
	return 0;
}

static void __exit dmxx_thin_module_exit(void)
{
}

module_init(dmxx_thin_module_init);
module_exit(dmxx_thin_module_exit);

MODULE_DESCRIPTION("dmxx: thin-provisioning core (bio prison, persistent data, thin metadata) in kernel C++");
MODULE_AUTHOR("dmxx developers");
MODULE_LICENSE("GPL");
