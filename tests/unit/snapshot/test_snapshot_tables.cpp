// SPDX-License-Identifier: GPL-2.0
/*
 * Table lines the targets refuse, each with the ti->error Linux 6.1 reports
 * (chunk size problems included: 6.1 replaces the inner reason with
 * "Couldn't create exception store"; we also log the inner reason), corrupt
 * stores, and allocation failures at every step of construction.
 */
#include "snap_fixture.h"

#include "format.h"

using namespace dmxx;
using namespace dmxx::test;

namespace {

class SnapTables : public SnapTest {
protected:
	std::unique_ptr<user::MemDisk> o = disk(1024), c = disk(1024);
	std::string O = o->dev_name(), C = c->dev_name();

	void TearDown() override
	{
		o.reset();
		c.reset();
		SnapTest::TearDown();
	}
	std::string refused(const std::string &args, const char *type = "snapshot")
	{
		user::log_clear();
		return dm_error("0 1024 " + std::string(type) + " " + args).error;
	}
};

} // namespace

TEST_F(SnapTables, SnapshotArguments)
{
	EXPECT_EQ(refused(""), "requires 4 or more arguments");
	EXPECT_EQ(refused(O + " " + C + " P"), "requires 4 or more arguments");
	EXPECT_EQ(refused("/dev/nope " + C + " P 8"), "Cannot get origin device");
	EXPECT_EQ(refused(O + " /dev/nope P 8"), "Cannot get COW device");
	EXPECT_EQ(refused(O + " " + O + " P 8"), "COW device cannot be the same as origin device");
	EXPECT_EQ(refused(O + " " + C + " X 8"), "Couldn't create exception store");
	EXPECT_TRUE(user::log_contains("Exception store type is not P or N"));
	EXPECT_EQ(refused(O + " " + C + " P 8k"), "Couldn't create exception store");
	EXPECT_TRUE(user::log_contains("Invalid chunk size"));
	EXPECT_EQ(refused(O + " " + C + " P -8"), "Couldn't create exception store");
	EXPECT_EQ(refused(O + " " + C + " P 4294967296"), "Couldn't create exception store");
	EXPECT_EQ(refused(O + " " + C + " P 12"), "Couldn't create exception store");
	EXPECT_TRUE(user::log_contains("Chunk size is not a power of 2"));
	EXPECT_EQ(refused(O + " " + C + " P 8388608"), "Couldn't create exception store");
	EXPECT_TRUE(user::log_contains("Chunk size is too high"));
	EXPECT_EQ(refused(O + " " + C + " PX 8"), "Couldn't create exception store");
	EXPECT_TRUE(user::log_contains("Unsupported persistent store option: X"));
	EXPECT_EQ(refused(O + " " + C + " N 0"), "Chunk size not set");
}

TEST_F(SnapTables, ChunkSizeAgainstBlockSizes)
{
	auto big = disk(1024, 4096);
	EXPECT_EQ(refused(O + " " + big->dev_name() + " P 4"), "Couldn't create exception store");
	EXPECT_TRUE(user::log_contains("Chunk size is not a multiple of device blocksize"));
	EXPECT_EQ(refused(big->dev_name() + " " + C + " N 4"), "Couldn't create exception store");
	EXPECT_TRUE(user::log_contains("Chunk size is not a multiple of device blocksize"));
	/* Default chunk size on a 4 KiB-sector COW: 32 sectors still (the larger of 16 KiB and the block). */
	auto origin = dm("0 1024 snapshot-origin " + big->dev_name());
	auto sn = dm("0 1024 snapshot " + big->dev_name() + " " + C + " P 0");
	ASSERT_TRUE(origin && sn);
	EXPECT_EQ(table(sn.get()), big->dev_name() + " " + C + " P 32");
	sn.reset();
	origin.reset();
}

TEST_F(SnapTables, FeatureArguments)
{
	std::string base = O + " " + C + " P 8 ";
	EXPECT_EQ(refused(base + "x"), "Invalid number of feature arguments");
	EXPECT_EQ(refused(base + "3 a b c"), "Invalid number of feature arguments");
	EXPECT_EQ(refused(base + "2 discard_zeroes_cow"), "Invalid number of feature arguments");
	EXPECT_EQ(refused(base + "1 discard_everything"), "Unrecognised feature requested");
	EXPECT_EQ(refused(base + "1 discard_passdown_origin"),
		  "discard_passdown_origin feature depends on discard_zeroes_cow");
	/* Features are checked before the devices, as the kernel does. */
	EXPECT_EQ(refused("/dev/nope " + C + " P 8 1 bogus"), "Unrecognised feature requested");
	auto origin = dm(origin_table(o.get()));
	auto ok = dm("0 1024 snapshot " + base + "0");
	ASSERT_TRUE(ok && origin);
	EXPECT_EQ(table(ok.get()), O + " " + C + " P 8");
}

