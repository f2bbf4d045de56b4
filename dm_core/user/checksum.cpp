// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), with the
 * kernel crc32c()'s convention: no inversion on entry or exit.
 * Slicing-by-8 over tables built at compile time.
 */
#include <dmxx/platform.h>

#include <cstdint>
#include <cstring>

namespace {

struct Tables {
	uint32_t t[8][256];
};

constexpr Tables make_tables()
{
	Tables tb{};
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		tb.t[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int s = 1; s < 8; s++)
			tb.t[s][i] = (tb.t[s - 1][i] >> 8) ^ tb.t[0][tb.t[s - 1][i] & 0xff];
	return tb;
}

constexpr Tables kTables = make_tables();

} // namespace

extern "C" unsigned dmxx_crc32c(unsigned seed, const void *data, unsigned long len) noexcept
{
	const auto *p = static_cast<const unsigned char *>(data);
	uint32_t crc = seed;
	while (len >= 8) {
		uint64_t w;
		std::memcpy(&w, p, 8);
		w ^= crc;
		crc = kTables.t[7][w & 0xff] ^ kTables.t[6][(w >> 8) & 0xff] ^
		      kTables.t[5][(w >> 16) & 0xff] ^ kTables.t[4][(w >> 24) & 0xff] ^
		      kTables.t[3][(w >> 32) & 0xff] ^ kTables.t[2][(w >> 40) & 0xff] ^
		      kTables.t[1][(w >> 48) & 0xff] ^ kTables.t[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = kTables.t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}
