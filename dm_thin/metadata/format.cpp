// SPDX-License-Identifier: GPL-2.0
/*
 * Superblock sealing and checking. Kept free of the block cache so the tool
 * and the open path can judge a raw block before anything else is set up:
 * a device we refuse is never handed to code that might write to it.
 */
#include "format.h"

#include <dmxx/mem.h>
#include <dmxx/platform.h>

namespace dmxx::thin {

const char *superblock_problem_text(SuperblockProblem p)
{
	switch (p) {
	case SuperblockProblem::None:
		return "superblock is valid";
	case SuperblockProblem::AllZeroes:
		return "metadata device is not formatted (superblock is all zeroes)";
	case SuperblockProblem::WrongLocation:
		return "superblock block number does not match its location";
	case SuperblockProblem::BadMagic:
		return "superblock magic is not a thin-pool's";
	case SuperblockProblem::BadChecksum:
		return "superblock checksum mismatch";
	case SuperblockProblem::UnsupportedVersion:
		return "unsupported metadata version (expected 1 or 2)";
	case SuperblockProblem::IncompatFeatures:
		return "metadata uses unsupported incompatible features";
	case SuperblockProblem::CompatRoFeatures:
		return "metadata uses features that forbid read-write access";
	case SuperblockProblem::MetadataBlockSize:
		return "metadata block size is not 4 KiB";
	case SuperblockProblem::DataBlockSize:
		return "data block size differs from the requested one";
	case SuperblockProblem::NeedsCheck:
		return "metadata is flagged needs_check: run thin_check/thin_repair first";
	case SuperblockProblem::BadGeometry:
		return "superblock's metadata block count does not fit the device";
	}
	return "unknown superblock problem";
}

int superblock_problem_errno(SuperblockProblem p)
{
	switch (p) {
	case SuperblockProblem::None:
		return 0;
	case SuperblockProblem::AllZeroes:
		return -ENODATA;
	case SuperblockProblem::WrongLocation:
	case SuperblockProblem::BadMagic:
	case SuperblockProblem::BadChecksum:
	case SuperblockProblem::MetadataBlockSize:
	case SuperblockProblem::BadGeometry:
		return -EILSEQ;
	default:
		return -EINVAL;
	}
}

u32 superblock_checksum(const void *block)
{
	/* The csum field covers everything after itself, to the end of the block. */
	const u8 *p = static_cast<const u8 *>(block) + sizeof(le32);
	return dmxx_crc32c(~0u, p, METADATA_BLOCK_BYTES - sizeof(le32)) ^ SUPERBLOCK_CSUM_XOR;
}

void seal_superblock(void *block, block_t location)
{
	auto *sb = static_cast<DiskSuperblock *>(block);
	sb->blocknr = to_le64(location);
	sb->csum = to_le32(superblock_checksum(block));
}

static bool all_zeroes(const void *block)
{
	const u8 *p = static_cast<const u8 *>(block);
	for (u32 i = 0; i < METADATA_BLOCK_BYTES; i++)
		if (p[i])
			return false;
	return true;
}

SuperblockProblem check_superblock(const void *block, block_t location, u32 data_block_size,
				   block_t nr_device_blocks)
{
	DiskSuperblock sb;
	mem_copy(&sb, block, sizeof(sb));

	if (all_zeroes(block))
		return SuperblockProblem::AllZeroes;
	/* Integrity, in the kernel's order: a misplaced block says more than its checksum. */
	if (from_le(sb.blocknr) != location)
		return SuperblockProblem::WrongLocation;
	if (from_le(sb.magic) != SUPERBLOCK_MAGIC)
		return SuperblockProblem::BadMagic;
	if (from_le(sb.csum) != superblock_checksum(block))
		return SuperblockProblem::BadChecksum;

	/* Then whether we may use it. */
	u32 version = from_le(sb.version);
	if (version < MIN_METADATA_VERSION || version > MAX_METADATA_VERSION)
		return SuperblockProblem::UnsupportedVersion;
	if (from_le(sb.incompat_flags) & ~FEATURE_INCOMPAT_SUPP)
		return SuperblockProblem::IncompatFeatures;
	if (from_le(sb.compat_ro_flags) & ~FEATURE_COMPAT_RO_SUPP)
		return SuperblockProblem::CompatRoFeatures;
	if (from_le(sb.metadata_block_size) != METADATA_BLOCK_SECTORS)
		return SuperblockProblem::MetadataBlockSize;
	u32 dbs = from_le(sb.data_block_size);
	if (!valid_data_block_size(dbs) || (data_block_size && dbs != data_block_size))
		return SuperblockProblem::DataBlockSize;
	u64 nr = from_le(sb.metadata_nr_blocks);
	if (nr == 0 || (nr_device_blocks && nr > nr_device_blocks))
		return SuperblockProblem::BadGeometry;
	if (from_le(sb.flags) & SB_FLAG_NEEDS_CHECK)
		return SuperblockProblem::NeedsCheck;
	return SuperblockProblem::None;
}

} // namespace dmxx::thin
