// SPDX-License-Identifier: GPL-2.0
/*
 * Exception handover: a new table on an active snapshot's COW device takes
 * over its exceptions and store at resume (a reload, as lvextend does; or
 * lvconvert --merge, where snapshot-merge replaces snapshot-origin).
 */
#include "snap_fixture.h"

#include <chrono>

using namespace dmxx;
using namespace dmxx::test;
using namespace std::chrono_literals;

namespace {

class SnapHandover : public SnapTest {
protected:
	std::unique_ptr<user::MemDisk> o = disk(2048), c = disk(1024);
	std::vector<u8> base = pattern(0, 2048 * 512, 60);

	void SetUp() override
	{
		SnapTest::SetUp();
		o->write_raw(0, base.data(), base.size());
	}
	void TearDown() override
	{
		o.reset();
		c.reset();
		SnapTest::TearDown();
	}
};


} // namespace

TEST_F(SnapHandover, ReloadKeepsTheExceptions)
{
	auto origin = dm(origin_table(o.get()));
	auto sn = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && sn);
	for (sector_t s = 0; s < 512; s += 40)
		write(origin.get(), s, pattern(s, 4096, 61));
	auto st = info(sn.get());
	/* dmsetup reload + resume of the snapshot device, PO this time. */
	ASSERT_TRUE(sn->load(snap_table(o.get(), c.get(), "PO 8")).ok());
	ASSERT_TRUE(sn->resume().ok());
	EXPECT_EQ(info(sn.get()), st);
	EXPECT_EQ(table(sn.get()), o->dev_name() + " " + c->dev_name() + " PO 8");
	EXPECT_EQ(read(sn.get(), 0, base.size()), base);
	/* The new table goes on copying into the same store. */
	for (sector_t s = 1000; s < 1200; s += 40)
		write(origin.get(), s, pattern(s, 4096, 62));
	EXPECT_EQ(read(sn.get(), 0, base.size()), base);
	/* And the store on disk holds it all. */
	sn.reset();
	sn = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(sn);
	EXPECT_EQ(read(sn.get(), 0, base.size()), base);
}

/* lvconvert --merge: the origin's table becomes snapshot-merge over the snapshot's COW. */
TEST_F(SnapHandover, MergeTakesOverFromTheSnapshot)
{
	auto origin = dm(origin_table(o.get()));
	auto sn = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && sn);
	for (sector_t s = 0; s < 800; s += 56)
		write(origin.get(), s, pattern(s, 4096, 63));
	write(sn.get(), 1500, pattern(1500, 8 * 512, 64));
	auto view = read(sn.get(), 0, base.size());

	/*
	 * LVM loads snapshot-merge into the origin's own device. The model binds
	 * a device's per-bio data size at its first load (the kernel does not),
	 * so here the merge table goes into a device of its own.
	 */
	auto merge = user::DmDevice::create_empty(unique_name("sdm"));
	ASSERT_TRUE(merge->load(snap_table(o.get(), c.get(), "P 8", "snapshot-merge")).ok());
	/* The source must be suspended first. */
	user::log_clear();
	auto r = merge->resume();
	EXPECT_FALSE(r.ok());
	EXPECT_TRUE(user::log_contains("Unable to perform snapshot handover until source is suspended."));
	ASSERT_TRUE(origin->suspend().ok());
	ASSERT_TRUE(sn->suspend().ok());
	r = merge->resume();
	ASSERT_TRUE(r.ok()) << r.error;
	origin.reset();
	ASSERT_TRUE(eventually([&] {
		unsigned long long a, b, m;
		return sscanf(info(merge.get()).c_str(), "%llu/%llu %llu", &a, &b, &m) == 3 && a == m;
	})) << info(merge.get());
	EXPECT_EQ(info(sn.get()), "Invalid"); /* the source gave everything away */
	sn.reset();
	EXPECT_EQ(read(merge.get(), 0, base.size()), view);
	merge.reset();
	EXPECT_EQ(raw(o.get(), 0, base.size()), view);
}

TEST_F(SnapHandover, SourceRemovedFirstCancels)
{
	auto origin = dm(origin_table(o.get()));
	auto sn = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && sn);
	auto dest = user::DmDevice::create_empty(unique_name("sdm"));
	ASSERT_TRUE(dest->load(snap_table(o.get(), c.get(), "P 8")).ok());
	user::log_clear();
	sn.reset();
	EXPECT_TRUE(user::log_contains("Cancelling snapshot handover."));
	ASSERT_TRUE(dest->resume().ok());
	EXPECT_EQ(info(dest.get()), "Invalid");
	dest.reset();
	origin.reset();
}
