// SPDX-License-Identifier: GPL-2.0
// Damaged space maps: refused with -EILSEQ when opened or when the damaged
// block is reached, never believed; and the exact on-disk bytes of the format.
#include <cstring>

#include "persistent/btree_node.h"
#include "sm_env.h"

using namespace dmxx::pdata;
using namespace dmxx::pdata::test;
using namespace dmxx;

namespace {

const block_t E = RefCounts::entries_per_bitmap;

SmRoot root_of(const u8 *raw)
{
	SmRoot r;
	std::memcpy(&r, raw, sizeof(r));
	return r;
}

/* Index entries of the committed metadata map, straight from its index block. */
std::vector<IndexEntry> metadata_index(SmEnv &env)
{
	SmRoot r = root_of(env.metadata_root());
	const auto *mi = reinterpret_cast<const MetadataIndexBlock *>(
		env.disk->block_data(from_le(r.bitmap_root)));
	u64 n = nr_bitmaps_for(from_le(r.nr_blocks), E);
	return std::vector<IndexEntry>(mi->index, mi->index + n);
}

/* Index entry @i of the committed data map, found by walking the raw btree nodes on disk. */
IndexEntry data_index(SmEnv &env, u64 i)
{
	block_t b = from_le(root_of(env.data_root()).bitmap_root);
	for (int depth = 0; depth < 8; depth++) {
		ConstNode n(env.disk->block_data(b));
		int at = n.lower_bound(i);
		EXPECT_GE(at, 0);
		if (at < 0)
			break;
		if (n.is_internal()) {
			b = n.value64(u32(at));
			continue;
		}
		EXPECT_EQ(n.key(u32(at)), i);
		IndexEntry ie;
		std::memcpy(&ie, n.value(u32(at)), sizeof(ie));
		return ie;
	}
	ADD_FAILURE() << "no index entry " << i;
	return IndexEntry{};
}

/* Rewrite a block's self-describing header so its checksum is valid again. */
void restamp(SmEnv &env, block_t b, u32 salt)
{
	u8 *d = env.disk->block_data(b);
	u32 sum = block_checksum(d + 4, METADATA_BLOCK_SIZE - 4, salt);
	le32 csum = to_le32(sum);
	std::memcpy(d, &csum, 4);
}

/* Bitwise CRC-32C, independent of the platform's, to pin the checksum convention. */
u32 reference_crc32c(u32 crc, const u8 *p, size_t n)
{
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return crc;
}

} // namespace

TEST(SpaceMapFormat, BitmapBlockBytes)
{
	SmEnv env(256, 1000);
	ASSERT_OK(env.dsm->set_count(0, 1));
	ASSERT_OK(env.dsm->set_count(1, 2));
	ASSERT_OK(env.dsm->set_count(2, 7));
	ASSERT_OK(env.dsm->set_count(33, 1));
	ASSERT_OK(env.commit());

	IndexEntry ie = data_index(env, 0);
	block_t where = from_le(ie.blocknr);
	const u8 *d = env.disk->block_data(where);
	/* Header: csum, not_used, blocknr; then the le64 words of 2-bit entries. */
	u64 blocknr;
	std::memcpy(&blocknr, d + 8, 8);
	EXPECT_EQ(blocknr, where);
	u32 csum;
	std::memcpy(&csum, d, 4);
	EXPECT_EQ(csum, reference_crc32c(0xffffffffu, d + 4, 4092) ^ 240779u);
	/* Block 0 = 1 (bit 1), block 1 = 2 (bit 2), block 2 = 3 (bits 4 and 5). */
	EXPECT_EQ(d[16], 0x36);
	EXPECT_EQ(d[24], 0x08); /* block 33: count 1 in the second word */
	EXPECT_EQ(from_le(ie.nr_free), E - 4);
	EXPECT_EQ(from_le(ie.none_free_before), 3u);

	/* The root as thin's superblock holds it: four le64s. */
	SmRoot r = root_of(env.data_root());
	EXPECT_EQ(from_le(r.nr_blocks), 1000u);
	EXPECT_EQ(from_le(r.nr_allocated), 4u);

	/* The metadata index block: csum over the rest with salt 160478, its location. */
	SmRoot m = root_of(env.metadata_root());
	const u8 *mi = env.disk->block_data(from_le(m.bitmap_root));
	std::memcpy(&csum, mi, 4);
	EXPECT_EQ(csum, reference_crc32c(0xffffffffu, mi + 4, 4092) ^ 160478u);
	std::memcpy(&blocknr, mi + 8, 8);
	EXPECT_EQ(blocknr, from_le(m.bitmap_root));
}

TEST(SpaceMapCorruption, MetadataIndexChecksum)
{
	SmEnv env(500, 0);
	ASSERT_OK(env.reopen());
	env.close();
	SmRoot r = root_of(env.metadata_root());
	env.disk->block_data(from_le(r.bitmap_root))[100] ^= 1;
	EXPECT_EQ(env.reopen().error_code(), -EILSEQ);
}

TEST(SpaceMapCorruption, MetadataIndexWrongLocation)
{
	SmEnv env(500, 0);
	env.close();
	SmRoot r = root_of(env.metadata_root());
	u8 *d = env.disk->block_data(from_le(r.bitmap_root));
	u64 wrong = from_le(r.bitmap_root) + 1;
	std::memcpy(d + 8, &wrong, 8);
	restamp(env, from_le(r.bitmap_root), SM_INDEX_CSUM_XOR);
	EXPECT_EQ(env.reopen().error_code(), -EILSEQ);
}