TEST_F(SnapTables, OriginArguments)
{
	EXPECT_EQ(refused("", "snapshot-origin"), "origin: incorrect number of arguments");
	EXPECT_EQ(refused(O + " " + C, "snapshot-origin"), "origin: incorrect number of arguments");
	EXPECT_EQ(refused("/dev/nope", "snapshot-origin"), "Cannot get target device");
	EXPECT_EQ(refused(O + " " + C + " P", "snapshot-merge"), "requires 4 or more arguments");
}

TEST_F(SnapTables, CorruptStoresAreRefused)
{
	auto header = [&](u32 magic, u32 valid, u32 version, u32 chunk) {
		std::vector<u8> h(512, 0);
		snap::encode_header(h.data(), {magic, valid, version, chunk});
		c->write_raw(0, h.data(), h.size());
	};
	header(0x12345678, 1, 1, 8);
	EXPECT_EQ(refused(O + " " + C + " P 8"), "Failed to read snapshot metadata");
	EXPECT_TRUE(user::log_contains("Invalid or corrupt snapshot"));
	header(snap::disk_magic, 1, 2, 8);
	EXPECT_EQ(refused(O + " " + C + " P 8"), "Failed to read snapshot metadata");
	EXPECT_TRUE(user::log_contains("unable to handle snapshot disk version 2"));
	header(snap::disk_magic, 1, 1, 12);
	EXPECT_EQ(refused(O + " " + C + " P 8"), "Failed to read snapshot metadata");
	EXPECT_TRUE(user::log_contains("invalid on-disk chunk size 12: Chunk size is not a power of 2."));
	header(snap::disk_magic, 1, 1, 0);
	EXPECT_EQ(refused(O + " " + C + " P 8"), "Failed to read snapshot metadata");
	/* An exception pointing into metadata, one beyond the device, one recorded twice. */
	header(snap::disk_magic, 1, 1, 8);
	for (auto e : {snap::CoreException{3, 1}, snap::CoreException{3, 5000}}) {
		std::vector<u8> area(4096, 0);
		snap::encode_exception(area.data(), 0, e);
		c->write_raw(8, area.data(), area.size());
		EXPECT_EQ(refused(O + " " + C + " P 8"), "Failed to read snapshot metadata");
	}
	std::vector<u8> area(4096, 0);
	snap::encode_exception(area.data(), 0, {3, 2});
	snap::encode_exception(area.data(), 1, {3, 3});
	c->write_raw(8, area.data(), area.size());
	EXPECT_EQ(refused(O + " " + C + " P 8"), "Failed to read snapshot metadata");
	EXPECT_TRUE(user::log_contains("chunk 3 is recorded twice"));
	/* Unreadable header. */
	c->fail_range(0, 8, true, false);
	EXPECT_EQ(refused(O + " " + C + " P 8"), "Failed to read snapshot metadata");
	c->clear_faults();
	/* A COW device smaller than one chunk. */
	auto tiny = disk(4);
	EXPECT_EQ(refused(O + " " + tiny->dev_name() + " P 8"), "Failed to read snapshot metadata");
}

TEST_F(SnapTables, OneStorePerCowDevice)
{
	auto origin = dm(origin_table(o.get()));
	auto sn = dm(snap_table(o.get(), c.get(), "P 8"));
	ASSERT_TRUE(origin && sn);
	/* The second table is a handover destination; a third is refused. */
	auto dest = user::DmDevice::create_empty(unique_name("sdm"));
	ASSERT_TRUE(dest->load(snap_table(o.get(), c.get(), "P 8")).ok());
	EXPECT_EQ(refused(O + " " + C + " P 8"), "Snapshot cow pairing for exception table handover failed");
	dest.reset();
	sn.reset();
	origin.reset();
}

/* Every allocation of a constructor can fail: the load fails cleanly, nothing leaks, the next works. */
TEST_F(SnapTables, AllocationFailuresAtEveryStep)
{
	auto origin = dm(origin_table(o.get()));
	ASSERT_TRUE(origin);
	for (uint64_t n = 0; n < 200; n++) {
		user::AllocFaultScope scope;
		user::fail_nth_alloc(n);
		user::DmResult r;
		auto md = user::DmDevice::create(unique_name("sdm"), snap_table(o.get(), c.get(), "P 8"), &r);
		bool failed_here = !md;
		md.reset();
		c->write_raw(0, std::vector<u8>(512, 0).data(), 512); /* fresh store next time */
		if (!failed_here && user::alloc_stats().failures == 0)
			break; /* past the last allocation */
		if (failed_here) {
			EXPECT_NE(r.code, 0);
		}
	}
	auto md = dm(snap_table(o.get(), c.get(), "P 8"));
	EXPECT_TRUE(md);
	md.reset();
	for (uint64_t n = 0; n < 20; n++) {
		user::AllocFaultScope scope;
		user::fail_nth_alloc(n);
		auto od = user::DmDevice::create(unique_name("sdm"), origin_table(o.get()));
		od.reset();
	}
	origin.reset();
}
