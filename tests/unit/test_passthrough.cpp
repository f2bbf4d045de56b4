// SPDX-License-Identifier: GPL-2.0
/* dmxx-linear (dm_core/passthrough_target.cpp) run through the userspace DM model. */
#include "helpers.h"

#include <atomic>
#include <set>
#include <thread>

using namespace dmxx;
using dmxx::test::pattern;
using dmxx::user::DmDevice;
using dmxx::user::DmResult;
using dmxx::user::MemDisk;

namespace {

class Passthrough : public dmxx::test::DmxxTest {
protected:
	void SetUp() override
	{
		DmxxTest::SetUp();
		ASSERT_EQ(dmxx_passthrough_init(), 0);
		disk = MemDisk::create("mem0", 2048);
		ASSERT_TRUE(disk);
		devt = disk->dev_name();
	}
	void TearDown() override
	{
		if (disk) {
			EXPECT_EQ(disk->open_count(), 0);
		}
		disk.reset();
		dmxx_passthrough_exit();
		DmxxTest::TearDown();
	}

	std::unique_ptr<MemDisk> disk;
	std::string devt;
};

} // namespace

TEST_F(Passthrough, RegistrationIsExclusiveAndCanFail)
{
	EXPECT_EQ(dmxx_passthrough_init(), -EEXIST);
	dmxx_passthrough_exit();
	user::fail_nth_alloc(0);
	EXPECT_EQ(dmxx_passthrough_init(), -ENOMEM);
	EXPECT_TRUE(user::log_contains("register target dmxx-linear failed: -12"));
	EXPECT_EQ(dmxx_passthrough_init(), 0);
}

TEST_F(Passthrough, DataLandsAtTheOffset)
{
	DmResult r;
	auto md = DmDevice::create("lin", "0 1024 dmxx-linear mem0 100", &r);
	ASSERT_TRUE(md) << r.error;
	EXPECT_EQ(dmxx_bdev_nr_sectors(md.get()), 1024u);
	EXPECT_EQ(disk->open_count(), 1);

	for (sector_t s : {sector_t(0), sector_t(7), sector_t(1016)}) {
		auto data = pattern(s, 8 * 512, 3);
		ASSERT_EQ(user::sync_write(md.get(), s, data.data(), u32(data.size())), DMXX_BLK_STS_OK);
		std::vector<u8> raw(data.size());
		disk->read_raw(100 + s, raw.data(), raw.size());
		EXPECT_EQ(raw, data) << "sector " << s;
	}
	/* And the other way: written on the disk, read through the target. */
	auto data = pattern(500, 4096, 9);
	disk->write_raw(600, data.data(), data.size());
	std::vector<u8> back(4096);
	ASSERT_EQ(user::sync_read(md.get(), 500, back.data(), 4096), DMXX_BLK_STS_OK);
	EXPECT_EQ(back, data);
	/* Nothing outside [100, 1124) of the disk was touched. */
	std::vector<u8> before(100 * 512), after(512);
	disk->read_raw(0, before.data(), before.size());
	disk->read_raw(1124, after.data(), after.size());
	for (u8 b : before)
		ASSERT_EQ(b, 0);
	for (u8 b : after)
		ASSERT_EQ(b, 0);
	EXPECT_EQ(user::sync_read(md.get(), 1020, back.data(), 4096), DMXX_BLK_STS_IOERR) << "past the end";
}

TEST_F(Passthrough, PathFormsResolveToTheSameDevice)
{
	for (std::string path : {std::string("mem0"), std::string("/dev/mem0"), devt}) {
		auto md = DmDevice::create("lin", "0 16 dmxx-linear " + path + " 0");
		ASSERT_TRUE(md) << path;
		EXPECT_EQ(md->status(DMXX_STATUSTYPE_TABLE), "0 16 dmxx-linear " + devt + " 0");
	}
}

