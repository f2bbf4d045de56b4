/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The 2-bit counts inside a bitmap block, after its BitmapHeader.
 *
 * The payload is an array of le64 words, 32 entries per word. Entry i uses
 * bits 2i and 2i+1 of its word (bit numbers of the little-endian value), and
 * - the format's quirk - bit 2i is the HIGH bit of the count: a count of 1
 * sets bit 2i+1, a count of 2 sets bit 2i. Reading a kernel-written bitmap
 * depends on getting this exactly right, so it lives in one place.
 *
 * Searching works a word at a time: a word turns into a mask with one bit
 * (the even one) per free entry, so 32 entries are tested at once and a
 * full word costs one load.
 */
#pragma once

#include <dmxx/bits.h>
#include <dmxx/endian.h>
#include <dmxx/types.h>

namespace dmxx::pdata::bitmap {

inline constexpr u32 entries_per_word = 32;
inline constexpr u64 even_bits = 0x5555555555555555ULL;

inline u64 load_word(const u8 *payload, u32 word) { return load_le64(payload + usize(word) * 8); }
inline void store_word(u8 *payload, u32 word, u64 v) { store_le64(payload + usize(word) * 8, v); }

/* The count (0..3) of @entry. */
inline u32 get(const u8 *payload, u32 entry)
{
	u64 w = load_word(payload, entry / entries_per_word);
	unsigned shift = (entry % entries_per_word) * 2;
	u32 high = u32(w >> shift) & 1;
	u32 low = u32(w >> (shift + 1)) & 1;
	return (high << 1) | low;
}

/* Store @count (0..3) for @entry. */
inline void set(u8 *payload, u32 entry, u32 count)
{
	u32 word = entry / entries_per_word;
	unsigned shift = (entry % entries_per_word) * 2;
	u64 w = load_word(payload, word);
	w &= ~(3ULL << shift);
	w |= u64((count >> 1) & 1) << shift;
	w |= u64(count & 1) << (shift + 1);
	store_word(payload, word, w);
}

/* One bit (at 2i) per entry of @w whose count is 0. */
constexpr u64 free_mask(u64 w) { return ~(w | (w >> 1)) & even_bits; }

/* Bits 2i for entries [lo, hi) of a word, 0 <= lo <= hi <= 32. */
constexpr u64 range_mask(u32 lo, u32 hi)
{
	u64 upto_hi = hi >= entries_per_word ? ~0ULL : (1ULL << (hi * 2)) - 1;
	u64 from_lo = ~((1ULL << (lo * 2)) - 1);
	return upto_hi & from_lo & even_bits;
}

/*
 * The first entry in [begin, end) whose count is 0 in @payload and, when
 * @also_free_in is not null, also 0 there. Returns @end if there is none.
 * The second bitmap is how new_block() honours the previous transaction:
 * a block is only reusable when both views agree it is free.
 */
inline u32 find_free(const u8 *payload, const u8 *also_free_in, u32 begin, u32 end)
{
	while (begin < end) {
		u32 word = begin / entries_per_word;
		u32 lo = begin % entries_per_word;
		u32 hi = end - word * entries_per_word;
		if (hi > entries_per_word)
			hi = entries_per_word;
		u64 m = free_mask(load_word(payload, word)) & range_mask(lo, hi);
		if (m && also_free_in)
			m &= free_mask(load_word(also_free_in, word));
		if (m)
			return word * entries_per_word + u32(__builtin_ctzll(m)) / 2;
		begin = (word + 1) * entries_per_word;
	}
	return end;
}

/* Entries in [begin, end) with count 0 (for checks and tests). */
inline u32 count_free(const u8 *payload, u32 begin, u32 end)
{
	u32 n = 0;
	while (begin < end) {
		u32 word = begin / entries_per_word;
		u32 lo = begin % entries_per_word;
		u32 hi = end - word * entries_per_word;
		if (hi > entries_per_word)
			hi = entries_per_word;
		u64 m = free_mask(load_word(payload, word)) & range_mask(lo, hi);
		n += popcount64(m);
		begin = (word + 1) * entries_per_word;
	}
	return n;
}

} // namespace dmxx::pdata::bitmap
