// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace implementation of module parameters (include/dmxx/params.h).
 *
 * A fixed table of name/value pairs, empty at start: reading a parameter
 * nobody set is -ENOENT and the caller uses its default, exactly as if the
 * module had been loaded without it. Tests set values with
 * dmxx_user_param_set_uint() (as insmod or a sysfs write would).
 */
#include <dmxx/params.h>

#include <errno.h>
#include <mutex>
#include <string.h>

namespace {

struct Param {
	char name[64];
	unsigned value;
};

constexpr unsigned max_params = 32;
std::mutex g_lock;
Param g_params[max_params];
unsigned g_count;

Param *find(const char *name)
{
	for (unsigned i = 0; i < g_count; i++)
		if (!strcmp(g_params[i].name, name))
			return &g_params[i];
	return nullptr;
}

} // namespace

int dmxx_param_read_uint(const char *name, unsigned *out) noexcept
{
	std::lock_guard<std::mutex> g(g_lock);
	Param *p = find(name);
	if (!p)
		return -ENOENT;
	*out = p->value;
	return 0;
}

int dmxx_user_param_set_uint(const char *name, unsigned value) noexcept
{
	std::lock_guard<std::mutex> g(g_lock);
	if (Param *p = find(name)) {
		p->value = value;
		return 0;
	}
	if (g_count == max_params || strlen(name) >= sizeof(g_params[0].name))
		return -ENOSPC;
	strcpy(g_params[g_count].name, name);
	g_params[g_count].value = value;
	g_count++;
	return 0;
}
