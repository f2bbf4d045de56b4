// SPDX-License-Identifier: GPL-2.0
/*
 * The userspace DM model, driven by small test targets written with the
 * core's own target framework (TargetAdapter), so the model is checked
 * against the same entry points real targets use.
 */
#include "helpers.h"

#include <atomic>
#include <mutex>
#include <thread>

using namespace dmxx;
using dmxx::test::pattern;
using dmxx::user::DmDevice;
using dmxx::user::DmResult;
using dmxx::user::MemDisk;

namespace {

/* ---- test-remap: linear remapping with per-bio data, max_io_len and partial accepts ---- */

struct RemapStats {
	std::atomic<int> maps{0}, end_ios{0}, flush_maps{0}, bad_pbd{0};
	std::mutex lock;
	std::vector<std::pair<sector_t, u32>> pieces; /* (sector, sectors) as mapped */
	std::vector<int> end_ios_at_map;             /* clones completed when each piece was mapped */
	void reset()
	{
		maps = end_ios = flush_maps = bad_pbd = 0;
		std::lock_guard<std::mutex> g(lock);
		pieces.clear();
		end_ios_at_map.clear();
	}
};
RemapStats g_remap;

/* <dev> <offset> <max_io_len> <accept_partial_sectors> <num_discard_bios> */
class RemapTarget {
public:
	struct PerBio {
		u64 magic;
		sector_t sector;
	};

	static Result<RemapTarget *> create(dm_target *ti, TableArgs &args)
	{
		TRY(args.expect_count(5, "test-remap: argument count"));
		const char *path = TRY(args.next_string("test-remap: device"));
		u64 offset = TRY(args.next_u64("test-remap: offset"));
		u32 max_io = TRY(args.next_u32("test-remap: max_io_len"));
		u32 partial = TRY(args.next_u32("test-remap: partial"));
		u32 discards = TRY(args.next_u32("test-remap: discards", 0, 4));
		dm_dev *dev;
		int r = dmxx_dm_get_device(ti, path, &dev);
		if (r)
			return args.fail("test-remap: lookup", r);
		auto *t = new (AllocMode::Sleep) RemapTarget(ti, dev, offset, partial);
		if (!t) {
			dmxx_dm_put_device(ti, dev);
			return args.fail("test-remap: nomem", ENOMEM);
		}
		dmxx_ti_config cfg{};
		cfg.num_flush_bios = 1;
		cfg.num_discard_bios = discards;
		cfg.num_write_zeroes_bios = 1;
		cfg.max_io_len = max_io;
		if (ti_configure<RemapTarget>(ti, cfg).is_error()) {
			delete t;
			return args.fail("test-remap: configure");
		}
		return t;
	}
	~RemapTarget() { dmxx_dm_put_device(m_ti, m_dev); }

	MapResult map(bio *b)
	{
		PerBio *pb = per_bio<RemapTarget>(b);
		if (pf::bio_from_per_bio_data(pb, sizeof(PerBio)) != b)
			g_remap.bad_pbd++;
		pb->magic = 0x5eed;
		pb->sector = bio_sector(b);
		if (bio_is_flush(b) && !bio_size(b))
			g_remap.flush_maps++;
		if (m_partial && bio_sectors(b) > m_partial)
			pf::accept_partial_bio(b, m_partial);
		{
			std::lock_guard<std::mutex> g(g_remap.lock);
			g_remap.pieces.push_back({bio_sector(b), bio_sectors(b)});
			g_remap.end_ios_at_map.push_back(g_remap.end_ios.load());
		}
		g_remap.maps++;
		bio_set_dev(b, dmxx_dm_dev_bdev(m_dev));
		bio_set_sector(b, bio_sector(b) - pf::ti_begin(m_ti) + m_offset);
		return MapResult::Remapped;
	}

	EndioResult end_io(bio *b, u8 *)
	{
		if (per_bio<RemapTarget>(b)->magic != 0x5eed)
			g_remap.bad_pbd++;
		g_remap.end_ios++;
		return EndioResult::Done;
	}

