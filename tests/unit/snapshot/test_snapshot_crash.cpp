// SPDX-License-Identifier: GPL-2.0
/*
 * Crash consistency of the P store: a crash at every metadata write, then a
 * reload, loses no copied chunk and allocates no chunk twice.
 *
 * The disks model a volatile write cache: a write is durable only after a
 * later flush (REQ_PREFLUSH) on the same disk, or at once with REQ_FUA. At
 * each metadata write to the COW (the header or an area) the durable images
 * of both disks are captured twice: just before the write (its preflush
 * included) and just after it. Each capture is then loaded into fresh disks
 * as the kernel would find them after power loss, and checked:
 *   - the snapshot loads, and reads exactly the origin's original data,
 *     although the origin holds (durably: the test writes with FUA) every
 *     write acknowledged before the crash;
 *   - the recorded exceptions name distinct data chunks;
 *   - after overwriting every origin chunk again, the snapshot still reads
 *     the original data (a reused COW chunk would have been overwritten).
 * The negative control runs the same workload with commits that skip the
 * flush: the check must fail.
 */
#include "snap_fixture.h"

#include "format.h"
#include "persistent_store.h"

#include <cstring>
#include <set>

using namespace dmxx;
using namespace dmxx::test;

namespace {

constexpr sector_t origin_sectors = 64; /* chunk size 1: 64 chunks */
constexpr sector_t cow_sectors = 160;   /* header, and 32-entry areas every 33 chunks */

struct Capture {
	std::vector<u8> origin, cow;
};

struct Crashes {
	std::mutex lock; /* both disks apply I/O and are captured under it */
	std::vector<Capture> captures;
	bool armed = true;
};

class CrashDisk final : public block_device {
public:
	CrashDisk(const std::string &name, sector_t sectors, Crashes *c, bool cow)
		: block_device(name, 252, next_minor(), 512), m_current(sectors * 512), m_durable(sectors * 512),
		  m_crashes(c), m_cow(cow)
	{
		set_nr_sectors(sectors);
		publish();
	}
	~CrashDisk() override { unpublish(); }
	void set_peer(CrashDisk *p) { m_peer = p; }
	void fill(const std::vector<u8> &d)
	{
		m_current = d;
		m_durable = d;
	}
	const std::vector<u8> &current() const { return m_current; }

	void submit(bio *b) override
	{
		u8 status = DMXX_BLK_STS_OK;
		{
			std::lock_guard<std::mutex> g(m_crashes->lock);
			u32 op = b->bi_opf & DMXX_REQ_OP_MASK;
			bool write = op == DMXX_REQ_OP_WRITE;
			bool meta = m_cow && write && b->bi_size && is_metadata(b->bi_sector);
			if (meta)
				capture();
			if (b->bi_opf & DMXX_REQ_PREFLUSH || op == DMXX_REQ_OP_FLUSH)
				m_durable = m_current;
			size_t off = size_t(b->bi_sector) * 512;
			if (off + b->bi_size > m_current.size()) {
				status = DMXX_BLK_STS_IOERR;
			} else if (op == DMXX_REQ_OP_READ) {
				memcpy(b->bi_data, m_current.data() + off, b->bi_size);
			} else if (write && b->bi_size) {
				memcpy(m_current.data() + off, b->bi_data, b->bi_size);
				if (b->bi_opf & DMXX_REQ_FUA)
					memcpy(m_durable.data() + off, b->bi_data, b->bi_size);
			}
			if (meta)
				capture();
		}
		bio_complete(b, status);
	}

private:
	static unsigned next_minor()
	{
		static std::atomic<unsigned> m{0};
		return m.fetch_add(1);
	}
	/* Chunk size 1: sector 0 is the header, areas every 33 sectors from 1. */
	static bool is_metadata(sector_t s) { return s == 0 || (s - 1) % 33 == 0; }
	void capture()
	{
		if (!m_crashes->armed)
			return;
		m_crashes->captures.push_back({m_peer->m_durable, m_durable});
	}

	std::vector<u8> m_current, m_durable;
	Crashes *m_crashes;
	bool m_cow;
	CrashDisk *m_peer = nullptr;
};

class SnapCrash : public SnapTest {
protected:
	std::vector<u8> base = pattern(0, origin_sectors * 512, 40);

