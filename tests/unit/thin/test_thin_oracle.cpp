// SPDX-License-Identifier: GPL-2.0
/*
 * The external oracle: thin-provisioning-tools judge what we write, and we
 * read what they write.
 *
 *  - Forward: randomized workloads (fixed seeds) on ThinMetadata; the image
 *    must pass thin_check, and thin_dump's XML must be byte-identical to the
 *    XML of the workload's reference model.
 *  - Reverse: XML generated from a random model -> thin_restore -> our code
 *    opens the image and reads exactly the model; then we change it, commit,
 *    and thin_check / thin_dump agree again.
 */
#include <gtest/gtest.h>

#include <fstream>
#include <memory>

#include "../../../dm_thin/metadata/thin_metadata.h"
#include "../../../dm_thin/tools/pool_dump.h"
#include "../../../dm_thin/tools/xml.h"
#include "../../../dm_thin/user/file_block_device.h"
#include "../../../dm_thin/user/mem_block_device.h"
#include "oracle.h"
#include "pool_model.h"
#include "workload.h"

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::pdata::MemBlockDevice;

namespace {

constexpr u32 DBS = 128;

/* "" if equal, else the first differing line of each (GoogleTest output stays short). */
std::string first_difference(const std::string &a, const std::string &b)
{
	size_t line = 1, i = 0;
	while (i < a.size() && i < b.size() && a[i] == b[i]) {
		if (a[i] == '\n')
			line++;
		i++;
	}
	if (i == a.size() && i == b.size())
		return "";
	auto line_at = [](const std::string &s, size_t pos) {
		size_t start = s.rfind('\n', pos ? pos - 1 : 0);
		start = (start == std::string::npos || pos == 0) ? 0 : start + 1;
		size_t end = s.find('\n', pos);
		return s.substr(start, end == std::string::npos ? std::string::npos : end - start);
	};
	return "line " + std::to_string(line) + ":\n  got:  " + line_at(a, i) + "\n  want: " +
	       line_at(b, i);
}

/* thin_check passes and thin_dump shows exactly @model. */
std::string judge(pdata::BlockDevice &dev, const test::PoolModel &model, const test::TempDir &tmp,
		  const std::string &name)
{
	std::string image = tmp.file(name + ".img");
	if (!test::write_image(dev, image))
		return "cannot write " + image;
	std::string e = test::thin_check(image);
	if (!e.empty())
		return e;
	std::string xml;
	e = test::thin_dump(image, xml);
	if (!e.empty())
		return e;
	std::string want = tools::write_xml(model.to_xml());
	if (xml != want)
		return "thin_dump differs from the model at " + first_difference(xml, want);
	return "";
}

struct OracleCase {
	uint64_t seed;
	unsigned steps;
	bool metadata_snaps;
};

class ThinOracle : public ::testing::TestWithParam<OracleCase> {};

TEST_P(ThinOracle, RandomWorkloadPassesThinCheckAndMatchesThinDump)
{
	REQUIRE_ORACLE();
	const OracleCase &c = GetParam();
	test::TempDir tmp;
	ASSERT_FALSE(tmp.path().empty());
	auto dev = std::make_unique<MemBlockDevice>(2500);
	auto f = ThinMetadata::format(*dev, DBS, 8000);
	ASSERT_TRUE(f.is_ok());
	std::unique_ptr<ThinMetadata> md(f.release_value());
	test::PoolModel model(DBS, 8000);
	test::WorkloadOptions o;
	o.seed = c.seed;
	o.steps = c.steps;
	o.metadata_snaps = c.metadata_snaps;
	test::Workload w(*md, model, o, dev.get());

	/* Judge a few intermediate commits too, not just the end state. */
	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(w.run(), "");
		ASSERT_EQ(w.commit(), "");
		ASSERT_EQ(test::compare_with_model(*md, *dev, model), "");
		ASSERT_EQ(judge(*dev, model, tmp, "round" + std::to_string(round)), "")
			<< "seed " << c.seed << " round " << round;
	}
	size_t mappings = 0;
	for (auto &[id, d] : model.devices())
		mappings += d.map.size();
	RecordProperty("mappings", int(mappings));
	EXPECT_GT(mappings, 1000u) << "the workload should make thousands of mappings";
}

INSTANTIATE_TEST_SUITE_P(Seeds, ThinOracle,
			 ::testing::Values(OracleCase{1, 1500, false}, OracleCase{7, 1500, true},
					   OracleCase{99, 1500, false}, OracleCase{2024, 1500, true}));