	int iterate_devices(dmxx_iterate_fn fn, void *data) { return fn(m_ti, m_dev, m_offset, pf::ti_len(m_ti), data); }

private:
	RemapTarget(dm_target *ti, dm_dev *dev, u64 offset, u32 partial)
		: m_ti(ti), m_dev(dev), m_offset(offset), m_partial(partial)
	{
	}
	dm_target *m_ti;
	dm_dev *m_dev;
	u64 m_offset;
	u32 m_partial;
};

constexpr TargetInfo remap_info = {.name = "test-remap", .version = {0, 1, 0}, .features = 0};
constexpr dmxx_target_desc remap_desc = describe_target<RemapTarget, remap_info>();

/* ---- test-action: map results, hooks, status, messages ---- */

struct ActionKnobs {
	std::atomic<int> map_result{int(MapResult::Remapped)};
	std::atomic<int> requeues_left{0};
	std::atomic<int> maps{0};
	std::atomic<int> preresume_error{0};
	std::mutex lock;
	std::vector<std::string> hooks;
	void reset()
	{
		map_result = int(MapResult::Remapped);
		requeues_left = 0;
		maps = 0;
		preresume_error = 0;
		std::lock_guard<std::mutex> g(lock);
		hooks.clear();
	}
	void hook(const std::string &h)
	{
		std::lock_guard<std::mutex> g(lock);
		hooks.push_back(h);
	}
};
ActionKnobs g_action;

/* <dev> */
class ActionTarget {
public:
	static Result<ActionTarget *> create(dm_target *ti, TableArgs &args)
	{
		const char *path = TRY(args.next_string("test-action: device"));
		dm_dev *dev;
		int r = dmxx_dm_get_device(ti, path, &dev);
		if (r)
			return args.fail("test-action: lookup", r);
		auto *t = new (AllocMode::Sleep) ActionTarget(ti, dev);
		if (!t) {
			dmxx_dm_put_device(ti, dev);
			return args.fail("test-action: nomem", ENOMEM);
		}
		g_action.hook("ctr");
		return t;
	}
	~ActionTarget()
	{
		g_action.hook("dtr");
		dmxx_dm_put_device(m_ti, m_dev);
	}

	MapResult map(bio *b)
	{
		g_action.maps++;
		if (g_action.requeues_left.load() > 0) {
			g_action.requeues_left--;
			return MapResult::Requeue;
		}
		auto r = MapResult(g_action.map_result.load());
		if (r == MapResult::Submitted) {
			bio_complete(b, DMXX_BLK_STS_NOSPC);
			return r;
		}
		if (r == MapResult::Remapped)
			bio_set_dev(b, dmxx_dm_dev_bdev(m_dev));
		return r;
	}

	void status(StatusType type, unsigned, StatusWriter &out)
	{
		if (type == StatusType::Info)
			out.emit("maps=%d", g_action.maps.load());
		else if (type == StatusType::Table)
			out.emit("%s", dmxx_dm_dev_name(m_dev));
	}

	Result<void> message(TableArgs &args, StatusWriter &out)
	{
		const char *cmd = TRY(args.next_string("missing command"));
		if (str_eq(cmd, "ping")) {
			out.emit("pong");
			return {};
		}
		if (str_eq(cmd, "event")) {
			dmxx_dm_table_event(m_ti);
			return {};
		}
		return args.fail("unknown command");
	}

