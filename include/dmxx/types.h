/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fixed-width types for the portable core.
 *
 * The kernel build compiles with -nostdinc, so <cstdint> is not available;
 * the compiler's predefined type macros give the same types on both
 * platforms without including anything.
 */
#pragma once

using u8 = __UINT8_TYPE__;
using u16 = __UINT16_TYPE__;
using u32 = __UINT32_TYPE__;
using u64 = __UINT64_TYPE__;
using s8 = __INT8_TYPE__;
using s16 = __INT16_TYPE__;
using s32 = __INT32_TYPE__;
using s64 = __INT64_TYPE__;
using usize = __SIZE_TYPE__;
using uptr = __UINTPTR_TYPE__;
using sector_t = unsigned long long; /* the kernel's sector_t is u64 */

namespace dmxx {
using size_t = __SIZE_TYPE__;
using nullptr_t = decltype(nullptr);
} // namespace dmxx

static_assert(sizeof(u64) == 8 && sizeof(sector_t) == 8, "64-bit sectors");
