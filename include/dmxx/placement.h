/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Placement construction without <new>.
 *
 * The standard placement operator new lives in <new>, which the kernel build
 * cannot include, and defining it ourselves would clash with <new> in the
 * userspace tests. A tagged overload is ours alone: new (dmxx::in_place, p) T.
 */
#pragma once

#include <dmxx/types.h>

namespace dmxx {
struct InPlace {};
inline constexpr InPlace in_place{};
} // namespace dmxx

inline void *operator new(dmxx::size_t, dmxx::InPlace, void *where) noexcept { return where; }
