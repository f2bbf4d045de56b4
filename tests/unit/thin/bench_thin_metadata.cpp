// SPDX-License-Identifier: GPL-2.0
/*
 * Thin metadata micro-benchmark (userspace, in-memory device; not run by ctest):
 *   - mapping inserts per second (sequential and random virtual blocks),
 *   - lookups per second (random, all hits, warm cache),
 *   - commit latency with 1k and 100k dirty mappings, on the in-memory
 *     device and on an image file in $TMPDIR (flush = fdatasync).
 * Usage: bench_thin_metadata [--quick]
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <memory>
#include <random>
#include <vector>

#include "../../../dm_thin/metadata/thin_metadata.h"
#include "../../../dm_thin/user/file_block_device.h"
#include "../../../dm_thin/user/mem_block_device.h"

using namespace dmxx;
using namespace dmxx::thin;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0)
{
	return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Pool {
	std::unique_ptr<pdata::BlockDevice> dev;
	std::unique_ptr<ThinMetadata> md;
	std::string path; /* image file, removed at the end */
	~Pool()
	{
		md.reset();
		dev.reset();
		if (!path.empty())
			std::remove(path.c_str());
	}
};

std::unique_ptr<Pool> make_pool(block_t data_blocks, bool on_file = false)
{
	auto pp = std::make_unique<Pool>();
	Pool &p = *pp;
	if (on_file) {
		const char *tmp = std::getenv("TMPDIR");
		p.path = std::string(tmp && *tmp ? tmp : "/tmp") + "/bench_thin_metadata.img";
		auto f = pdata::FileBlockDevice::create(p.path, 65536);
		if (f.is_error()) {
			std::fprintf(stderr, "cannot create %s\n", p.path.c_str());
			std::exit(1);
		}
		p.dev = f.release_value();
	} else {
		p.dev = std::make_unique<pdata::MemBlockDevice>(65536); /* 256 MiB of metadata */
	}
	auto r = ThinMetadata::format(*p.dev, 128, data_blocks);
	if (r.is_error()) {
		std::fprintf(stderr, "format failed: %d\n", r.error_code());
		std::exit(1);
	}
	p.md.reset(r.release_value());
	if (p.md->create_thin(1).is_error())
		std::exit(1);
	return pp;
}

/* Insert @n mappings (fresh data blocks); returns seconds. */
double insert_n(ThinMetadata &md, const std::vector<block_t> &vblocks)
{
	auto t0 = Clock::now();
	for (block_t v : vblocks) {
		auto b = md.alloc_data_block();
		if (b.is_error() || md.insert(1, v, b.value()).is_error()) {
			std::fprintf(stderr, "insert failed\n");
			std::exit(1);
		}
	}
	return seconds_since(t0);
}

std::vector<block_t> shuffled(block_t n, uint64_t seed)
{
	std::vector<block_t> v(n);
	for (block_t i = 0; i < n; i++)
		v[i] = i;
	std::shuffle(v.begin(), v.end(), std::mt19937_64(seed));
	return v;
}

} // namespace

int main(int argc, char **argv)
{
	bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
	const block_t N = quick ? 20000 : 200000;

	std::printf("%-44s %14s\n", "thin metadata (1024-block cache)", "result");

	{
		auto pool = make_pool(N * 2);
		Pool &p = *pool;
		std::vector<block_t> seq(N);
		for (block_t i = 0; i < N; i++)
			seq[i] = i;
		double s = insert_n(*p.md, seq);
		std::printf("%-44s %11.0f /s\n", "insert, sequential vblocks (alloc+insert)", N / s);
	}
	{
		auto pool = make_pool(N * 2);
		Pool &p = *pool;
		std::vector<block_t> rnd = shuffled(N, 1);
		double s = insert_n(*p.md, rnd);
		std::printf("%-44s %11.0f /s\n", "insert, random vblocks (alloc+insert)", N / s);
		if (p.md->commit().is_error())
			return 1;
		std::vector<block_t> probe = shuffled(N, 2);
		auto t0 = Clock::now();
		u64 sum = 0;
		for (int rep = 0; rep < 2; rep++)
			for (block_t v : probe) {
				auto r = p.md->lookup(1, v);
				if (r.is_error())
					return 1;
				sum += r.value().data_block;
			}
		double ls = seconds_since(t0);
		std::printf("%-44s %11.0f /s\n", "lookup, random, all mapped", 2 * N / ls);
		if (sum == 42)
			std::printf("\n");
	}
	for (int on_file = 0; on_file < 2; on_file++)
	for (block_t dirty : {block_t(1000), block_t(quick ? 20000 : 100000)}) {
		/* A pool with history, then @dirty new random mappings in one transaction. */
		auto pool = make_pool(dirty * 4 + N, on_file);
		Pool &p = *pool;
		std::vector<block_t> base = shuffled(N / 2, 3);
		(void)insert_n(*p.md, base);
		if (p.md->commit().is_error())
			return 1;
		std::vector<block_t> more(dirty);
		std::mt19937_64 rng(4);
		for (block_t i = 0; i < dirty; i++)
			more[i] = N + rng() % (dirty * 8);
		(void)insert_n(*p.md, more);
		auto t0 = Clock::now();
		if (p.md->commit().is_error())
			return 1;
		double s = seconds_since(t0);
		char name[64];
		std::snprintf(name, sizeof(name), "commit, %llu dirty mappings, %s",
			      (unsigned long long)dirty, on_file ? "image file" : "memory");
		std::printf("%-44s %11.2f ms\n", name, s * 1e3);
	}
	return 0;
}