TEST_F(Passthrough, StatusTableInfoAndIma)
{
	auto md = DmDevice::create("lin", "0 1024 dmxx-linear /dev/mem0 100");
	ASSERT_TRUE(md);
	EXPECT_EQ(md->target_status(DMXX_STATUSTYPE_TABLE), std::vector<std::string>{devt + " 100"});
	EXPECT_EQ(md->status(DMXX_STATUSTYPE_TABLE), "0 1024 dmxx-linear " + devt + " 100");
	EXPECT_EQ(md->target_status(DMXX_STATUSTYPE_INFO), std::vector<std::string>{""});
	EXPECT_EQ(md->target_status(DMXX_STATUSTYPE_IMA),
		  std::vector<std::string>{"target_name=dmxx-linear,target_version=1.0.0,device_name=" + devt +
					   ",start=100;"});
	/* A short result buffer truncates, never overflows. */
	auto shortst = md->target_status(DMXX_STATUSTYPE_TABLE, 0, 4);
	EXPECT_EQ(shortst, std::vector<std::string>{devt.substr(0, 3)});
	/* The table line round-trips: loading what TABLE printed gives the same table. */
	auto again = DmDevice::create("lin2", "0 1024 dmxx-linear " + md->target_status(DMXX_STATUSTYPE_TABLE)[0]);
	ASSERT_TRUE(again);
	EXPECT_EQ(again->status(DMXX_STATUSTYPE_TABLE), "0 1024 dmxx-linear " + devt + " 100");
}

TEST_F(Passthrough, IterateDevicesReportsTheMappedArea)
{
	auto md = DmDevice::create("lin", "0 1000 dmxx-linear mem0 48");
	ASSERT_TRUE(md);
	auto areas = md->iterate_devices(0);
	ASSERT_EQ(areas.size(), 1u);
	EXPECT_EQ(areas[0].dev, devt);
	EXPECT_EQ(areas[0].start, 48u);
	EXPECT_EQ(areas[0].len, 1000u);
}

TEST_F(Passthrough, ConfiguresFlushDiscardAndNoPerBioData)
{
	auto md = DmDevice::create("lin", "0 1024 dmxx-linear mem0 8");
	ASSERT_TRUE(md);
	dm_target *ti = md->target(0);
	ASSERT_NE(ti, nullptr);
	EXPECT_EQ(ti->num_flush_bios, 1u);
	EXPECT_EQ(ti->num_discard_bios, 1u);
	EXPECT_EQ(ti->num_secure_erase_bios, 1u);
	EXPECT_EQ(ti->num_write_zeroes_bios, 1u);
	EXPECT_EQ(ti->per_io_data_size, 0u);
	EXPECT_EQ(ti->max_io_len, 0u);
	EXPECT_EQ(ti->type->features,
		  DMXX_TARGET_PASSES_INTEGRITY | DMXX_TARGET_NOWAIT | DMXX_TARGET_PASSES_CRYPTO);
	EXPECT_EQ(ti->type->message, nullptr);
	EXPECT_EQ(md->message(0, "anything").code, -EINVAL);

	EXPECT_EQ(user::sync_io(md.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH, 0, nullptr, 0), DMXX_BLK_STS_OK);
	EXPECT_EQ(disk->counters().flushes, 1u);
	auto data = pattern(0, 1024);
	disk->write_raw(8, data.data(), data.size());
	EXPECT_EQ(user::sync_io(md.get(), DMXX_REQ_OP_DISCARD, 0, nullptr, 1024), DMXX_BLK_STS_OK);
	std::vector<u8> raw(1024);
	disk->read_raw(8, raw.data(), raw.size());
	EXPECT_EQ(raw, std::vector<u8>(1024, 0));
}

TEST_F(Passthrough, PrepareIoctlOnlyForTheWholeDevice)
{
	auto whole = DmDevice::create("whole", "0 2048 dmxx-linear mem0 0");
	auto part = DmDevice::create("part", "0 1024 dmxx-linear mem0 0");
	ASSERT_TRUE(whole && part);
	block_device *bd = nullptr;
	EXPECT_EQ(whole->target(0)->type->prepare_ioctl(whole->target(0), &bd), 0);
	EXPECT_EQ(bd, disk.get());
	EXPECT_EQ(part->target(0)->type->prepare_ioctl(part->target(0), &bd), 1);
	EXPECT_EQ(disk->open_count(), 2);
}

