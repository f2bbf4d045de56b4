/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Little-endian on-disk integers (the kernel's __le16/__le32/__le64).
 *
 * Distinct types, so an on-disk field cannot be used as a CPU value without
 * saying so: `hdr.magic = to_le32(SNAP_MAGIC)`, `u64 b = from_le(entry.block)`.
 * They are trivially copyable and exactly as large as the raw integer, so
 * they can sit in packed on-disk structs.
 */
#pragma once

#include <dmxx/types.h>

namespace dmxx {

namespace detail {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr u16 le_swap(u16 v) { return v; }
constexpr u32 le_swap(u32 v) { return v; }
constexpr u64 le_swap(u64 v) { return v; }
#else
constexpr u16 le_swap(u16 v) { return __builtin_bswap16(v); }
constexpr u32 le_swap(u32 v) { return __builtin_bswap32(v); }
constexpr u64 le_swap(u64 v) { return __builtin_bswap64(v); }
#endif
} // namespace detail

struct le16 { u16 raw; };
struct le32 { u32 raw; };
struct le64 { u64 raw; };
static_assert(sizeof(le16) == 2 && sizeof(le32) == 4 && sizeof(le64) == 8);

constexpr le16 to_le16(u16 v) { return le16{detail::le_swap(v)}; }
constexpr le32 to_le32(u32 v) { return le32{detail::le_swap(v)}; }
constexpr le64 to_le64(u64 v) { return le64{detail::le_swap(v)}; }
constexpr u16 from_le(le16 v) { return detail::le_swap(v.raw); }
constexpr u32 from_le(le32 v) { return detail::le_swap(v.raw); }
constexpr u64 from_le(le64 v) { return detail::le_swap(v.raw); }

/* Unaligned little-endian loads and stores, for fields inside byte buffers. */
inline u32 load_le32(const void *p)
{
	u32 v;
	__builtin_memcpy(&v, p, sizeof(v));
	return detail::le_swap(v);
}
inline u64 load_le64(const void *p)
{
	u64 v;
	__builtin_memcpy(&v, p, sizeof(v));
	return detail::le_swap(v);
}
inline void store_le32(void *p, u32 v)
{
	v = detail::le_swap(v);
	__builtin_memcpy(p, &v, sizeof(v));
}
inline void store_le64(void *p, u64 v)
{
	v = detail::le_swap(v);
	__builtin_memcpy(p, &v, sizeof(v));
}

} // namespace dmxx
