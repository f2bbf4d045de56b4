/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bit counting the kernel build can link. __builtin_popcount* becomes a call
 * to libgcc's __popcountdi2 unless the target has POPCNT, which the kernel's
 * flags do not assume (the kernel patches hweight64 at boot instead); the
 * module would then fail modpost. ctz/clz are fine: they compile to bsf/bsr.
 */
#pragma once

#include <dmxx/types.h>

namespace dmxx {

/* Set bits in @v (SWAR: pairs, nibbles, bytes, then one multiply sums the bytes). */
constexpr unsigned popcount64(u64 v)
{
	v = v - ((v >> 1) & 0x5555555555555555ull);
	v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return unsigned((v * 0x0101010101010101ull) >> 56);
}

static_assert(popcount64(0) == 0 && popcount64(~0ull) == 64 && popcount64(0x8000000000000001ull) == 2);

} // namespace dmxx
