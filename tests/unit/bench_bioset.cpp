// SPDX-License-Identifier: GPL-2.0
/*
 * Micro-benchmark (not a test): alloc+free pairs per second for a BioSet
 * from its reserve and from its allocator, against plain malloc/free, at 1,
 * 2 and 4 threads (all threads on one set: on a 2-CPU host the 4-thread
 * column shows what preemption inside the pool costs); and the cost of a
 * forced rescue (an allocation inside submission with a bio pending and the
 * reserve empty).
 *   build/unit-plain/tests/unit/bench_bioset
 */
#include <bioset.h>
#include <dmxx/user/block.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

using namespace dmxx;
using clk = std::chrono::steady_clock;

namespace {

void noop(bio *, void *) {}

template <typename F> double per_second(unsigned threads, unsigned iters, F body)
{
	std::vector<std::thread> ts;
	std::atomic<bool> go{false};
	for (unsigned t = 0; t < threads; t++)
		ts.emplace_back([&] {
			while (!go.load()) {
			}
			body(iters);
		});
	auto t0 = clk::now();
	go = true;
	for (auto &t : ts)
		t.join();
	double s = std::chrono::duration<double>(clk::now() - t0).count();
	return double(threads) * iters / s;
}

/* Holding @hold bios per step keeps the reserve (pool @hold) as the only source. */
double bench_set(BioSet &set, unsigned threads, unsigned iters)
{
	return per_second(threads, iters, [&](unsigned n) {
		for (unsigned i = 0; i < n; i++) {
			bio *b = set.alloc(nullptr, DMXX_REQ_OP_READ, 0, AllocMode::NoIO, noop, nullptr);
			BioSet::free(b);
		}
	});
}

double bench_malloc(unsigned threads, unsigned iters, size_t size)
{
	return per_second(threads, iters, [&](unsigned n) {
		for (unsigned i = 0; i < n; i++) {
			void *p = malloc(size);
			__asm__ volatile("" : : "r"(p) : "memory");
			free(p);
		}
	});
}

/* A device whose submit allocates twice from a 1-bio reserve: every bio forces one rescue. */
struct Forcer final : public block_device {
	BioSet *set;
	block_device *lower;
	Forcer(BioSet *s, block_device *l) : block_device("bench-forcer", 252, 0, 512), set(s), lower(l) {}
	static void done(bio *c, void *) { BioSet::free(c); }
	void submit(bio *b) override
	{
		for (int i = 0; i < 2; i++) {
			bio *c = set->clone(b, lower, AllocMode::NoIO, done, nullptr);
			dmxx_submit_bio(c);
		}
		bio_complete(b, DMXX_BLK_STS_OK);
	}
};

} // namespace

int main()
{
	const unsigned iters = 2000000;
	BioSet reserve_set, alloc_set;
	if (reserve_set.init("bench-reserve", 64, 64, 0).is_error() ||
	    alloc_set.init("bench-alloc", 1, 64, 0).is_error()) {
		fprintf(stderr, "init failed\n");
		return 1;
	}
	reserve_set.set_reserve_only(true); /* every alloc from the reserve */
	size_t elem = 64 + BioSet::header_bytes + sizeof(bio);

	printf("| path | 1 thread (Mops/s) | 2 threads (Mops/s) | 4 threads (Mops/s) |\n|---|---|---|---|\n");
	printf("| BioSet, reserve path | %.2f | %.2f | %.2f |\n", bench_set(reserve_set, 1, iters) / 1e6,
	       bench_set(reserve_set, 2, iters) / 1e6, bench_set(reserve_set, 4, iters / 2) / 1e6);
	/* Allocator path: the reserve is full, frees beyond it go back to malloc. */
	printf("| BioSet, allocator path | %.2f | %.2f | %.2f |\n", bench_set(alloc_set, 1, iters) / 1e6,
	       bench_set(alloc_set, 2, iters) / 1e6, bench_set(alloc_set, 4, iters / 2) / 1e6);
	printf("| malloc/free (%zu B) | %.2f | %.2f | %.2f |\n", elem, bench_malloc(1, iters, elem) / 1e6,
	       bench_malloc(2, iters, elem) / 1e6, bench_malloc(4, iters / 2, elem) / 1e6);

	/* Forced rescue: each top bio makes one punt to the rescuer and one wait for its free. */
	auto disk = user::MemDisk::create("bench-mem", 64);
	BioSet tiny;
	if (tiny.init("bench-tiny", 1, 0, 0).is_error())
		return 1;
	tiny.set_reserve_only(true);
	Forcer f(&tiny, disk.get());
	const unsigned n = 20000;
	std::vector<u8> buf(512);
	auto t0 = clk::now();
	for (unsigned i = 0; i < n; i++)
		user::sync_io(&f, DMXX_REQ_OP_WRITE, 0, buf.data(), 512);
	double rescued = std::chrono::duration<double, std::micro>(clk::now() - t0).count() / n;
	tiny.set_reserve_only(false);
	BioSet roomy;
	if (roomy.init("bench-roomy", 4, 0, 0).is_error())
		return 1;
	roomy.set_reserve_only(true);
	Forcer g(&roomy, disk.get());
	t0 = clk::now();
	for (unsigned i = 0; i < n; i++)
		user::sync_io(&g, DMXX_REQ_OP_WRITE, 0, buf.data(), 512);
	double plain = std::chrono::duration<double, std::micro>(clk::now() - t0).count() / n;
	printf("\n| submission (2 clones per bio) | us per bio |\n|---|---|\n");
	printf("| reserve of 4, no rescue | %.2f |\n| reserve of 1, forced rescue | %.2f |\n", plain, rescued);
	printf("| cost of one forced rescue | %.2f |\n", rescued - plain);
	printf("\n(rescues: %llu of %u bios; roomy rescues: %llu)\n", (unsigned long long)tiny.stats().rescues, n,
	       (unsigned long long)roomy.stats().rescues);
	return 0;
}
