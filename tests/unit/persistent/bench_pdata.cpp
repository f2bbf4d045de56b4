// SPDX-License-Identifier: GPL-2.0
/*
 * Micro-benchmark of the btree over the in-memory device (built, never run by
 * ctest): inserts and lookups per second, and commit latency after N inserts.
 *   bench_pdata [N...]   default N = 1000 100000
 */
#include "persistent/btree.h"
#include "persistent/checksum.h"
#include "user/core_space_map.h"
#include "user/mem_block_device.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using namespace dmxx;
using namespace dmxx::pdata;
using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

static void run(u64 n, bool random_keys)
{
	MemBlockDevice dev(262144); /* 1 GiB of metadata */
	CoreSpaceMap sm(262144);
	(void)sm.set_count(0, 1);
	BlockCache cache(dev, 65536);
	(void)cache.init();
	TransactionManager tm(cache);
	(void)tm.init();
	tm.set_space_map(&sm);
	PlainValue vt(8);
	Btree t(tm, 2, vt);
	block_t root = t.create_empty().release_value();
	std::mt19937_64 rng(1);
	std::vector<u64> keys(n);
	for (u64 i = 0; i < n; i++)
		keys[i] = random_keys ? rng() % (n * 16) : i;

	auto t0 = Clock::now();
	for (u64 i = 0; i < n; i++) {
		u64 k[2] = {1, keys[i]};
		le64 v = to_le64(i << 24);
		auto r = t.insert(root, k, &v);
		if (r.is_error())
			std::abort();
		root = r.value();
	}
	double ins = secs(t0);

	t0 = Clock::now();
	if (tm.pre_commit().is_error())
		std::abort();
	auto sb = cache.write_lock_zero(0, nullptr);
	if (sb.is_error() || tm.commit(sb.release_value()).is_error())
		std::abort();
	double commit = secs(t0);
	u64 dirty_written = dev.nr_writes();

	t0 = Clock::now();
	u8 val[8];
	for (u64 i = 0; i < n; i++) {
		u64 k[2] = {1, keys[(i * 7919) % n]};
		if (t.lookup(root, k, val).is_error())
			std::abort();
	}
	double look = secs(t0);

	std::printf("%-7s n=%-7llu insert %9.0f/s  lookup %9.0f/s  commit %7.2f ms (%llu blocks)\n",
		    random_keys ? "random" : "seq", (unsigned long long)n, n / ins, n / look,
		    commit * 1e3, (unsigned long long)dirty_written);
}

int main(int argc, char **argv)
{
	std::vector<u64> sizes;
	for (int i = 1; i < argc; i++)
		sizes.push_back(std::strtoull(argv[i], nullptr, 0));
	if (sizes.empty())
		sizes = {1000, 100000};
	for (u64 n : sizes) {
		run(n, false);
		run(n, true);
	}
	return 0;
}
