// SPDX-License-Identifier: GPL-2.0
/*
 * The C++ runtime for the kernel build: allocation operators and the one ABI
 * hook the compiler may emit. There is no libsupc++ in the kernel; anything
 * else the compiler wants (__cxa_*, _Unwind_*, typeinfo) is a build error,
 * caught by scripts/check-cxx-object.
 */
#include <dmxx/new.h>
#include <dmxx/platform.h>

void *operator new(dmxx::size_t size, dmxx::AllocMode mode) noexcept
{
	return dmxx_alloc(size, static_cast<dmxx_alloc_mode>(mode));
}

void *operator new[](dmxx::size_t size, dmxx::AllocMode mode) noexcept
{
	return dmxx_alloc(size, static_cast<dmxx_alloc_mode>(mode));
}

void operator delete(void *p) noexcept { dmxx_free(p); }
void operator delete[](void *p) noexcept { dmxx_free(p); }
void operator delete(void *p, dmxx::size_t) noexcept { dmxx_free(p); }
void operator delete[](void *p, dmxx::size_t) noexcept { dmxx_free(p); }

/* Called through a vtable slot of an abstract class: always a bug. */
extern "C" void __cxa_pure_virtual() { dmxx_fatal("pure virtual function called"); }
