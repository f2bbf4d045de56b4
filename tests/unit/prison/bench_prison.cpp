// SPDX-License-Identifier: GPL-2.0
/*
 * Bio prison micro-benchmark: detain + release_no_holder pairs per second
 * (the map path's pattern for a write to a mapped block) at 1, 2, nproc
 * and 8 threads, for the sharded prison and the same code with one shard
 * (Linux 6.1's single lock). Not run by ctest.
 *
 * Workloads:
 *   spread      each thread locks random blocks of a large device; threads
 *               never conflict on a key, only (maybe) on a lock;
 *   one-region  all threads lock blocks of one 1024-block region: one
 *               shard, so sharding cannot help (reported for honesty).
 * The last column is the ceiling: every thread locking a private lock as
 * often (see private_lock_rate).
 *
 * In userspace the platform's spinlock is an error-checking pthread mutex,
 * so a contended lock sleeps instead of spinning; with more threads than
 * CPUs that is kinder to the single lock than a real spinlock would be.
 *
 *   bench_prison [milliseconds per run, default 300] [rounds, default 5]
 */
#include "prison/bio_prison.h"

#include <dmxx/lock.h>

#include <dmxx/user/block.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

using namespace dmxx;
using namespace dmxx::thin;

namespace {

enum class Workload { Spread, OneRegion };

struct ThreadBio {
	Cell cell;
	bio b{};
};

double run_once(unsigned shards, unsigned threads, Workload wl, unsigned ms)
{
	BioPrison prison;
	if (prison.init(shards).is_error()) {
		fprintf(stderr, "prison init failed\n");
		exit(1);
	}
	std::atomic<bool> go{false}, stop{false};
	std::atomic<unsigned> ready{0};
	std::vector<unsigned long long> ops(threads, 0);
	std::vector<std::thread> pool;
	for (unsigned t = 0; t < threads; t++)
		pool.emplace_back([&, t] {
			ThreadBio tb;
			std::mt19937_64 rng(t * 1000003ull + 17);
			unsigned long long n = 0;
			ready.fetch_add(1);
			while (!go.load(std::memory_order_acquire))
				;
			while (!stop.load(std::memory_order_relaxed)) {
				for (int i = 0; i < 64; i++) {
					/* Keys are unique per thread (block % threads == t): no joins. */
					u64 slot = wl == Workload::Spread ? rng() % (1u << 22) : rng() % (1024 / threads);
					u64 block = slot * threads + t;
					Cell *c;
					auto r = prison.detain(virtual_block_key(0, block), &tb.b, tb.cell, c);
					if (r.is_error() || r.value()) {
						fprintf(stderr, "unexpected detain result\n");
						exit(1);
					}
					dmxx_bio_list out = {};
					prison.release_no_holder(*c, out);
				}
				n += 64;
			}
			ops[t] = n;
		});
	while (ready.load() != threads)
		std::this_thread::yield();
	auto start = std::chrono::steady_clock::now();
	go.store(true, std::memory_order_release);
	std::this_thread::sleep_for(std::chrono::milliseconds(ms));
	stop.store(true);
	for (auto &th : pool)
		th.join();
	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	unsigned long long total = 0;
	for (auto n : ops)
		total += n;
	if (prison.cells_in_use() != 0) {
		fprintf(stderr, "cells left behind\n");
		exit(1);
	}
	return double(total) / secs;
}

/*
 * The ceiling for any lock design on this machine right now: each thread
 * takes and drops its OWN lock twice per "operation" (detain and release
 * each take a shard lock once), so nothing is shared. If this does not
 * grow with threads, the CPUs are busy or shared and no prison can scale.
 */
double private_lock_rate(unsigned threads, unsigned ms)
{
	std::atomic<bool> stop{false};
	std::vector<unsigned long long> ops(threads, 0);
	std::vector<std::thread> pool;
	auto start = std::chrono::steady_clock::now();
	for (unsigned t = 0; t < threads; t++)
		pool.emplace_back([&, t] {
			SpinLock own;
			unsigned long long n = 0;
			while (!stop.load(std::memory_order_relaxed)) {
				for (int i = 0; i < 64; i++) {
					{
						IrqGuard g(own);
					}
					IrqGuard g(own);
				}
				n += 64;
			}
			ops[t] = n;
		});
	std::this_thread::sleep_for(std::chrono::milliseconds(ms));
	stop.store(true);
	for (auto &th : pool)
		th.join();
	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	unsigned long long total = 0;
	for (auto n : ops)
		total += n;
	return double(total) / secs;
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv)
{
	unsigned ms = argc > 1 ? unsigned(atoi(argv[1])) : 300;
	unsigned rounds = argc > 2 ? unsigned(atoi(argv[2])) : 5;
	unsigned nproc = std::max(1u, std::thread::hardware_concurrency());
	std::vector<unsigned> counts{1, 2, nproc, 8};
	std::sort(counts.begin(), counts.end());
	counts.erase(std::unique(counts.begin(), counts.end()), counts.end());

	printf("bio prison: detain+release per second (median of %u runs of %u ms), nproc=%u\n", rounds, ms,
	       nproc);
	printf("%-11s %7s %14s %14s %8s %14s\n", "workload", "threads", "sharded(64)", "single-lock",
	       "ratio", "private-locks");
	for (Workload wl : {Workload::Spread, Workload::OneRegion}) {
		for (unsigned t : counts) {
			/* Alternate the variants so drift in machine load hits both alike. */
			std::vector<double> a, b, c;
			for (unsigned r = 0; r < rounds; r++) {
				a.push_back(run_once(BioPrison::kDefaultShards, t, wl, ms));
				b.push_back(run_once(1, t, wl, ms));
				c.push_back(private_lock_rate(t, ms));
			}
			double sharded = median(a), single = median(b), ceiling = median(c);
			printf("%-11s %7u %14.0f %14.0f %8.2f %14.0f\n",
			       wl == Workload::Spread ? "spread" : "one-region", t, sharded, single,
			       sharded / single, ceiling);
			fflush(stdout);
		}
	}
	return 0;
}
