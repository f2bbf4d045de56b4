// SPDX-License-Identifier: GPL-2.0
/*
 * dmxx_linear.ko: the dmxx-linear pass-through target (dm_core/passthrough_target.cpp)
 * and its bio-set variant dmxx-clone (dm_core/clone_target.cpp).
 *
 * Module parameters live here, in C, and reach the C++ through
 * dmxx_param_read_uint() (include/dmxx/params.h). dmxx-clone reads them
 * when a table is loaded, so a sysfs write affects the next table load.
 */
#include <linux/errno.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>

#include <dmxx/clone_target.h>
#include <dmxx/params.h>
#include <dmxx/passthrough_target.h>

static unsigned int bioset_reserve = 16;
module_param(bioset_reserve, uint, 0644);
MODULE_PARM_DESC(bioset_reserve,
		 "dmxx-clone: bios reserved in each target's bio set (read at table load; default 16)");

static bool bioset_force_reserve;
module_param(bioset_force_reserve, bool, 0644);
MODULE_PARM_DESC(bioset_force_reserve,
		 "dmxx-clone: bio sets skip the allocator and use only the reserve, to drive the rescuer (read at table load; default 0)");

static bool bioset_rescuer = true;
module_param(bioset_rescuer, bool, 0644);
MODULE_PARM_DESC(bioset_rescuer,
		 "dmxx-clone: 0 disarms the bio sets' rescuers, a benchmark baseline that can deadlock under memory pressure (read at table load; default 1)");

int dmxx_param_read_uint(const char *name, unsigned *out)
{
	if (!strcmp(name, "bioset_reserve")) {
		*out = READ_ONCE(bioset_reserve);
		return 0;
	}
	if (!strcmp(name, "bioset_force_reserve")) {
		*out = READ_ONCE(bioset_force_reserve) ? 1 : 0;
		return 0;
	}
	if (!strcmp(name, "bioset_rescuer")) {
		*out = READ_ONCE(bioset_rescuer) ? 1 : 0;
		return 0;
	}
	return -ENOENT;
}

static int __init dmxx_linear_module_init(void)
{
	int r;

	r = dmxx_passthrough_init();
	if (r)
		return r;
	r = dmxx_clone_init();
	if (r)
		dmxx_passthrough_exit();
	return r;
}

static void __exit dmxx_linear_module_exit(void)
{
	dmxx_clone_exit();
	dmxx_passthrough_exit();
}

module_init(dmxx_linear_module_init);
module_exit(dmxx_linear_module_exit);

MODULE_DESCRIPTION("dmxx: pass-through targets (dm-linear syntax; bio-set clone variant) in kernel C++");
MODULE_AUTHOR("dmxx developers");
MODULE_LICENSE("GPL");
