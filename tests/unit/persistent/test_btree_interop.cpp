// SPDX-License-Identifier: GPL-2.0
/*
 * Format interoperability of the btree layer with thin-provisioning-tools.
 *
 * thin_restore writes a metadata image from XML; we read its mapping and
 * device-details btrees with our code (checksums, node layout, two levels),
 * check them with our checker, change the mappings with our btree (new nodes
 * go to blocks appended to the image, so its space maps stay valid for the
 * old blocks), point the superblock at the new root, and have thin_dump read
 * our nodes back. The full metadata round trip with our space maps is the
 * thin-metadata suite's; this one pins down the btree format alone.
 * Skipped when the tools are not installed.
 */
#include "pdata_fixture.h"

#include "persistent/btree_node.h"
#include "user/file_block_device.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

namespace dmxx::pdata::test {
namespace {

/* Offsets in the thin superblock (dm-thin-metadata.c, struct thin_disk_superblock). */
constexpr usize SB_DATA_MAPPING_ROOT = 320;
constexpr usize SB_DEVICE_DETAILS_ROOT = 328;

std::string run(const std::string &cmd, int *status)
{
	std::string out;
	FILE *p = popen(cmd.c_str(), "r");
	if (!p) {
		*status = -1;
		return out;
	}
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		out.append(buf, n);
	*status = pclose(p);
	return out;
}

bool have_tools()
{
	return access("/usr/sbin/thin_restore", X_OK) == 0 && access("/usr/sbin/thin_dump", X_OK) == 0;
}

/* (dev, block) -> (data block, time) */
using Mappings = std::map<std::pair<u64, u64>, std::pair<u64, u32>>;

std::string to_xml(const Mappings &m)
{
	std::map<u64, std::vector<std::pair<u64, std::pair<u64, u32>>>> by_dev;
	for (auto &[k, v] : m)
		by_dev[k.first].push_back({k.second, v});
	std::ostringstream x;
	x << "<superblock uuid=\"\" time=\"5\" transaction=\"1\" flags=\"0\" version=\"2\" "
	     "data_block_size=\"128\" nr_data_blocks=\"1000000\">\n";
	for (auto &[dev, maps] : by_dev) {
		x << "  <device dev_id=\"" << dev << "\" mapped_blocks=\"" << maps.size()
		  << "\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n";
		for (auto &[b, v] : maps)
			x << "    <single_mapping origin_block=\"" << b << "\" data_block=\"" << v.first
			  << "\" time=\"" << v.second << "\"/>\n";
		x << "  </device>\n";
	}
	x << "</superblock>\n";
	return x.str();
}

/* The value of attribute @name in one XML line (thin_dump writes one element per line). */
bool attr(const std::string &line, const char *name, u64 *out)
{
	std::string key = std::string(" ") + name + "=\"";
	size_t at = line.find(key);
	if (at == std::string::npos)
		return false;
	*out = std::stoull(line.substr(at + key.size()));
	return true;
}

Mappings parse_dump(const std::string &xml)
{
	Mappings m;
	u64 dev = 0;
	std::istringstream in(xml);
	std::string line;
	while (std::getline(in, line)) {
		u64 a, b, c, t;
		if (line.find("<device ") != std::string::npos && attr(line, "dev_id", &a)) {
			dev = a;
		} else if (line.find("<single_mapping ") != std::string::npos &&
			   attr(line, "origin_block", &a) && attr(line, "data_block", &b) &&
			   attr(line, "time", &t)) {
			m[{dev, a}] = {b, u32(t)};
		} else if (line.find("<range_mapping ") != std::string::npos &&
			   attr(line, "origin_begin", &a) && attr(line, "data_begin", &b) &&
			   attr(line, "length", &c) && attr(line, "time", &t)) {
			for (u64 i = 0; i < c; i++)
				m[{dev, a + i}] = {b + i, u32(t)};
		}
	}
	return m;
}

struct TempDir {
	TempDir()
	{
		char tmpl[] = "/tmp/dmxx-pdata-XXXXXX";
		path = mkdtemp(tmpl);
	}
	~TempDir() { (void)!system(("rm -rf " + path).c_str()); }
	std::string path;
};

TEST_F(InteropTest, ReadThinRestoreImagesAndWriteNodesThinDumpReads)
{
	if (!have_tools())
		GTEST_SKIP() << "thin-provisioning-tools not installed";
	TempDir dir;
	std::string xml_path = dir.path + "/in.xml", img = dir.path + "/meta.img";

	/* Three devices, enough mappings for two-level trees with internal nodes. */
	Mappings want;
	std::mt19937_64 rng(17);
	for (u64 dev : {1, 2, 7})
		for (int i = 0; i < 4000; i++)
			want[{dev, rng() % 100000}] = {rng() % 1000000, u32(rng() % 5)};
	std::ofstream(xml_path) << to_xml(want);
	constexpr block_t kImageBlocks = 2048;
	{
		auto d = FileBlockDevice::create(img, kImageBlocks);
		ASSERT_TRUE(d.is_ok());
	}
	int st;
	std::string out = run("thin_restore -i " + xml_path + " -o " + img + " 2>&1", &st);
	ASSERT_EQ(st, 0) << out;

	/* Read: the image grows by 2048 blocks where our new nodes go. */
	auto dev_r = FileBlockDevice::open(img, false);
	ASSERT_TRUE(dev_r.is_ok());
	auto dev = dev_r.release_value();
	ASSERT_OK(dev->resize(2 * kImageBlocks));
	u8 sb[METADATA_BLOCK_SIZE];
	ASSERT_OK(dev->read(0, sb));
	/* Their superblock checksum is ours. */
	EXPECT_EQ(load_le32(sb), block_checksum(sb + 4, METADATA_BLOCK_SIZE - 4,
						THIN_SUPERBLOCK_CSUM_XOR));
	block_t map_root = load_le64(sb + SB_DATA_MAPPING_ROOT);
	block_t details_root = load_le64(sb + SB_DEVICE_DETAILS_ROOT);

	BlockCache cache(*dev, 1024);
	ASSERT_OK(cache.init());
	TransactionManager tm(cache);
	ASSERT_OK(tm.init());
	/* Every block of the restored image is taken: ours come from the appended half. */
	CoreSpaceMap sm(2 * kImageBlocks);
	for (block_t b = 0; b < kImageBlocks; b++)
		ASSERT_OK(sm.set_count(b, 1));
	ASSERT_OK(sm.commit());
	tm.set_space_map(&sm);

	PlainValue v8(8);
	Btree map(tm, 2, v8);
	auto read_all = [&](block_t root) {
		Mappings got;
		EXPECT_OK(map.walk(root, [&](const u64 *k, const void *v) -> Result<void> {
			u64 x = load_le64(v);
			got[{k[0], k[1]}] = {x >> 24, u32(x & 0xffffff)};
			return {};
		}));
		return got;
	};
	ASSERT_EQ(read_all(map_root), want);
	BtreeCheckReport rep;
	ASSERT_OK(check_btree(tm, map_root, 2, 8, rep)) << rep.failure.reason;
	EXPECT_EQ(rep.nr_entries, want.size());
	EXPECT_GT(rep.nr_nodes, 40u); /* subtrees with internal nodes */
	ASSERT_OK(check_btree(tm, details_root, 1, 24, rep)) << rep.failure.reason;
	EXPECT_EQ(rep.nr_entries, 3u);

	/* Write: insert, overwrite and remove mappings through our btree. */
	for (int i = 0; i < 3000; i++) {
		u64 k[2] = {std::vector<u64>{1, 2, 7}[rng() % 3], rng() % 100000};
		if (rng() % 4 == 0) {
			auto r = map.remove(map_root, k);
			if (want.erase({k[0], k[1]})) {
				ASSERT_OK(r);
				map_root = r.value();
			}
		} else {
			u64 data = rng() % 1000000;
			u32 time = u32(rng() % 5);
			le64 v = to_le64(data << 24 | time);
			map_root = must(map.insert(map_root, k, &v));
			want[{k[0], k[1]}] = {data, time};
		}
	}
	u64 lo[2] = {2, 20000}, n;
	map_root = must(map.remove_range(map_root, lo, 60000, &n));
	for (auto it = want.lower_bound({2, 20000}); it != want.end() && it->first.first == 2 &&
						      it->first.second < 60000;)
		it = want.erase(it);
	ASSERT_OK(check_btree(tm, map_root, 2, 8, rep)) << rep.failure.reason;

	/* Commit: our nodes, then their superblock pointing at our root. */
	ASSERT_OK(tm.pre_commit());
	{
		WriteRef s = must(cache.write_lock(0, nullptr));
		store_le64(s.bytes() + SB_DATA_MAPPING_ROOT, map_root);
		store_le32(s.bytes(), block_checksum(s.bytes() + 4, METADATA_BLOCK_SIZE - 4,
						     THIN_SUPERBLOCK_CSUM_XOR));
		ASSERT_OK(tm.commit(dmxx::move(s)));
	}

	out = run("thin_dump " + img + " 2>&1", &st);
	ASSERT_EQ(st, 0) << out.substr(0, 2000);
	Mappings dumped = parse_dump(out);
	EXPECT_EQ(dumped.size(), want.size());
	EXPECT_TRUE(dumped == want) << "thin_dump does not read back what our btree wrote";
}

} // namespace
} // namespace dmxx::pdata::test