	void presuspend() { g_action.hook("presuspend"); }
	void postsuspend() { g_action.hook("postsuspend"); }
	Result<void> preresume()
	{
		g_action.hook("preresume");
		if (int e = g_action.preresume_error.load())
			return err(e);
		return {};
	}
	void resume() { g_action.hook("resume"); }

private:
	ActionTarget(dm_target *ti, dm_dev *dev) : m_ti(ti), m_dev(dev) {}
	dm_target *m_ti;
	dm_dev *m_dev;
};

constexpr TargetInfo action_info = {.name = "test-action", .version = {0, 1, 0}, .features = 0};
constexpr dmxx_target_desc action_desc = describe_target<ActionTarget, action_info>();

class DmModel : public dmxx::test::DmxxTest {
protected:
	void SetUp() override
	{
		DmxxTest::SetUp();
		g_remap.reset();
		g_action.reset();
		const dmxx_target_desc *descs[] = {&remap_desc, &action_desc};
		ASSERT_TRUE(register_targets(descs, regs, 2).is_ok());
		disk = MemDisk::create("disk0", 4096);
		disk1 = MemDisk::create("disk1", 4096);
		ASSERT_TRUE(disk && disk1);
	}
	void TearDown() override
	{
		disk.reset();
		disk1.reset();
		unregister_targets(regs, 2);
		DmxxTest::TearDown();
	}
	std::vector<std::string> hooks()
	{
		std::lock_guard<std::mutex> g(g_action.lock);
		return g_action.hooks;
	}

	dmxx_target_reg *regs[2] = {};
	std::unique_ptr<MemDisk> disk, disk1;
};

} // namespace

TEST_F(DmModel, SplitsAtTargetBoundaries)
{
	DmResult r;
	auto md = DmDevice::create("two", "0 100 test-remap disk0 1000 0 0 1\n100 100 test-remap disk1 7 0 0 1", &r);
	ASSERT_TRUE(md) << r.error;
	EXPECT_EQ(dmxx_bdev_nr_sectors(md.get()), 200u);
	EXPECT_EQ(md->num_targets(), 2u);
	auto data = pattern(96, 8 * 512);
	ASSERT_EQ(user::sync_write(md.get(), 96, data.data(), 8 * 512), DMXX_BLK_STS_OK);
	std::vector<u8> a(4 * 512), b(4 * 512);
	disk->read_raw(1096, a.data(), a.size());
	disk1->read_raw(7, b.data(), b.size());
	EXPECT_TRUE(std::equal(a.begin(), a.end(), data.begin()));
	EXPECT_TRUE(std::equal(b.begin(), b.end(), data.begin() + 4 * 512));
	EXPECT_EQ(g_remap.maps.load(), 2);
	EXPECT_EQ(g_remap.end_ios.load(), 2);
	EXPECT_EQ(g_remap.bad_pbd.load(), 0);
	std::vector<u8> back(8 * 512);
	ASSERT_EQ(user::sync_read(md.get(), 96, back.data(), back.size()), DMXX_BLK_STS_OK);
	EXPECT_EQ(back, data);
	EXPECT_EQ(user::sync_read(md.get(), 199, back.data(), 1024), DMXX_BLK_STS_IOERR) << "past the end";
}

TEST_F(DmModel, SplitsAtMaxIoLenAndPartialAccepts)
{
	auto md = DmDevice::create("split", "0 1000 test-remap disk0 0 16 0 1");
	ASSERT_TRUE(md);
	std::vector<u8> buf(40 * 512);
	ASSERT_EQ(user::sync_read(md.get(), 10, buf.data(), buf.size()), DMXX_BLK_STS_OK);
	std::vector<std::pair<sector_t, u32>> want = {{10, 6}, {16, 16}, {32, 16}, {48, 2}};
	EXPECT_EQ(g_remap.pieces, want);

	auto md2 = DmDevice::create("partial", "0 1000 test-remap disk0 0 0 8 1");
	ASSERT_TRUE(md2);
	g_remap.reset();
	auto data = pattern(3, 20 * 512);
	ASSERT_EQ(user::sync_write(md2.get(), 3, data.data(), data.size()), DMXX_BLK_STS_OK);
	want = {{3, 8}, {11, 8}, {19, 4}};
	EXPECT_EQ(g_remap.pieces, want);
	std::vector<u8> raw(data.size());
	disk->read_raw(3, raw.data(), raw.size());
	EXPECT_EQ(raw, data);
}

