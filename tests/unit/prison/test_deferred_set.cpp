// SPDX-License-Identifier: GPL-2.0
/*
 * The deferred set: work runs only after every I/O counted before it was
 * queued has finished, and once all I/O has finished no work is left
 * behind. Checked by hand, against a random model, and across threads.
 */
#include "prison/deferred_set.h"

#include "../helpers.h"

#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <thread>

using namespace dmxx;
using namespace dmxx::thin;

namespace {

struct Job : DeferredWork {
	int id = 0;
};

std::vector<int> ids(DeferredWorkList &l)
{
	std::vector<int> v;
	while (DeferredWork *w = l.pop())
		v.push_back(static_cast<Job *>(w)->id);
	return v;
}

TEST(DeferredSet, WorkWithNothingInFlightRunsAtOnce)
{
	DeferredSet ds;
	Job j;
	EXPECT_FALSE(ds.add_work(&j));
	DeferredWorkList ready;
	auto *e = ds.inc();
	ds.dec(e, ready);
	EXPECT_TRUE(ready.empty()) << "the unqueued job must not come back";
}

TEST(DeferredSet, WorkWaitsForEarlierIoOnly)
{
	DeferredSet ds;
	Job w1, w2;
	w1.id = 1;
	w2.id = 2;
	DeferredWorkList ready;

	auto *a = ds.inc();
	EXPECT_TRUE(ds.add_work(&w1)); /* waits for a */
	auto *b = ds.inc();            /* later: w1 must not wait for it */
	EXPECT_TRUE(ds.add_work(&w2)); /* waits for a and b */
	EXPECT_EQ(ds.in_flight(), 2u);

	ds.dec(a, ready);
	EXPECT_EQ(ids(ready), std::vector<int>{1});
	ds.dec(b, ready);
	EXPECT_EQ(ids(ready), std::vector<int>{2});
	EXPECT_EQ(ds.in_flight(), 0u);
}

TEST(DeferredSet, LaterIoFinishingFirstReleasesNothingEarly)
{
	DeferredSet ds;
	Job w1, w2;
	w1.id = 1;
	w2.id = 2;
	DeferredWorkList ready;
	auto *a = ds.inc();
	EXPECT_TRUE(ds.add_work(&w1));
	auto *b = ds.inc();
	EXPECT_TRUE(ds.add_work(&w2));
	ds.dec(b, ready);
	EXPECT_TRUE(ready.empty()) << "both jobs still wait for a";
	ds.dec(a, ready);
	EXPECT_EQ(ids(ready), (std::vector<int>{1, 2}));
}

/*
 * A random sequence of inc, dec and add_work, with more live generations
 * than the ring holds. Safety: a job comes back only when every I/O that
 * was counted before it was added has finished. Liveness: with no I/O in
 * flight, no job is left waiting.
 */
TEST(DeferredSet, RandomSequencesKeepOrderAndLeaveNothingBehind)
{
	for (unsigned seed = 1; seed <= 20; seed++) {
		std::mt19937 rng(seed);
		DeferredSet ds;
		struct Io {
			DeferredSet::Entry *e;
			int id;
		};
		std::vector<Io> live;
		std::set<int> live_ids;
		std::vector<std::unique_ptr<Job>> jobs;
		std::vector<std::set<int>> waits_for; /* per job id */
		std::set<int> pending_jobs;
		int next_io = 0;
		DeferredWorkList ready;

		auto collect = [&] {
			for (int j : ids(ready)) {
				ASSERT_TRUE(pending_jobs.count(j)) << "job " << j << " came back twice";
				pending_jobs.erase(j);
				for (int io : waits_for[j])
					ASSERT_FALSE(live_ids.count(io))
						<< "seed " << seed << ": job " << j << " ran before I/O " << io;
			}
		};

		for (int step = 0; step < 3000; step++) {
			unsigned op = rng() % 10;
			if (op < 4 || live.empty()) {
				live.push_back({ds.inc(), next_io});
				live_ids.insert(next_io++);
			} else if (op < 8) {
				size_t at = rng() % live.size();
				Io io = live[at];
				live.erase(live.begin() + long(at));
				live_ids.erase(io.id);
				ds.dec(io.e, ready);
				collect();
			} else {
				auto j = std::make_unique<Job>();
				j->id = int(jobs.size());
				waits_for.push_back(live_ids);
				if (ds.add_work(j.get())) {
					pending_jobs.insert(j->id);
				} else {
					ASSERT_TRUE(live_ids.empty()) << "run-now only when nothing is in flight";
				}
				jobs.push_back(std::move(j));
			}
			if (live.empty()) {
				ASSERT_TRUE(pending_jobs.empty()) << "seed " << seed << " step " << step;
			}
		}
		while (!live.empty()) {
			Io io = live.back();
			live.pop_back();
			live_ids.erase(io.id);
			ds.dec(io.e, ready);
			collect();
		}
		EXPECT_TRUE(pending_jobs.empty());
		EXPECT_EQ(ds.in_flight(), 0u);
	}
}

/*
 * Several threads count I/O (a few in flight each) while one queues work.
 * An I/O is published in its thread's slot after inc() returns and marked
 * finishing before dec(); a job snapshots the published I/O before
 * add_work(). Whoever gets the job back (a dec() on any thread, or
 * add_work() itself) checks that every I/O in the snapshot was finishing.
 */
TEST(DeferredSet, ConcurrentIoNeverLetsWorkOvertakeIt)
{
#ifdef __SANITIZE_THREAD__
	constexpr int kIosPerThread = 4000;
#else
	constexpr int kIosPerThread = 40000;
#endif
	constexpr int kThreads = 4;
	constexpr int kWindow = 4;
	constexpr int kJobs = 3000;
	DeferredSet ds;
	std::vector<std::atomic<bool>> finishing(kThreads * kIosPerThread);
	std::vector<std::atomic<int>> slots(kThreads * kWindow); /* io id + 1, 0 = empty */
	std::vector<Job> jobs(kJobs);
	std::vector<std::vector<int>> snap(kJobs);
	std::atomic<int> returned{0}, violations{0};

	auto check_job = [&](int j) {
		for (int io : snap[size_t(j)])
			if (!finishing[size_t(io)].load())
				violations.fetch_add(1);
		returned.fetch_add(1);
	};
	auto drain = [&](DeferredWorkList &l) {
		while (DeferredWork *w = l.pop())
			check_job(static_cast<Job *>(w)->id);
	};

	std::vector<std::thread> threads;
	for (int t = 0; t < kThreads; t++)
		threads.emplace_back([&, t] {
			std::mt19937 rng(unsigned(t) + 1);
			DeferredWorkList ready;
			DeferredSet::Entry *entry[kWindow] = {};
			int io_of[kWindow] = {};
			int started = 0, live = 0;
			while (started < kIosPerThread || live) {
				int k = int(rng() % kWindow);
				if (!entry[k] && started < kIosPerThread) {
					int io = t * kIosPerThread + started++;
					entry[k] = ds.inc();
					io_of[k] = io;
					slots[size_t(t * kWindow + k)].store(io + 1);
					live++;
				} else if (entry[k]) {
					slots[size_t(t * kWindow + k)].store(0);
					finishing[size_t(io_of[k])].store(true);
					ds.dec(entry[k], ready);
					entry[k] = nullptr;
					live--;
					drain(ready);
				}
			}
		});
	for (int j = 0; j < kJobs; j++) {
		jobs[size_t(j)].id = j;
		for (auto &slot : slots)
			if (int v = slot.load())
				snap[size_t(j)].push_back(v - 1);
		if (!ds.add_work(&jobs[size_t(j)]))
			check_job(j);
		if (j % 16 == 0)
			std::this_thread::yield();
	}
	for (auto &th : threads)
		th.join();
	EXPECT_EQ(violations.load(), 0);
	EXPECT_EQ(returned.load(), kJobs) << "every job comes back once all I/O is done";
	EXPECT_EQ(ds.in_flight(), 0u);
}

} // namespace
