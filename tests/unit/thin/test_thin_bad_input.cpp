// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input: every way a superblock can be wrong is refused with its own
 * reason and errno, and nothing at all is written to a refused device.
 * Also the superblock format itself, and the XML reader/writer.
 */
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>

#include "../../../dm_thin/metadata/format.h"
#include "../../../dm_thin/metadata/thin_metadata.h"
#include "../../../dm_thin/tools/xml.h"
#include "../../../dm_thin/user/mem_block_device.h"

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::pdata::MemBlockDevice;

namespace {

constexpr u32 DBS = 256;

std::unique_ptr<MemBlockDevice> formatted_device()
{
	auto dev = std::make_unique<MemBlockDevice>(512);
	auto r = ThinMetadata::format(*dev, DBS, 1000);
	EXPECT_TRUE(r.is_ok());
	if (r.is_ok()) {
		std::unique_ptr<ThinMetadata> md(r.release_value());
		EXPECT_TRUE(md->create_thin(3).is_ok());
		EXPECT_TRUE(md->commit().is_ok());
	}
	return dev;
}

DiskSuperblock *sb_of(MemBlockDevice &dev) { return reinterpret_cast<DiskSuperblock *>(dev.block_data(0)); }

struct Corruption {
	const char *name;
	std::function<void(MemBlockDevice &)> damage;
	bool reseal; /* recompute the checksum after the damage (a well-formed but unusable sb) */
	SuperblockProblem want;
	int want_errno;
	u32 open_block_size = DBS;
	bool read_only = false;
};

class BadSuperblock : public ::testing::TestWithParam<Corruption> {};

TEST_P(BadSuperblock, RefusedPreciselyAndNothingWritten)
{
	const Corruption &c = GetParam();
	auto dev = formatted_device();
	c.damage(*dev);
	if (c.reseal)
		seal_superblock(dev->block_data(0), from_le(sb_of(*dev)->blocknr));
	auto before = dev->clone();
	u64 writes = dev->nr_writes(), flushes = dev->nr_flushes();

	SuperblockProblem why = SuperblockProblem::None;
	auto r = ThinMetadata::open(*dev, OpenOptions{c.open_block_size, c.read_only}, &why);
	EXPECT_TRUE(r.is_error()) << c.name;
	EXPECT_EQ(r.error_code(), c.want_errno) << c.name;
	EXPECT_EQ(why, c.want) << c.name << ": " << superblock_problem_text(why);
	EXPECT_EQ(dev->nr_writes(), writes) << c.name;
	EXPECT_EQ(dev->nr_flushes(), flushes) << c.name;
	EXPECT_TRUE(dev->same_contents(*before)) << c.name;
	if (r.is_ok())
		delete r.release_value();
}

const Corruption kCorruptions[] = {
	{"all zeroes", [](MemBlockDevice &d) { std::memset(d.block_data(0), 0, 4096); }, false,
	 SuperblockProblem::AllZeroes, -ENODATA},
	{"flipped bit in the body", [](MemBlockDevice &d) { d.block_data(0)[2000] ^= 1; }, false,
	 SuperblockProblem::BadChecksum, -EILSEQ},
	{"flipped bit in the csum", [](MemBlockDevice &d) { d.block_data(0)[0] ^= 0x80; }, false,
	 SuperblockProblem::BadChecksum, -EILSEQ},
	{"bad magic", [](MemBlockDevice &d) { sb_of(d)->magic = to_le64(27022011); }, true,
	 SuperblockProblem::BadMagic, -EILSEQ},
	{"wrong blocknr", [](MemBlockDevice &d) { seal_superblock(d.block_data(0), 7); }, false,
	 SuperblockProblem::WrongLocation, -EILSEQ},
	{"version 0", [](MemBlockDevice &d) { sb_of(d)->version = to_le32(0); }, true,
	 SuperblockProblem::UnsupportedVersion, -EINVAL},
	{"version 3", [](MemBlockDevice &d) { sb_of(d)->version = to_le32(3); }, true,
	 SuperblockProblem::UnsupportedVersion, -EINVAL},
	{"unknown incompat flag", [](MemBlockDevice &d) { sb_of(d)->incompat_flags = to_le32(1u << 5); },
	 true, SuperblockProblem::IncompatFeatures, -EINVAL},
	{"unknown incompat flag, read-only",
	 [](MemBlockDevice &d) { sb_of(d)->incompat_flags = to_le32(1); }, true,
	 SuperblockProblem::IncompatFeatures, -EINVAL, DBS, true},
	{"unknown compat_ro flag", [](MemBlockDevice &d) { sb_of(d)->compat_ro_flags = to_le32(2); },
	 true, SuperblockProblem::CompatRoFeatures, -EINVAL},
	{"needs_check", [](MemBlockDevice &d) { sb_of(d)->flags = to_le32(SB_FLAG_NEEDS_CHECK); },
	 true, SuperblockProblem::NeedsCheck, -EINVAL},
	{"data block size differs", [](MemBlockDevice &) {}, false, SuperblockProblem::DataBlockSize,
	 -EINVAL, 128},
	{"data block size invalid on disk",
	 [](MemBlockDevice &d) { sb_of(d)->data_block_size = to_le32(100); }, true,
	 SuperblockProblem::DataBlockSize, -EINVAL, 0},
	{"metadata block size not 4k",
	 [](MemBlockDevice &d) { sb_of(d)->metadata_block_size = to_le32(16); }, true,
	 SuperblockProblem::MetadataBlockSize, -EILSEQ},
	{"more metadata blocks than the device",
	 [](MemBlockDevice &d) { sb_of(d)->metadata_nr_blocks = to_le64(513); }, true,
	 SuperblockProblem::BadGeometry, -EILSEQ},
};

INSTANTIATE_TEST_SUITE_P(Corruptions, BadSuperblock, ::testing::ValuesIn(kCorruptions),
			 [](const auto &info) {
				 std::string n = info.param.name;
				 for (char &ch : n)
					 if (!isalnum((unsigned char)ch))
						 ch = '_';
				 return n;
			 });

/* Damage below the superblock is found when the structures are read, never written over. */
TEST(BadMetadata, CorruptSpaceMapRootRefusesWithoutWriting)
{
	auto dev = formatted_device();
	DiskSuperblock *sb = sb_of(*dev);
	/* Point the metadata space map's index root beyond the device. */
	std::memset(sb->metadata_space_map_root + 16, 0xff, 8);
	seal_superblock(dev->block_data(0), 0);
	auto before = dev->clone();
	SuperblockProblem why;
	auto r = ThinMetadata::open(*dev, OpenOptions{DBS}, &why);
	EXPECT_TRUE(r.is_error());
	EXPECT_EQ(why, SuperblockProblem::None); /* the superblock itself was fine */
	EXPECT_TRUE(dev->same_contents(*before));
	if (r.is_ok())
		delete r.release_value();
}

TEST(BadMetadata, CorruptMappingRootFailsLookupsNotTheProcess)
{
	auto dev = formatted_device();
	block_t root = from_le(sb_of(*dev)->data_mapping_root);
	dev->block_data(root)[100] ^= 0xff; /* checksum no longer matches */
	auto r = ThinMetadata::open(*dev, OpenOptions{DBS});
	ASSERT_TRUE(r.is_ok()); /* the mapping tree is read lazily */
	std::unique_ptr<ThinMetadata> md(r.release_value());
	EXPECT_EQ(md->lookup(3, 0).error_code(), -EILSEQ);
	EXPECT_EQ(md->create_thin(4).error_code(), -EILSEQ);
	/* A failed change poisons the transaction: no commit of half-done work. */
	EXPECT_EQ(md->commit().error_code(), -EIO);
}

TEST(SuperblockFormat, LayoutAndChecksum)
{
	EXPECT_EQ(offsetof(DiskSuperblock, magic), 32u);
	EXPECT_EQ(offsetof(DiskSuperblock, data_space_map_root), 64u);
	EXPECT_EQ(offsetof(DiskSuperblock, data_mapping_root), 320u);
	EXPECT_EQ(offsetof(DiskSuperblock, data_block_size), 336u);
	EXPECT_EQ(offsetof(DiskSuperblock, incompat_flags), 360u);
	EXPECT_EQ(pack_block_time(5, 3), (5ull << 24) | 3);
	EXPECT_EQ(unpack_block(pack_block_time(123456789, 77)), 123456789u);
	EXPECT_EQ(unpack_time(pack_block_time(1, TIME_MASK)), TIME_MASK);

	std::vector<u8> b(4096, 0);
	auto *sb = reinterpret_cast<DiskSuperblock *>(b.data());
	sb->magic = to_le64(SUPERBLOCK_MAGIC);
	sb->version = to_le32(2);
	sb->metadata_block_size = to_le32(8);
	sb->metadata_nr_blocks = to_le64(100);
	sb->data_block_size = to_le32(128);
	seal_superblock(b.data(), 0);
	EXPECT_EQ(check_superblock(b.data(), 0, 128, 100), SuperblockProblem::None);
	EXPECT_EQ(check_superblock(b.data(), 1, 128, 100), SuperblockProblem::WrongLocation);
	EXPECT_EQ(check_superblock(b.data(), 0, 0, 0), SuperblockProblem::None);
	b[4095] ^= 1; /* the checksum covers the whole block, not just the struct */
	EXPECT_EQ(check_superblock(b.data(), 0, 128, 100), SuperblockProblem::BadChecksum);
	for (int p = int(SuperblockProblem::None); p <= int(SuperblockProblem::BadGeometry); p++)
		EXPECT_STRNE(superblock_problem_text(SuperblockProblem(p)), "unknown superblock problem");
}

TEST(Xml, WriterMergesRunsLikeThinDump)
{
	tools::XmlPool p;
	p.time = 1;
	p.transaction = 3;
	p.data_block_size = 128;
	p.nr_data_blocks = 1000;
	tools::XmlDevice d;
	d.dev_id = 1;
	d.mapped_blocks = 5;
	d.snap_time = 1;
	d.mappings = {{0, 10, 0}, {1, 11, 0}, {2, 12, 0}, {5, 13, 0}, {6, 14, 1}};
	p.devices.push_back(d);
	const char *want =
		"<superblock uuid=\"\" time=\"1\" transaction=\"3\" flags=\"0\" version=\"2\" "
		"data_block_size=\"128\" nr_data_blocks=\"1000\">\n"
		"  <device dev_id=\"1\" mapped_blocks=\"5\" transaction=\"0\" creation_time=\"0\" "
		"snap_time=\"1\">\n"
		"    <range_mapping origin_begin=\"0\" data_begin=\"10\" length=\"3\" time=\"0\"/>\n"
		"    <single_mapping origin_block=\"5\" data_block=\"13\" time=\"0\"/>\n"
		"    <single_mapping origin_block=\"6\" data_block=\"14\" time=\"1\"/>\n"
		"  </device>\n"
		"</superblock>\n";
	EXPECT_EQ(tools::write_xml(p), want);
	tools::XmlPool back;
	std::string error;
	ASSERT_TRUE(tools::parse_xml(want, back, error)) << error;
	EXPECT_EQ(back, p);
}

TEST(Xml, ReaderRefusesWhatItDoesNotKnow)
{
	tools::XmlPool p;
	std::string e;
	EXPECT_FALSE(tools::parse_xml("", p, e));
	EXPECT_FALSE(tools::parse_xml("<superblock uuid=\"\" time=\"x\" transaction=\"0\" "
				      "data_block_size=\"128\" nr_data_blocks=\"1\"></superblock>",
				      p, e));
	EXPECT_NE(e.find("not a number"), std::string::npos) << e;
	EXPECT_FALSE(tools::parse_xml("<superblock uuid=\"\" time=\"0\" transaction=\"0\" "
				      "data_block_size=\"128\" nr_data_blocks=\"1\">\n"
				      "<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" "
				      "creation_time=\"0\" snap_time=\"0\">\n<def name=\"x\"/>\n"
				      "</device></superblock>",
				      p, e));
	EXPECT_NE(e.find("line 3"), std::string::npos) << e;
	EXPECT_FALSE(tools::parse_xml("<superblock uuid=\"\" time=\"0\" transaction=\"0\" "
				      "data_block_size=\"128\" nr_data_blocks=\"1\">",
				      p, e));
}

} // namespace