TEST_F(DmModel, FlushGoesToEveryTargetThenData)
{
	auto md = DmDevice::create("fl", "0 100 test-remap disk0 0 0 0 1\n100 100 test-remap disk1 0 0 0 1");
	ASSERT_TRUE(md);
	EXPECT_EQ(user::sync_io(md.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH, 0, nullptr, 0), DMXX_BLK_STS_OK);
	EXPECT_EQ(g_remap.flush_maps.load(), 2);
	EXPECT_EQ(disk->counters().flushes, 1u);
	EXPECT_EQ(disk1->counters().flushes, 1u);

	auto data = pattern(5, 512);
	EXPECT_EQ(user::sync_io(md.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_PREFLUSH | DMXX_REQ_FUA, 5, data.data(), 512),
		  DMXX_BLK_STS_OK);
	EXPECT_EQ(g_remap.flush_maps.load(), 4);
	EXPECT_EQ(disk->counters().writes, 1u);
	EXPECT_EQ(disk->counters().fua, 1u);
	std::vector<u8> raw(512);
	disk->read_raw(5, raw.data(), 512);
	EXPECT_EQ(raw, data);
}

TEST_F(DmModel, DiscardNeedsDiscardBios)
{
	auto md = DmDevice::create("disc", "0 100 test-remap disk0 0 0 0 1\n100 100 test-remap disk1 0 0 0 0");
	ASSERT_TRUE(md);
	EXPECT_EQ(user::sync_io(md.get(), DMXX_REQ_OP_DISCARD, 0, nullptr, 50 * 512), DMXX_BLK_STS_OK);
	EXPECT_EQ(disk->counters().discards, 1u);
	EXPECT_EQ(user::sync_io(md.get(), DMXX_REQ_OP_DISCARD, 100, nullptr, 50 * 512), DMXX_BLK_STS_NOTSUPP);
	EXPECT_EQ(disk1->counters().discards, 0u);
	EXPECT_EQ(user::sync_io(md.get(), DMXX_REQ_OP_WRITE_ZEROES, 150, nullptr, 512), DMXX_BLK_STS_OK);
	EXPECT_EQ(disk1->counters().write_zeroes, 1u);
}

TEST_F(DmModel, MapResultsKillSubmittedRequeue)
{
	auto md = DmDevice::create("act", "0 100 test-action disk0");
	ASSERT_TRUE(md);
	std::vector<u8> buf(512);
	EXPECT_EQ(user::sync_read(md.get(), 0, buf.data(), 512), DMXX_BLK_STS_OK);
	g_action.map_result = int(MapResult::Kill);
	EXPECT_EQ(user::sync_read(md.get(), 0, buf.data(), 512), DMXX_BLK_STS_IOERR);
	g_action.map_result = int(MapResult::Submitted);
	EXPECT_EQ(user::sync_read(md.get(), 0, buf.data(), 512), DMXX_BLK_STS_NOSPC);
	g_action.map_result = int(MapResult::Remapped);
	g_action.requeues_left = 3;
	g_action.maps = 0;
	EXPECT_EQ(user::sync_read(md.get(), 0, buf.data(), 512), DMXX_BLK_STS_OK);
	EXPECT_EQ(g_action.maps.load(), 4);
}

TEST_F(DmModel, StatusMessageAndEvents)
{
	auto md = DmDevice::create("st", "0 100 test-action disk0\n100 50 test-remap disk1 0 0 0 1");
	ASSERT_TRUE(md);
	EXPECT_EQ(md->status(DMXX_STATUSTYPE_TABLE), "0 100 test-action " + disk->dev_name() + "\n100 50 test-remap");
	EXPECT_EQ(md->status(DMXX_STATUSTYPE_INFO), "0 100 test-action maps=0\n100 50 test-remap");
	std::string out;
	EXPECT_TRUE(md->message(0, "ping", &out).ok());
	EXPECT_EQ(out, "pong");
	EXPECT_EQ(md->message(0, "bogus", &out).code, -EINVAL);
	EXPECT_TRUE(user::log_contains("message rejected: unknown command"));
	EXPECT_EQ(md->message(120, "ping", &out).code, -EINVAL) << "test-remap has no message method";
	EXPECT_EQ(md->message(500, "ping", &out).code, -EINVAL);
	auto before = md->event_nr();
	EXPECT_TRUE(md->message(0, "event").ok());
	EXPECT_EQ(md->event_nr(), before + 1);
	auto areas = md->iterate_devices(1);
	ASSERT_EQ(areas.size(), 1u);
	EXPECT_EQ(areas[0].dev, disk1->dev_name());
	EXPECT_EQ(areas[0].len, 50u);
}

