// SPDX-License-Identifier: GPL-2.0
/*
 * Many threads writing and reading the origin and two snapshots at once
 * (run under TSan too), on disks completing from their own threads, with a
 * small COW threshold so writers queue in the throttle. Each thread owns a
 * region and keeps a model of all three views of it; every read is checked
 * against the model, and everything once more at the end.
 */
#include "snap_fixture.h"

#include <random>

using namespace dmxx;
using namespace dmxx::test;

namespace {
class SnapStress : public SnapTest {};
} // namespace

TEST_F(SnapStress, OriginAndSnapshotsConcurrently)
{
	constexpr int threads = 4;
	constexpr sector_t region = 1024, total = region * threads;
	constexpr int ops = 400;
	dmxx_user_param_set_uint("snapshot_cow_threshold", 4);
	auto o = disk(total, 512, true), c1 = disk(total + 512, 512, true), c2 = disk(total + 512, 512, true);
	auto base = pattern(0, total * 512, 50);
	o->write_raw(0, base.data(), base.size());
	auto origin = dm(origin_table(o.get()));
	auto s1 = dm(snap_table(o.get(), c1.get(), "P 8"));
	auto s2 = dm(snap_table(o.get(), c2.get(), "N 16"));
	ASSERT_TRUE(origin && s1 && s2);
	ASSERT_TRUE(origin->suspend().ok()); /* pick up the smallest chunk size for splitting */
	ASSERT_TRUE(origin->resume().ok());
	user::DmDevice *views[3] = {origin.get(), s1.get(), s2.get()};

	std::vector<std::vector<u8>> model[threads];
	std::vector<std::thread> ts;
	std::atomic<int> mismatches{0};
	for (int t = 0; t < threads; t++) {
		for (int v = 0; v < 3; v++)
			model[t].emplace_back(base.begin() + t * region * 512, base.begin() + (t + 1) * region * 512);
		ts.emplace_back([&, t] {
			std::mt19937 rng(100 + t);
			sector_t first = sector_t(t) * region;
			for (int i = 0; i < ops; i++) {
				int v = int(rng() % 3);
				sector_t off = rng() % (region - 32);
				u32 n = 1 + rng() % 32;
				auto &m = model[t][v];
				if (rng() % 3) {
					auto d = pattern(first + off, n * 512, 1000 * t + i);
					if (user::sync_write(views[v], first + off, d.data(), n * 512) != DMXX_BLK_STS_OK)
						mismatches.fetch_add(1);
					std::copy(d.begin(), d.end(), m.begin() + off * 512);
				} else {
					std::vector<u8> got(n * 512);
					if (user::sync_read(views[v], first + off, got.data(), n * 512) != DMXX_BLK_STS_OK ||
					    !std::equal(got.begin(), got.end(), m.begin() + off * 512))
						mismatches.fetch_add(1);
				}
			}
		});
	}
	for (auto &th : ts)
		th.join();
	EXPECT_EQ(mismatches.load(), 0);
	for (int t = 0; t < threads; t++)
		for (int v = 0; v < 3; v++)
			EXPECT_EQ(read(views[v], sector_t(t) * region, region * 512), model[t][v]) << "thread " << t << " view " << v;
	auto *snap1 = static_cast<snap::Snapshot *>(s1->target(0)->priv);
	EXPECT_LE(snap1->throttle().max_in_flight(), 4u);
	EXPECT_EQ(snap1->pending_count(), 0u);
	s2.reset();
	s1.reset();
	origin.reset();
}
