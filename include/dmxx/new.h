/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Allocation that can fail, with the caller saying how it may block.
 *
 * There is deliberately no plain `new T`: every allocation names an AllocMode
 * and every caller checks for nullptr. Both builds pass -fcheck-new, so the
 * compiler keeps the null check after the allocation function and skips the
 * constructor when allocation fails.
 */
#pragma once

#include <dmxx/placement.h>
#include <dmxx/platform.h>
#include <dmxx/types.h>
#include <dmxx/utility.h>

namespace dmxx {
enum class AllocMode : unsigned {
	Sleep = DMXX_ALLOC_SLEEP,   /* may sleep and start I/O (GFP_KERNEL) */
	NoIO = DMXX_ALLOC_NOIO,     /* may sleep, must not recurse into I/O (GFP_NOIO) */
	NoWait = DMXX_ALLOC_NOWAIT, /* never sleeps; fails fast (GFP_NOWAIT) */
	Atomic = DMXX_ALLOC_ATOMIC, /* never sleeps; may dip into reserves */
};
} // namespace dmxx

void *operator new(dmxx::size_t size, dmxx::AllocMode mode) noexcept;
void *operator new[](dmxx::size_t size, dmxx::AllocMode mode) noexcept;
void operator delete(void *p) noexcept;
void operator delete[](void *p) noexcept;
void operator delete(void *p, dmxx::size_t) noexcept;
void operator delete[](void *p, dmxx::size_t) noexcept;

namespace dmxx {
/* Construct a T; nullptr if the allocation failed. */
template <typename T, typename... Args> T *try_new(AllocMode mode, Args &&...args)
{
	return new (mode) T(forward<Args>(args)...);
}
} // namespace dmxx