TEST_F(DmModel, SuspendDefersIoAndHooksRunInOrder)
{
	auto md = DmDevice::create("sus", "0 100 test-action disk0");
	ASSERT_TRUE(md);
	ASSERT_TRUE(md->suspend().ok());
	EXPECT_TRUE(md->suspended());
	EXPECT_EQ(md->suspend().code, -EINVAL);

	std::atomic<bool> done{false};
	std::vector<u8> buf(512);
	std::thread t([&] {
		EXPECT_EQ(user::sync_read(md.get(), 0, buf.data(), 512), DMXX_BLK_STS_OK);
		done = true;
	});
	std::this_thread::sleep_for(std::chrono::milliseconds(30));
	EXPECT_FALSE(done.load()) << "I/O to a suspended device waits";
	EXPECT_EQ(g_action.maps.load(), 0);
	ASSERT_TRUE(md->resume().ok());
	t.join();
	EXPECT_TRUE(done.load());
	std::vector<std::string> want = {"ctr", "preresume", "resume", "presuspend", "postsuspend", "preresume", "resume"};
	EXPECT_EQ(hooks(), want);
}

TEST_F(DmModel, FailedPreresumeLeavesDeviceSuspended)
{
	auto md = DmDevice::create("pre", "0 100 test-action disk0");
	ASSERT_TRUE(md);
	ASSERT_TRUE(md->suspend().ok());
	g_action.preresume_error = EIO;
	EXPECT_EQ(md->resume().code, -EIO);
	EXPECT_TRUE(md->suspended());
	g_action.preresume_error = 0;
	EXPECT_TRUE(md->resume().ok());
	EXPECT_FALSE(md->suspended());
}

TEST_F(DmModel, ReloadSwapsTablesOnResume)
{
	auto md = DmDevice::create("re", "0 100 test-remap disk0 0 0 0 1");
	ASSERT_TRUE(md);
	auto data = pattern(0, 512);
	ASSERT_TRUE(md->load("0 200 test-remap disk1 0 0 0 1").ok());
	EXPECT_TRUE(md->has_inactive());
	ASSERT_EQ(user::sync_write(md.get(), 0, data.data(), 512), DMXX_BLK_STS_OK); /* old table */
	EXPECT_EQ(disk->counters().writes, 1u);
	EXPECT_EQ(disk1->open_count(), 1) << "the inactive table holds its device";
	ASSERT_TRUE(md->resume().ok());
	EXPECT_EQ(dmxx_bdev_nr_sectors(md.get()), 200u);
	EXPECT_EQ(disk->open_count(), 0) << "the old table was destroyed";
	ASSERT_EQ(user::sync_write(md.get(), 150, data.data(), 512), DMXX_BLK_STS_OK);
	EXPECT_EQ(disk1->counters().writes, 1u);

	/* A failing load changes nothing. */
	DmResult r = md->load("0 100 test-remap nodisk 0 0 0 1");
	EXPECT_EQ(r.code, -ENODEV);
	EXPECT_EQ(r.error, "test-remap: lookup");
	EXPECT_FALSE(md->has_inactive());
	EXPECT_EQ(md->status(DMXX_STATUSTYPE_INFO), "0 200 test-remap");
}