/* A metadata snapshot: thin_dump -m shows the pool as it was when it was taken. */
TEST(ThinOracleSnap, HeldRootDumpsTheReservedState)
{
	REQUIRE_ORACLE();
	test::TempDir tmp;
	auto dev = std::make_unique<MemBlockDevice>(2048);
	std::unique_ptr<ThinMetadata> md(ThinMetadata::format(*dev, DBS, 5000).release_value());
	test::PoolModel model(DBS, 5000);
	test::WorkloadOptions o;
	o.seed = 5;
	o.steps = 800;
	test::Workload w(*md, model, o, dev.get());
	ASSERT_EQ(w.run(), "");
	ASSERT_TRUE(md->reserve_metadata_snap().is_ok());
	model.commit();
	test::PoolModel at_snap = model;
	ASSERT_EQ(w.run(), "");
	ASSERT_EQ(w.commit(), "");
	std::string image = tmp.file("held.img");
	ASSERT_TRUE(test::write_image(*dev, image));
	ASSERT_EQ(test::thin_check(image), "");
	std::string xml;
	ASSERT_EQ(test::thin_dump(image, xml, true), "");
	tools::XmlPool got;
	std::string error;
	ASSERT_TRUE(tools::parse_xml(xml, got, error)) << error;
	tools::XmlPool want = at_snap.to_xml();
	/* The held copy's superblock keeps the pool geometry of its day. */
	/*
	 * The held copy's space map roots are wiped (as the kernel does: nobody
	 * may reopen space maps from it), so thin_dump -m reports no data blocks.
	 */
	EXPECT_EQ(got.nr_data_blocks, 0u);
	got.nr_data_blocks = want.nr_data_blocks;
	got.metadata_snap.reset();
	EXPECT_EQ(first_difference(tools::write_xml(got), tools::write_xml(want)), "");

	ASSERT_TRUE(md->release_metadata_snap().is_ok());
	ASSERT_EQ(w.commit(), "");
	ASSERT_EQ(test::thin_check(image), ""); /* old image still fine */
	ASSERT_EQ(judge(*dev, model, tmp, "released"), "");
}

/* ---- reverse: thin_restore writes, we read and modify ---- */

test::PoolModel random_model(uint64_t seed, uint64_t nr_data)
{
	std::mt19937_64 rng(seed);
	test::PoolModel m(DBS, nr_data);
	uint64_t next = 0;
	for (uint32_t id = 0; id < 6; id++) {
		uint32_t dev = id * 7 + uint32_t(rng() % 5);
		m.create_thin(dev);
		uint64_t v = 0;
		for (int i = 0; i < 700; i++) {
			v += 1 + rng() % 3;
			m.note_allocated(next);
			m.insert(dev, v, next);
			next += 1 + (rng() % 4 == 0 ? 1 : 0); /* runs with gaps */
		}
	}
	m.set_transaction_id(9);
	m.commit();
	return m;
}

class ThinOracleRestore : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ThinOracleRestore, ThinRestoreImageOpensWithTheSameMappings)
{
	REQUIRE_ORACLE();
	std::string restore = test::oracle_tool("thin_restore");
	ASSERT_FALSE(restore.empty());
	test::TempDir tmp;
	test::PoolModel model = random_model(GetParam(), 20000);
	std::string xml_path = tmp.file("in.xml"), image = tmp.file("restored.img");
	std::ofstream(xml_path) << tools::write_xml(model.to_xml());
	{
		std::ofstream img(image, std::ios::binary);
		img.seekp(4096 * 2048 - 1);
		img.put('\0');
	}
	test::CmdResult r = test::run_command(restore + " -i '" + xml_path + "' -o '" + image + "'");
	ASSERT_EQ(r.status, 0) << r.output;

	auto fdev = pdata::FileBlockDevice::open(image, false);
	ASSERT_TRUE(fdev.is_ok());
	std::unique_ptr<pdata::FileBlockDevice> dev = fdev.release_value();
	SuperblockProblem why;
	auto o = ThinMetadata::open(*dev, OpenOptions{DBS}, &why);
	ASSERT_TRUE(o.is_ok()) << o.error_code() << " " << superblock_problem_text(why);
	std::unique_ptr<ThinMetadata> md(o.release_value());
	ASSERT_EQ(test::compare_with_model(*md, *dev, model), "");

	/* Now change their image with our code; the oracle must still agree. */
	test::WorkloadOptions wo;
	wo.seed = GetParam() + 1000;
	wo.steps = 600;
	wo.resizes = true;
	test::Workload w(*md, model, wo);
	ASSERT_EQ(w.run(), "");
	ASSERT_EQ(w.commit(), "");
	ASSERT_EQ(test::compare_with_model(*md, *dev, model), "");
	ASSERT_EQ(test::thin_check(image), "");
	std::string xml;
	ASSERT_EQ(test::thin_dump(image, xml), "");
	EXPECT_EQ(first_difference(xml, tools::write_xml(model.to_xml())), "");
}

INSTANTIATE_TEST_SUITE_P(Seeds, ThinOracleRestore, ::testing::Values(11, 12, 13));

} // namespace
