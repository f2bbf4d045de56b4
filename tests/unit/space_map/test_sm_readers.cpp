// SPDX-License-Identifier: GPL-2.0
// The read-only calls of both maps run concurrently (thin's shared-lock
// readers ask "is this data block shared?"); they must change no state.
// The oracle is TSan (this suite runs in the TSan variant) plus the values.
#include <atomic>
#include <thread>

#include "sm_env.h"

using namespace dmxx;
using namespace dmxx::pdata;
using namespace dmxx::pdata::test;

TEST(SpaceMapReaders, ConcurrentLookupsWithNoWriter)
{
	const block_t E = RefCounts::entries_per_bitmap;
	SmEnv env(2000, 3 * E);
	std::vector<u32> data(3 * E, 0);
	/* More bitmaps than the index cache has slots would need; a spread of counts. */
	for (block_t b = 0; b < data.size(); b += 7) {
		u32 c = 1 + b % 5;
		ASSERT_OK(env.dsm->set_count(b, c));
		data[b] = c;
	}
	ASSERT_OK(env.commit());
	/* Leave part of the index dirty in the cache: readers must see it too. */
	for (block_t b = 1; b < data.size(); b += 1001) {
		ASSERT_OK(env.dsm->inc(b));
		data[b]++;
	}

	std::atomic<int> mismatches{0};
	std::vector<std::thread> readers;
	for (int t = 0; t < 4; t++) {
		readers.emplace_back([&, t] {
			for (block_t b = t; b < data.size(); b += 3) {
				auto c = env.dsm->get_count(b);
				auto more = env.dsm->count_is_more_than_one(b);
				if (!c.is_ok() || c.value() != data[b] || !more.is_ok() ||
				    more.value() != (data[b] > 1))
					mismatches++;
				if (b % 64 == 0) {
					if (!env.msm->get_count(b % 2000).is_ok())
						mismatches++;
					(void)env.msm->nr_free();
					(void)env.dsm->nr_free();
				}
			}
		});
	}
	for (auto &r : readers)
		r.join();
	EXPECT_EQ(mismatches.load(), 0);
}