TEST_F(DmModel, TableErrors)
{
	struct Case {
		const char *table;
		int code;
		const char *error;
	} cases[] = {
		{"", -EINVAL, "empty table"},
		{"0 0 test-remap disk0 0 0 0 1", -EINVAL, "zero-length target"},
		{"0 10 no-such-target", -EINVAL, "unknown target type"},
		{"5 10 test-remap disk0 0 0 0 1", -EINVAL, "Gap in table"},
		{"0 10 test-remap disk0 0 0 0 1\n20 10 test-remap disk0 0 0 0 1", -EINVAL, "Gap in table"},
		{"0 x test-remap disk0 0 0 0 1", -EINVAL, "Invalid table line: 0 x test-remap disk0 0 0 0 1"},
		{"0 10 test-remap disk0", -EINVAL, "test-remap: argument count"},
		{"0 10 test-remap disk0 0 0 0 9", -EINVAL, "test-remap: discards"},
		{"0 10 test-remap disk0 4090 0 0 1", -EINVAL,
		 "too small for target: start=4090, len=10, dev_size=4096"},
	};
	for (const auto &c : cases) {
		DmResult r;
		auto md = DmDevice::create("bad", c.table, &r);
		EXPECT_FALSE(md) << c.table;
		EXPECT_EQ(r.code, c.code) << c.table;
		EXPECT_NE(r.error.find(c.error), std::string::npos) << c.table << " -> " << r.error;
		EXPECT_EQ(user::lookup_bdev("/dev/mapper/bad"), nullptr);
		EXPECT_EQ(disk->open_count(), 0) << c.table;
	}
	/* The first target of a multi-target table is destroyed when the second fails. */
	g_action.reset();
	DmResult r;
	EXPECT_FALSE(DmDevice::create("bad", "0 10 test-action disk0\n10 10 test-action nodisk", &r));
	EXPECT_EQ(r.error, "test-action: lookup");
	std::vector<std::string> want = {"ctr", "dtr"};
	EXPECT_EQ(hooks(), want);
	EXPECT_EQ(disk->open_count(), 0);
}

TEST_F(DmModel, NamesAreUniqueAndResolvable)
{
	auto md = DmDevice::create("named", "0 10 test-remap disk0 0 0 0 1");
	ASSERT_TRUE(md);
	EXPECT_EQ(user::lookup_bdev("/dev/mapper/named"), md.get());
	EXPECT_EQ(user::lookup_bdev("/dev/dm-" + std::to_string(md->dev_minor())), md.get());
	EXPECT_EQ(user::lookup_bdev(md->dev_name()), md.get());
	EXPECT_EQ(md->dev_major(), 253u);
	DmResult r;
	EXPECT_FALSE(DmDevice::create("named", "0 10 test-remap disk0 0 0 0 1", &r));
	EXPECT_EQ(r.code, -EBUSY);
}

TEST_F(DmModel, StackedDevices)
{
	auto lower = DmDevice::create("lower", "0 1000 test-remap disk0 100 0 0 1");
	ASSERT_TRUE(lower);
	auto upper = DmDevice::create("upper", "0 500 test-remap /dev/mapper/lower 10 0 0 1");
	ASSERT_TRUE(upper);
	EXPECT_EQ(lower->open_count(), 1);
	auto data = pattern(0, 4096);
	ASSERT_EQ(user::sync_write(upper.get(), 0, data.data(), 4096), DMXX_BLK_STS_OK);
	std::vector<u8> raw(4096);
	disk->read_raw(110, raw.data(), raw.size());
	EXPECT_EQ(raw, data);
	upper.reset();
	EXPECT_EQ(lower->open_count(), 0);
}

