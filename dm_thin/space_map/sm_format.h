/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The on-disk format of the persistent-data space maps, byte for byte the
 * kernel's (drivers/md/persistent-data), so the kernel, thin_check and we
 * can all read what any of us wrote.
 *
 * A space map stores a reference count per block:
 *   - bitmap blocks hold 2 bits per block: 0, 1, 2, or 3 meaning "3 or more,
 *     the exact count is in the overflow btree";
 *   - the overflow btree maps block -> le32 count, for counts >= 3 only;
 *   - an index entry per bitmap says where the bitmap is and how full it is.
 * The disk space map keeps its index entries in a btree (bitmap index ->
 * IndexEntry); the metadata space map keeps them in one index block.
 *
 * All integers are little-endian; every struct here is exactly its on-disk
 * size (checked below), so a block buffer can be read through it. Checksums
 * (persistent/checksum.h) use the salts SM_BITMAP_CSUM_XOR and SM_INDEX_CSUM_XOR.
 */
#pragma once

#include <dmxx/endian.h>
#include <dmxx/types.h>

namespace dmxx::pdata {

/* Where a bitmap lives and what it holds; the value type of the index. */
struct IndexEntry {
	le64 blocknr;          /* location of the bitmap block */
	le32 nr_free;          /* entries with count 0 (the kernel counts the tail too) */
	le32 none_free_before; /* search hint: every entry below this is in use */
} __attribute__((packed, aligned(8)));
static_assert(sizeof(IndexEntry) == 16);

/* Header of every bitmap block; the 2-bit entries follow as le64 words. */
struct BitmapHeader {
	le32 csum;     /* over the block from not_used to the end */
	le32 not_used;
	le64 blocknr;  /* the block's own location */
} __attribute__((packed, aligned(8)));
static_assert(sizeof(BitmapHeader) == 16);

/*
 * The metadata space map's single index block. 255 entries fit a 4 KiB
 * block exactly (16 + 255 * 16 = 4096), which caps the metadata device.
 */
inline constexpr unsigned max_metadata_bitmaps = 255;

struct MetadataIndexBlock {
	le32 csum;    /* over the block from padding to the end */
	le32 padding;
	le64 blocknr; /* the block's own location */
	IndexEntry index[max_metadata_bitmaps];
} __attribute__((packed, aligned(8)));
static_assert(sizeof(MetadataIndexBlock) == 4096);

/*
 * The root a space map is reopened from; thin metadata stores it in a
 * 128-byte field of its superblock (the rest stays zero).
 */
struct SmRoot {
	le64 nr_blocks;
	le64 nr_allocated;   /* blocks with a count > 0 */
	le64 bitmap_root;    /* index btree root (disk map) or index block (metadata map) */
	le64 ref_count_root; /* overflow btree root */
} __attribute__((packed, aligned(8)));
static_assert(sizeof(SmRoot) == 32);

/* The 2-bit value that sends a lookup to the overflow btree. */
inline constexpr u32 count_in_overflow = 3;

/* Entries held by one bitmap block of @block_size bytes (16320 for 4 KiB). */
constexpr u32 bitmap_entries_per_block(u32 block_size)
{
	return (block_size - u32(sizeof(BitmapHeader))) * 4;
}

/*
 * Largest metadata device the metadata space map can describe, in 4 KiB
 * blocks: 255 bitmaps. The kernel truncates bigger devices to this.
 */
inline constexpr u64 metadata_sm_max_blocks =
	u64(max_metadata_bitmaps) * bitmap_entries_per_block(4096);

/* Bitmaps needed for @nr_blocks entries. */
constexpr u64 nr_bitmaps_for(u64 nr_blocks, u32 entries_per_bitmap)
{
	return (nr_blocks + entries_per_bitmap - 1) / entries_per_bitmap;
}

} // namespace dmxx::pdata