TEST_F(Passthrough, OffsetAndLengthMayExactlyFill)
{
	auto md = DmDevice::create("lin", "0 1024 dmxx-linear mem0 1024");
	ASSERT_TRUE(md);
	auto data = pattern(1023, 512);
	ASSERT_EQ(user::sync_write(md.get(), 1023, data.data(), 512), DMXX_BLK_STS_OK);
	std::vector<u8> raw(512);
	disk->read_raw(2047, raw.data(), 512);
	EXPECT_EQ(raw, data);
}

struct BadTable {
	const char *name;
	const char *args; /* after "0 <len> dmxx-linear" */
	unsigned long long len;
	int code;
	const char *error;
};

void PrintTo(const BadTable &c, std::ostream *os) { *os << c.name << ": '" << c.args << "'"; }

class PassthroughBadTable : public Passthrough, public ::testing::WithParamInterface<BadTable> {};

TEST_P(PassthroughBadTable, FailsWithItsOwnMessageAndChangesNothing)
{
	const BadTable &c = GetParam();
	auto live = user::alloc_stats().live;
	std::string table = "0 " + std::to_string(c.len) + " dmxx-linear " + c.args;
	DmResult r;
	auto md = DmDevice::create("bad", table, &r);
	EXPECT_FALSE(md);
	EXPECT_EQ(r.code, c.code);
	EXPECT_EQ(r.error, c.error);
	EXPECT_TRUE(user::log_contains(std::string("bad: dmxx-linear: ") + c.error)) << "DM logs ti->error";
	EXPECT_EQ(user::lookup_bdev("/dev/mapper/bad"), nullptr) << "no device created";
	EXPECT_EQ(disk->open_count(), 0) << "device not left open";
	EXPECT_EQ(user::alloc_stats().live, live);
	EXPECT_EQ(disk->counters().reads + disk->counters().writes, 0u);
}

INSTANTIATE_TEST_SUITE_P(
	Tables, PassthroughBadTable,
	::testing::Values(BadTable{"NoArgs", "", 16, -EINVAL, "Invalid argument count"},
			  BadTable{"OneArg", "mem0", 16, -EINVAL, "Invalid argument count"},
			  BadTable{"ThreeArgs", "mem0 0 0", 16, -EINVAL, "Invalid argument count"},
			  BadTable{"OffsetNotANumber", "mem0 abc", 16, -EINVAL, "Invalid device sector"},
			  BadTable{"OffsetNegative", "mem0 -1", 16, -EINVAL, "Invalid device sector"},
			  BadTable{"OffsetPlusSign", "mem0 +1", 16, -EINVAL, "Invalid device sector"},
			  BadTable{"OffsetTrailingGarbage", "mem0 12x", 16, -EINVAL, "Invalid device sector"},
			  BadTable{"OffsetHex", "mem0 0x10", 16, -EINVAL, "Invalid device sector"},
			  BadTable{"OffsetOverflow", "mem0 18446744073709551616", 16, -EINVAL, "Invalid device sector"},
			  BadTable{"NoSuchName", "nodisk 0", 16, -ENODEV, "Device lookup failed"},
			  BadTable{"NoSuchPath", "/dev/nodisk 0", 16, -ENODEV, "Device lookup failed"},
			  BadTable{"NoSuchDevt", "99:99 0", 16, -ENODEV, "Device lookup failed"},
			  BadTable{"OffsetPastEnd", "mem0 2049", 1, -EINVAL, "Device too small for offset and length"},
			  BadTable{"OffsetAtEnd", "mem0 2048", 1, -EINVAL, "Device too small for offset and length"},
			  BadTable{"LengthPastEnd", "mem0 1025", 1024, -EINVAL, "Device too small for offset and length"},
			  BadTable{"LengthBeyondDevice", "mem0 0", 2049, -EINVAL, "Device too small for offset and length"},
			  BadTable{"OffsetMaxU64", "mem0 18446744073709551615", 16, -EINVAL,
				   "Device too small for offset and length"}),
	[](const ::testing::TestParamInfo<BadTable> &info) { return std::string(info.param.name); });

/*
 * Fail the N-th allocation of the table load, for every N until the load
 * succeeds: each failure must report an error, set ti->error, and leave
 * nothing behind (ASan's leak checker covers operator new).
 */