TEST_F(DmModel, ConcurrentIoWithSuspendResume)
{
	auto async = MemDisk::create("async", 4096, {512, true});
	ASSERT_TRUE(async);
	auto md = DmDevice::create("conc", "0 2048 test-remap async 0 8 0 1\n2048 2048 test-action async");
	ASSERT_TRUE(md);
	std::atomic<int> bad{0};
	std::atomic<bool> stop{false};
	std::vector<std::thread> io;
	for (int t = 0; t < 4; t++)
		io.emplace_back([&, t] {
			for (int i = 0; i < 60; i++) {
				sector_t s = sector_t(t * 1024 + (i % 16) * 16);
				auto data = pattern(s, 16 * 512, unsigned(i));
				std::vector<u8> back(data.size());
				if (user::sync_write(md.get(), s, data.data(), u32(data.size())) ||
				    user::sync_read(md.get(), s, back.data(), u32(back.size())) || back != data)
					bad++;
			}
		});
	std::thread ctl([&] {
		while (!stop.load()) {
			if (!md->suspend().ok() || !md->resume().ok())
				bad++;
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		}
	});
	for (auto &t : io)
		t.join();
	stop = true;
	ctl.join();
	EXPECT_EQ(bad.load(), 0);
	EXPECT_EQ(g_remap.bad_pbd.load(), 0);
	md.reset();
}

using DmModelDeathTest = DmModel;

TEST_F(DmModelDeathTest, UnregisteringATargetInUseIsFatal)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			auto md = DmDevice::create("inuse", "0 10 test-remap disk0 0 0 0 1");
			unregister_targets(regs, 2);
		},
		"still used by a table");
}

/*
 * 6.1's dm_split_and_process_bio(): one piece is mapped, the original is
 * trimmed to the rest and resubmitted, and lands behind the piece's clone
 * on current->bio_list. So each piece is mapped only after the previous
 * piece's clone went down (and, on a synchronous disk, completed); the
 * original completes once, with its extent as submitted.
 */
namespace {
struct OrigDone {
	std::atomic<int> calls{0};
	sector_t sector = 0;
	u32 size = 0;
	u8 status = 0xff;
};
void orig_done(bio *b)
{
	auto *d = static_cast<OrigDone *>(b->bi_private);
	d->sector = b->bi_sector;
	d->size = b->bi_size;
	d->status = b->bi_status;
	d->calls++;
}
} // namespace

TEST_F(DmModel, SplitMapsOnePieceAtATimeDepthFirst)
{
	auto md = DmDevice::create("onepiece", "0 1000 test-remap disk0 0 16 0 1");
	ASSERT_TRUE(md);
	auto data = pattern(10, 40 * 512);
	OrigDone d;
	bio b{};
	b.bi_bdev = md.get();
	b.bi_opf = DMXX_REQ_OP_WRITE;
	b.bi_sector = 10;
	b.bi_size = 40 * 512;
	b.bi_data = data.data();
	b.bi_end_io = orig_done;
	b.bi_private = &d;
	dmxx_submit_bio(&b); /* the disk is synchronous: all done on return */
	EXPECT_EQ(d.calls.load(), 1);
	EXPECT_EQ(d.status, DMXX_BLK_STS_OK);
	EXPECT_EQ(d.sector, 10u);
	EXPECT_EQ(d.size, 40u * 512);
	std::vector<std::pair<sector_t, u32>> want = {{10, 6}, {16, 16}, {32, 16}, {48, 2}};
	EXPECT_EQ(g_remap.pieces, want);
	/* Mapping all pieces in one go (the old model) would give {0, 0, 0, 0}. */
	EXPECT_EQ(g_remap.end_ios_at_map, (std::vector<int>{0, 1, 2, 3}));
	std::vector<u8> raw(data.size());
	disk->read_raw(10, raw.data(), raw.size());
	EXPECT_EQ(raw, data);
}

/* A failing piece fails the original, once, after every piece has completed. */
TEST_F(DmModel, SplitOriginalCompletesOnceWithThePiecesError)
{
	auto md = DmDevice::create("onepiece-err", "0 100 test-remap disk0 0 0 0 1\n100 100 test-remap disk1 0 0 0 1");
	ASSERT_TRUE(md);
	disk1->fail_range(0, 8, false, true);
	auto data = pattern(96, 8 * 512);
	OrigDone d;
	bio b{};
	b.bi_bdev = md.get();
	b.bi_opf = DMXX_REQ_OP_WRITE;
	b.bi_sector = 96;
	b.bi_size = 8 * 512;
	b.bi_data = data.data();
	b.bi_end_io = orig_done;
	b.bi_private = &d;
	dmxx_submit_bio(&b);
	EXPECT_EQ(d.calls.load(), 1);
	EXPECT_EQ(d.status, DMXX_BLK_STS_IOERR);
	EXPECT_EQ(d.sector, 96u);
	EXPECT_EQ(d.size, 8u * 512);
	EXPECT_EQ(g_remap.maps.load(), 2);
}

