/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The thin-pool metadata device's on-disk format (the kernel's format
 * version 2, as written by dm-thin-metadata and read by thin-provisioning-
 * tools), and the checks that decide whether we may open a device.
 *
 * Layout of a metadata device, 4 KiB blocks:
 *   block 0      the superblock, the only block ever written in place;
 *   elsewhere    the metadata space map (one index block + bitmaps), the
 *                data space map (bitmap index btree + bitmaps + overflow
 *                counts btree), the device details btree and the two-level
 *                mapping btree; every one of them is copy-on-write.
 *
 * The mapping tree's key path is (device id, virtual block); a leaf value
 * packs the data block and the "time" (the pool's snapshot counter when the
 * mapping was made) as (data block << 24 | time). A mapping is shared with
 * a snapshot when its time is older than the device's snapshotted_time.
 */
#pragma once

#include <dmxx/endian.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

namespace dmxx::thin {

using block_t = u64;
using thin_id = u32; /* the kernel's dm_thin_id: 24 bits used by the target */

constexpr u64 SUPERBLOCK_MAGIC = 27022010;
constexpr block_t SUPERBLOCK_LOCATION = 0;
constexpr u32 METADATA_VERSION = 2;     /* what we write */
constexpr u32 MIN_METADATA_VERSION = 1; /* what we accept: v1 differs only in the */
constexpr u32 MAX_METADATA_VERSION = 2; /*   btree node formats we read identically */
constexpr u32 SUPERBLOCK_CSUM_XOR = 160774;

constexpr u32 METADATA_BLOCK_BYTES = 4096;
constexpr u32 METADATA_BLOCK_SECTORS = METADATA_BLOCK_BYTES >> 9;
/* The metadata space map's single index block covers this many blocks. */
constexpr block_t METADATA_MAX_BLOCKS = 255ull * ((1u << 14) - 64);

/* Data block sizes the thin-pool target accepts: 64 KiB .. 1 GiB, multiples of 64 KiB. */
constexpr u32 DATA_BLOCK_SIZE_MIN = 128;     /* sectors */
constexpr u32 DATA_BLOCK_SIZE_MAX = 2097152; /* sectors */

constexpr u32 SB_FLAG_NEEDS_CHECK = 1u << 0;
/* Feature bits this implementation understands (none, as the 6.1 kernel). */
constexpr u32 FEATURE_COMPAT_SUPP = 0;
constexpr u32 FEATURE_COMPAT_RO_SUPP = 0;
constexpr u32 FEATURE_INCOMPAT_SUPP = 0;

constexpr usize SPACE_MAP_ROOT_BYTES = 128;

/* A mapping value's time field is 24 bits wide; the pool's time wraps there. */
constexpr u32 TIME_BITS = 24;
constexpr u32 TIME_MASK = (1u << TIME_BITS) - 1;
/* Data block numbers must fit the remaining 40 bits. */
constexpr block_t MAX_DATA_BLOCK = (1ull << (64 - TIME_BITS)) - 1;

struct [[gnu::packed]] DiskSuperblock {
	le32 csum; /* crc32c of the rest of the 4 KiB block, salted */
	le32 flags;
	le64 blocknr; /* where this copy lives: catches misdirected writes */
	u8 uuid[16];
	le64 magic;
	le32 version;
	le32 time; /* bumped by every snapshot */
	le64 trans_id;
	le64 held_root; /* the metadata snapshot's superblock copy, or 0 */
	u8 data_space_map_root[SPACE_MAP_ROOT_BYTES];
	u8 metadata_space_map_root[SPACE_MAP_ROOT_BYTES];
	le64 data_mapping_root;   /* two-level: device id -> (virtual block -> block_time) */
	le64 device_details_root; /* device id -> DiskDeviceDetails */
	le32 data_block_size;     /* sectors */
	le32 metadata_block_size; /* sectors */
	le64 metadata_nr_blocks;
	le32 compat_flags;
	le32 compat_ro_flags;
	le32 incompat_flags;
};
/* The kernel relies on the superblock fitting one sector, so its write is atomic. */
static_assert(sizeof(DiskSuperblock) == 364 && sizeof(DiskSuperblock) <= 512);

struct [[gnu::packed]] DiskDeviceDetails {
	le64 mapped_blocks;
	le64 transaction_id; /* the pool's transaction id when the device was created */
	le32 creation_time;
	le32 snapshotted_time;
};
static_assert(sizeof(DiskDeviceDetails) == 24);

constexpr u64 pack_block_time(block_t data_block, u32 time)
{
	return (data_block << TIME_BITS) | (time & TIME_MASK);
}
constexpr block_t unpack_block(u64 v) { return v >> TIME_BITS; }
constexpr u32 unpack_time(u64 v) { return u32(v & TIME_MASK); }

/* Why a superblock was refused; each has its own message (superblock_problem_text). */
enum class SuperblockProblem : u8 {
	None,
	AllZeroes,          /* never formatted */
	WrongLocation,      /* blocknr field is not this block's number */
	BadMagic,
	BadChecksum,
	UnsupportedVersion,
	IncompatFeatures,   /* unknown incompatible feature bits */
	CompatRoFeatures,   /* unknown read-only-compatible bits: refuse read-write */
	MetadataBlockSize,  /* not 4 KiB */
	DataBlockSize,      /* differs from the caller's, or not one the target accepts */
	NeedsCheck,         /* the kernel flagged it: run thin_check / thin_repair first */
	BadGeometry,        /* metadata_nr_blocks impossible for the device */
};

const char *superblock_problem_text(SuperblockProblem p);
/* The errno each problem is reported with: -EILSEQ for corruption, -EINVAL for refusals. */
int superblock_problem_errno(SuperblockProblem p);

/* The checksum the superblock's csum field must hold (block is METADATA_BLOCK_BYTES long). */
u32 superblock_checksum(const void *block);
/* Set blocknr and csum: the last step before writing a superblock. */
void seal_superblock(void *block, block_t location);

/*
 * Everything that can be said about a superblock without the rest of the
 * metadata: integrity first (location, magic, checksum), then whether we can
 * use it (version, features, block sizes, needs_check). @data_block_size 0
 * skips the comparison with the caller's size (the dump tool reads any).
 * @nr_device_blocks 0 skips the geometry check.
 */
SuperblockProblem check_superblock(const void *block, block_t location, u32 data_block_size,
				   block_t nr_device_blocks);

/* Whether a data block size (sectors) is one a thin-pool accepts. */
constexpr bool valid_data_block_size(u32 sectors)
{
	return sectors >= DATA_BLOCK_SIZE_MIN && sectors <= DATA_BLOCK_SIZE_MAX &&
	       sectors % DATA_BLOCK_SIZE_MIN == 0;
}

} // namespace dmxx::thin