	/* The workload: two threads write every origin chunk (FUA), twice over. */
	std::vector<Capture> run_workload()
	{
		Crashes crashes;
		auto od = std::make_unique<CrashDisk>(unique_name("crash-o"), origin_sectors, &crashes, false);
		auto cd = std::make_unique<CrashDisk>(unique_name("crash-c"), cow_sectors, &crashes, true);
		od->set_peer(cd.get());
		cd->set_peer(od.get());
		od->fill(base);
		cd->fill(std::vector<u8>(cow_sectors * 512, 0xee)); /* stale junk: only zeroed areas may be trusted */
		std::memset(const_cast<u8 *>(cd->current().data()), 0, 512); /* a blank header: a new store */
		cd->fill(cd->current());
		{
			auto origin = dm(origin_table(od.get()));
			auto sn = dm("0 64 snapshot " + od->dev_name() + " " + cd->dev_name() + " P 1");
			EXPECT_TRUE(origin && sn);
			std::vector<std::thread> ts;
			for (int t = 0; t < 2; t++)
				ts.emplace_back([&, t] {
					for (int round = 0; round < 2; round++)
						for (sector_t s = sector_t(t); s < origin_sectors; s += 2) {
							auto d = pattern(s, 512, 41 + round);
							EXPECT_EQ(user::sync_io(origin.get(), DMXX_REQ_OP_WRITE | DMXX_REQ_FUA, s,
										d.data(), 512),
								  DMXX_BLK_STS_OK);
						}
				});
			for (auto &t : ts)
				t.join();
			EXPECT_EQ(read(sn.get(), 0, base.size()), base);
			std::lock_guard<std::mutex> g(crashes.lock);
			crashes.armed = false;
		}
		return std::move(crashes.captures);
	}

	/* Load one crash image and check it; "" if fine, else what is wrong. */
	std::string check(const Capture &cap)
	{
		auto o = disk(origin_sectors), c = disk(cow_sectors);
		o->write_raw(0, cap.origin.data(), cap.origin.size());
		c->write_raw(0, cap.cow.data(), cap.cow.size());
		user::DmResult r;
		auto sn = user::DmDevice::create(unique_name("crash-s"),
						 "0 64 snapshot " + o->dev_name() + " " + c->dev_name() + " P 1", &r);
		if (!sn)
			return "reload failed: " + r.error;
		auto origin = dm(origin_table(o.get()));
		if (read(sn.get(), 0, base.size()) != base)
			return "the snapshot lost data";
		/* Every recorded exception has a data chunk of its own. */
		std::set<u64> news, olds;
		snap::AreaLayout l(1);
		for (u64 area = 0;; area++) {
			auto a = raw(c.get(), l.area_location(area), 512);
			bool full = true;
			for (u32 i = 0; i < l.exceptions_per_area(); i++) {
				auto e = snap::decode_exception(a.data(), i);
				if (!e.new_chunk) {
					full = false;
					break;
				}
				if (!news.insert(e.new_chunk).second || !olds.insert(e.old_chunk).second)
					return "chunk recorded twice";
				if (l.is_metadata(e.new_chunk))
					return "exception in a metadata chunk";
			}
			if (!full)
				break;
		}
		/* New copies must not land on recorded ones. */
		for (sector_t s = 0; s < origin_sectors; s++)
			write(origin.get(), s, pattern(s, 512, 99));
		if (read(sn.get(), 0, base.size()) != base)
			return "a new copy overwrote a recorded one";
		sn.reset();
		origin.reset();
		return "";
	}
};

} // namespace

TEST_F(SnapCrash, EveryMetadataWriteIsACrashPoint)
{
	auto caps = run_workload();
	ASSERT_GE(caps.size(), 2u * 64 / 32); /* at least the area writes */
	size_t checked = 0;
	for (size_t i = 0; i < caps.size(); i++) {
		std::string problem = check(caps[i]);
		ASSERT_EQ(problem, "") << "crash point " << i << " of " << caps.size();
		checked++;
	}
	EXPECT_EQ(checked, caps.size());
	RecordProperty("crash_points", int(caps.size()));
}

TEST_F(SnapCrash, CommitsWithoutFlushAreCaught)
{
	snap::set_unsafe_commits_for_test(true);
	auto caps = run_workload();
	snap::set_unsafe_commits_for_test(false);
	size_t bad = 0;
	for (const auto &c : caps)
		if (!check(c).empty())
			bad++;
	EXPECT_GT(bad, 0u) << "the crash check did not notice commits that skip the flush";
}
