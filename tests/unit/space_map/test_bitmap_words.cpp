// SPDX-License-Identifier: GPL-2.0
// The 2-bit entries of a bitmap block: the kernel's bit layout, and the
// word-at-a-time search against a one-entry-at-a-time reference.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "space_map/bitmap_words.h"
#include "space_map/sm_format.h"

using namespace dmxx::pdata;

TEST(BitmapWords, KernelBitLayout)
{
	/* Entry i: bit 2i is the HIGH bit of the count, bit 2i+1 the LOW bit. */
	std::vector<u8> buf(16, 0);
	bitmap::set(buf.data(), 0, 1);
	EXPECT_EQ(buf[0], 0x02);
	bitmap::set(buf.data(), 1, 2);
	EXPECT_EQ(buf[0], 0x06);
	bitmap::set(buf.data(), 2, 3);
	EXPECT_EQ(buf[0], 0x36);
	bitmap::set(buf.data(), 33, 1); /* second le64 word, entry 1 */
	EXPECT_EQ(buf[8], 0x08);
	EXPECT_EQ(bitmap::get(buf.data(), 0), 1u);
	EXPECT_EQ(bitmap::get(buf.data(), 1), 2u);
	EXPECT_EQ(bitmap::get(buf.data(), 2), 3u);
	EXPECT_EQ(bitmap::get(buf.data(), 3), 0u);
	EXPECT_EQ(bitmap::get(buf.data(), 33), 1u);
	bitmap::set(buf.data(), 2, 0);
	EXPECT_EQ(buf[0], 0x06);
}

TEST(BitmapWords, FormatConstants)
{
	EXPECT_EQ(bitmap_entries_per_block(4096), 16320u);
	EXPECT_EQ(metadata_sm_max_blocks, 255ull * 16320);
	EXPECT_EQ(nr_bitmaps_for(0, 16320), 0u);
	EXPECT_EQ(nr_bitmaps_for(16320, 16320), 1u);
	EXPECT_EQ(nr_bitmaps_for(16321, 16320), 2u);
}

static u32 naive_find(const std::vector<u32> &a, const std::vector<u32> *b, u32 begin, u32 end)
{
	for (u32 i = begin; i < end; i++)
		if (a[i] == 0 && (!b || (*b)[i] == 0))
			return i;
	return end;
}

TEST(BitmapWords, SearchMatchesReference)
{
	const u32 n = 16320;
	std::mt19937_64 rng(7);
	for (int round = 0; round < 40; round++) {
		/* Dense rounds leave few free entries, so whole words get skipped. */
		unsigned density = 1 + round % 10;
		std::vector<u32> va(n), vb(n);
		std::vector<u8> ba(n / 4, 0), bb(n / 4, 0);
		for (u32 i = 0; i < n; i++) {
			va[i] = rng() % 10 < density ? 1 + rng() % 3 : 0;
			vb[i] = rng() % 10 < density ? 1 + rng() % 3 : 0;
			bitmap::set(ba.data(), i, va[i]);
			bitmap::set(bb.data(), i, vb[i]);
		}
		for (u32 i = 0; i < n; i++)
			ASSERT_EQ(bitmap::get(ba.data(), i), va[i]);
		for (int q = 0; q < 200; q++) {
			u32 x = rng() % (n + 1), y = rng() % (n + 1);
			u32 lo = std::min(x, y), hi = std::max(x, y);
			ASSERT_EQ(bitmap::find_free(ba.data(), nullptr, lo, hi),
				  naive_find(va, nullptr, lo, hi))
				<< lo << ".." << hi;
			ASSERT_EQ(bitmap::find_free(ba.data(), bb.data(), lo, hi),
				  naive_find(va, &vb, lo, hi))
				<< lo << ".." << hi;
			u32 zeroes = 0;
			for (u32 i = lo; i < hi; i++)
				zeroes += va[i] == 0;
			ASSERT_EQ(bitmap::count_free(ba.data(), lo, hi), zeroes);
		}
	}
}

TEST(BitmapWords, RangeMaskEdges)
{
	EXPECT_EQ(bitmap::range_mask(0, 32), bitmap::even_bits);
	EXPECT_EQ(bitmap::range_mask(0, 0), 0u);
	EXPECT_EQ(bitmap::range_mask(31, 32), 1ull << 62);
	EXPECT_EQ(bitmap::range_mask(0, 1), 1ull);
	EXPECT_EQ(bitmap::free_mask(0), bitmap::even_bits);
	EXPECT_EQ(bitmap::free_mask(~0ull), 0u);
	EXPECT_EQ(bitmap::free_mask(0x2), bitmap::even_bits & ~1ull); /* count 1 at entry 0 */
}
