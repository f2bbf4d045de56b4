/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The persistent-data block checksum and the per-block-type salts.
 *
 * Every metadata block starts with a le32 checksum of the rest of the block.
 * The format XORs a different constant into each block type's checksum so a
 * block of one type can never pass as another even if its bytes happen to
 * parse. The value is the raw CRC-32C register after starting from ~0, with
 * no final inversion, XOR the salt: exactly what the kernel's
 * dm_bm_checksum() and thin-provisioning-tools compute, so images are
 * interchangeable with theirs.
 */
#pragma once

#include <dmxx/platform.h>
#include <dmxx/types.h>

namespace dmxx::pdata {

/* Salts of the kernel format (one per block type). */
constexpr u32 BTREE_NODE_CSUM_XOR = 121107;
constexpr u32 SM_INDEX_CSUM_XOR = 160478;  /* space-map index / metadata root block */
constexpr u32 SM_BITMAP_CSUM_XOR = 240779; /* space-map bitmap blocks */
constexpr u32 THIN_SUPERBLOCK_CSUM_XOR = 160774;

/* Checksum of @len bytes at @data for a block type salted with @salt. */
inline u32 block_checksum(const void *data, usize len, u32 salt)
{
	return dmxx_crc32c(0xffffffffu, data, len) ^ salt;
}

} // namespace dmxx::pdata