TEST_F(Passthrough, EveryAllocationFailureInCtrIsHandled)
{
	int failures = 0;
	std::set<std::string> messages;
	for (uint64_t n = 0;; n++) {
		ASSERT_LT(n, 50u) << "load never succeeded";
		auto live = user::alloc_stats().live;
		user::log_clear();
		user::fail_nth_alloc(n);
		DmResult r;
		auto md = DmDevice::create("fi", "0 1024 dmxx-linear mem0 100", &r);
		bool injected = user::alloc_stats().failures > 0;
		user::clear_alloc_faults();
		if (md) {
			EXPECT_TRUE(r.ok());
			auto data = pattern(0, 512);
			EXPECT_EQ(user::sync_write(md.get(), 0, data.data(), 512), DMXX_BLK_STS_OK);
			break;
		}
		failures++;
		EXPECT_EQ(r.code, -ENOMEM) << "n=" << n;
		EXPECT_FALSE(r.error.empty()) << "n=" << n;
		EXPECT_NE(r.error, "Unknown error") << "n=" << n;
		messages.insert(r.error);
		EXPECT_EQ(user::lookup_bdev("/dev/mapper/fi"), nullptr);
		EXPECT_EQ(disk->open_count(), 0) << "n=" << n;
		EXPECT_EQ(user::alloc_stats().live, live) << "n=" << n;
		(void)injected;
	}
	EXPECT_GE(failures, 2) << "both the device lookup and the context allocation can fail";
	EXPECT_TRUE(messages.count("Device lookup failed"));
	EXPECT_TRUE(messages.count("Cannot allocate linear context"));
}

TEST_F(Passthrough, MultipleTargetsOverTwoDisks)
{
	auto other = MemDisk::create("mem1", 512);
	ASSERT_TRUE(other);
	auto md = DmDevice::create("multi", "0 256 dmxx-linear mem0 1000\n256 256 dmxx-linear mem1 256");
	ASSERT_TRUE(md);
	auto data = pattern(250, 12 * 512);
	ASSERT_EQ(user::sync_write(md.get(), 250, data.data(), u32(data.size())), DMXX_BLK_STS_OK);
	std::vector<u8> a(6 * 512), b(6 * 512);
	disk->read_raw(1250, a.data(), a.size());
	other->read_raw(256, b.data(), b.size());
	EXPECT_TRUE(std::equal(a.begin(), a.end(), data.begin()));
	EXPECT_TRUE(std::equal(b.begin(), b.end(), data.begin() + 6 * 512));
	EXPECT_EQ(md->status(DMXX_STATUSTYPE_TABLE),
		  "0 256 dmxx-linear " + devt + " 1000\n256 256 dmxx-linear " + other->dev_name() + " 256");
	md.reset();
	EXPECT_EQ(other->open_count(), 0);
}

TEST_F(Passthrough, MultiThreadedIo)
{
	auto async = MemDisk::create("amem", 8192, {512, true});
	ASSERT_TRUE(async);
	auto md = DmDevice::create("mt", "0 4096 dmxx-linear amem 1000\n4096 2048 dmxx-linear mem0 0");
	ASSERT_TRUE(md);
	std::atomic<int> bad{0};
	std::vector<std::thread> threads;
	for (int t = 0; t < 6; t++)
		threads.emplace_back([&, t] {
			for (int i = 0; i < 80; i++) {
				/* Each thread owns a 1024-sector region; one straddles the two targets. */
				sector_t s = sector_t(t * 1024 + (i * 37) % 1000);
				u32 bytes = u32(((i % 8) + 1) * 512);
				auto data = pattern(s, bytes, unsigned(i + t));
				std::vector<u8> back(bytes);
				if (user::sync_write(md.get(), s, data.data(), bytes) ||
				    user::sync_read(md.get(), s, back.data(), bytes) || back != data)
					bad++;
				if (i % 10 == 0 &&
				    user::sync_io(md.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH, 0, nullptr, 0))
					bad++;
			}
		});
	for (auto &t : threads)
		t.join();
	EXPECT_EQ(bad.load(), 0);
	md.reset();
	EXPECT_EQ(async->open_count(), 0);
}