TEST(SpaceMapCorruption, MetadataIndexEntryBeyondDevice)
{
	SmEnv env(500, 0);
	env.close();
	SmRoot r = root_of(env.metadata_root());
	u8 *raw = env.disk->block_data(from_le(r.bitmap_root));
	auto *mi = reinterpret_cast<MetadataIndexBlock *>(raw);
	mi->index[0].blocknr = to_le64(10000);
	restamp(env, from_le(r.bitmap_root), SM_INDEX_CSUM_XOR);
	EXPECT_EQ(env.reopen().error_code(), -EILSEQ);
}

TEST(SpaceMapCorruption, MetadataBitmapOnAccess)
{
	SmEnv env(E + 100, 0);
	auto index = metadata_index(env);
	ASSERT_EQ(index.size(), 2u);
	env.close();
	env.disk->block_data(from_le(index[1].blocknr))[2000] ^= 0x40;
	/* The index block is fine: the map opens... */
	ASSERT_OK(env.reopen());
	/* ...and refuses the damaged bitmap when it is reached. */
	EXPECT_EQ(env.msm->get_count(0).value(), 1u);
	EXPECT_EQ(env.msm->get_count(E + 5).error_code(), -EILSEQ);
	EXPECT_EQ(env.msm->inc(E + 5).error_code(), -EILSEQ);
}

TEST(SpaceMapCorruption, DataBitmapOnOpenAndOnAccess)
{
	{
		SmEnv env(256, 2 * E);
		block_t first = from_le(data_index(env, 0).blocknr);
		env.close();
		env.disk->block_data(first)[77] ^= 1;
		EXPECT_EQ(env.reopen().error_code(), -EILSEQ);
	}
	{
		SmEnv env(256, 2 * E);
		block_t second = from_le(data_index(env, 1).blocknr);
		env.close();
		env.disk->block_data(second)[4000] ^= 0x80;
		ASSERT_OK(env.reopen());
		EXPECT_EQ(env.dsm->get_count(3).value(), 0u);
		EXPECT_EQ(env.dsm->get_count(E + 3).error_code(), -EILSEQ);
		EXPECT_EQ(env.dsm->dec(E + 3).error_code(), -EILSEQ);
		/* The search reaches it once the first bitmap is full. */
		ASSERT_OK(env.abort_and_reopen());
		ASSERT_OK(env.dsm->inc_range(0, E));
		EXPECT_EQ(env.dsm->new_block().error_code(), -EILSEQ);
	}
}

TEST(SpaceMapCorruption, DataIndexBtreeRoot)
{
	SmEnv env(256, 1000);
	env.close();
	SmRoot r = root_of(env.data_root());
	env.disk->block_data(from_le(r.bitmap_root))[500] ^= 1;
	EXPECT_EQ(env.reopen().error_code(), -EILSEQ);
}

TEST(SpaceMapCorruption, MissingOverflowCount)
{
	SmEnv env(256, 1000);
	ASSERT_OK(env.dsm->set_count(5, 9));
	ASSERT_OK(env.commit());
	block_t where = from_le(data_index(env, 0).blocknr);
	env.close();
	/* Block 6 says "3 or more" in its bitmap, with nothing in the overflow btree. */
	u8 *d = env.disk->block_data(where);
	d[16 + 1] |= 0x30; /* entry 6: bits 12, 13 of the first word */
	restamp(env, where, SM_BITMAP_CSUM_XOR);
	ASSERT_OK(env.reopen());
	EXPECT_EQ(env.dsm->get_count(5).value(), 9u);
	EXPECT_EQ(env.dsm->get_count(6).error_code(), -EILSEQ);
	SmCheckReport rep;
	EXPECT_EQ(check_space_map(*env.tm, SmKind::Disk, env.data_root(), 128, rep).error_code(),
		  -EILSEQ);
	EXPECT_NE(std::strlen(rep.failure.reason), 0u);
}

TEST(SpaceMapCorruption, ImpossibleRoots)
{
	SmEnv env(256, 1000);
	env.close();
	ASSERT_OK(env.reopen());
	SmRoot good = root_of(env.data_root());
	SmRoot bad = good;
	bad.nr_allocated = to_le64(2000);
	EXPECT_EQ(DiskSpaceMap::open(*env.tm, &bad, sizeof(bad)).error_code(), -EILSEQ);
	bad = good;
	bad.ref_count_root = to_le64(1 << 20);
	EXPECT_EQ(DiskSpaceMap::open(*env.tm, &bad, sizeof(bad)).error_code(), -EILSEQ);
	EXPECT_EQ(DiskSpaceMap::open(*env.tm, &good, 31).error_code(), -EINVAL);

	SmRoot mgood = root_of(env.metadata_root());
	SmRoot mbad = mgood;
	mbad.nr_blocks = to_le64(metadata_sm_max_blocks + 1);
	EXPECT_EQ(MetadataSpaceMap::open(*env.tm, &mbad, sizeof(mbad)).error_code(), -EILSEQ);
	mbad = mgood;
	mbad.bitmap_root = to_le64(256);
	EXPECT_EQ(MetadataSpaceMap::open(*env.tm, &mbad, sizeof(mbad)).error_code(), -EILSEQ);
	/* A root pointing at a block of another type. */
	mbad = mgood;
	mbad.bitmap_root = to_le64(0);
	EXPECT_NE(MetadataSpaceMap::open(*env.tm, &mbad, sizeof(mbad)).error_code(), 0);
	/* copy_root needs 32 bytes. */
	u8 small[16];
	EXPECT_EQ(env.dsm->copy_root(small, sizeof(small)).error_code(), -ENOSPC);
}