/* ---- table type binding (seed 004) ------------------------------------------------------- */

TEST_F(DmModel, TypeIsBoundAtFirstLoadAndOtherTypesAreRejected)
{
	auto md = DmDevice::create_empty("typed");
	ASSERT_TRUE(md);
	EXPECT_EQ(md->type_name(), "none");
	ASSERT_TRUE(md->load("0 100 test-remap disk0 0 0 0 1").ok());
	EXPECT_EQ(md->type_name(), "bio-based pdata=16");
	DmResult r = md->load("0 100 test-action disk0");
	EXPECT_EQ(r.code, -EINVAL);
	EXPECT_EQ(r.error, "can't change device type after initial table load");
	EXPECT_EQ(md->type_name(), "bio-based pdata=16");
	ASSERT_TRUE(md->has_inactive()); /* the first table is still the inactive one */
	ASSERT_TRUE(md->resume().ok());
	EXPECT_EQ(md->status(DMXX_STATUSTYPE_TABLE).find("0 100 test-remap"), 0u);
	/* Same type again is fine. */
	EXPECT_TRUE(md->load("0 200 test-remap disk1 0 0 0 1").ok());
}

/*
 * Two loads of different types race on a fresh device: exactly one binds
 * its type, and the published inactive table is always of the bound type
 * (binding and publishing are one critical section).
 */
TEST_F(DmModel, ConcurrentLoadsOfDifferentTypesBindExactlyOne)
{
	int remap_wins = 0, action_wins = 0;
	for (int i = 0; i < 40; i++) {
		auto md = DmDevice::create_empty("race" + std::to_string(i));
		ASSERT_TRUE(md);
		std::atomic<int> ready{0};
		DmResult ra, rb;
		auto go = [&] {
			ready++;
			while (ready.load() < 2) {
			}
		};
		std::thread a([&] {
			go();
			ra = md->load("0 100 test-remap disk0 0 0 0 1");
		});
		std::thread b([&] {
			go();
			rb = md->load("0 100 test-action disk1");
		});
		a.join();
		b.join();
		ASSERT_NE(ra.ok(), rb.ok()) << ra.error << " / " << rb.error;
		EXPECT_EQ(md->type_name(), ra.ok() ? "bio-based pdata=16" : "bio-based pdata=0");
		ASSERT_TRUE(md->resume().ok());
		std::string table = md->status(DMXX_STATUSTYPE_TABLE);
		EXPECT_EQ(table.find(ra.ok() ? "0 100 test-remap" : "0 100 test-action"), 0u) << table;
		(ra.ok() ? remap_wins : action_wins)++;
	}
	EXPECT_EQ(remap_wins + action_wins, 40);
}

/* The publication lock is a spinlock: a blocking allocation under it is reported. */
TEST_F(DmModel, NoBlockingAllocationUnderThePublicationLock)
{
	user::set_violation_mode(user::ViolationMode::Record);
	uint64_t before = user::sleep_violations();
	auto ok = DmDevice::create_empty("pub-ok");
	ASSERT_TRUE(ok->load("0 100 test-remap disk0 0 0 0 1").ok());
	EXPECT_EQ(user::sleep_violations(), before);
	/* Negative control: the same allocation moved under the lock is caught. */
	auto bad = DmDevice::create_empty("pub-bad");
	bad->set_setup_under_lock_for_test(true);
	ASSERT_TRUE(bad->load("0 100 test-remap disk0 0 0 0 1").ok());
	EXPECT_GT(user::sleep_violations(), before);
	EXPECT_NE(user::last_violation().find("allocation with DMXX_ALLOC_SLEEP"), std::string::npos)
		<< user::last_violation();
}
