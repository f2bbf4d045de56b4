// SPDX-License-Identifier: GPL-2.0
/*
 * dmxx_linear.ko: the dmxx-linear pass-through target (dm_core/passthrough_target.cpp).
 */
#include <linux/module.h>

#include <dmxx/passthrough_target.h>

static int __init dmxx_linear_module_init(void)
{
	return dmxx_passthrough_init();
}

static void __exit dmxx_linear_module_exit(void)
{
	dmxx_passthrough_exit();
}

module_init(dmxx_linear_module_init);
module_exit(dmxx_linear_module_exit);

MODULE_DESCRIPTION("dmxx: pass-through target (dm-linear syntax) in kernel C++");
MODULE_AUTHOR("dmxx developers");
MODULE_LICENSE("GPL");
