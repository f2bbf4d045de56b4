// SPDX-License-Identifier: GPL-2.0
/*
 * Many threads detaining and releasing overlapping and disjoint keys, with
 * every release flavour, against an invariant checker:
 *   - at most one holder per block: a holder claims each block of its key
 *     in a marker table and must find it unclaimed;
 *   - no bio lost or released twice: a bio is Parked before it joins a cell
 *     and only a release may move it on (compare-and-swap from Parked);
 *     every bio completes exactly once.
 * Released inmates are re-driven by the releasing thread (dm-thin re-queues
 * them to its worker), so every bio finishes however the cells interleave.
 * Run for the sharded and the single-lock prison, and under TSan.
 */
#include "prison_test_util.h"

#include "../helpers.h"

#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <thread>

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::test::TestBio;

namespace {

enum BioState : int { Fresh, Parked, Queued, Holding, Done };

constexpr u32 kSharedDevs = 2;
constexpr u64 kSharedBlocks = 48; /* small: lots of overlap */
constexpr u32 kPrivateDevBase = 100;
constexpr u64 kPrivateBlocks = 4096; /* per thread, crossing region boundaries */

class Checker;

/*
 * Completion moves a bio to Done from Holding (its holder finished) or
 * Parked (error() completed it while it waited); from anywhere else it is
 * a second completion or one of a bio nobody owned.
 */
struct StressBio : TestBio {
	StressBio(unsigned i, Checker *c) : TestBio(i), checker(c) { b.bi_end_io = &StressBio::end_io; }
	static void end_io(bio *b);
	CellKey key{};
	std::atomic<int> state{Fresh};
	Checker *checker;
};

StressBio *stress_of(bio *b) { return static_cast<StressBio *>(TestBio::of(b)); }
Cell &slot_of(bio *b) { return stress_of(b)->slot[0]; }

class Checker {
public:
	Checker(unsigned threads) : m_private(size_t(threads) * kPrivateBlocks) {}

	/*
	 * The holder claims every block of the cell's key (which, after a
	 * promotion, is the key of the cell it inherited, not its own).
	 */
	void claim(const CellKey &k, const StressBio &s)
	{
		for (u64 b = k.begin; b < k.end; b++) {
			unsigned prev = marker(k, b).exchange(s.id + 1);
			if (prev != 0)
				bad("two holders of one block");
		}
	}
	void unclaim(const CellKey &k, const StressBio &s)
	{
		for (u64 b = k.begin; b < k.end; b++) {
			unsigned prev = marker(k, b).exchange(0);
			if (prev != s.id + 1)
				bad("a block's claim changed under its holder");
		}
	}
	void bad(const char *why)
	{
		if (m_violations.fetch_add(1) < 5)
			fprintf(stderr, "violation: %s\n", why);
	}
	int violations() const { return m_violations.load(); }
	/* How much contention the run really had: a stress test that never collides proves little. */
	std::atomic<unsigned> joins{0}, promotions{0};

private:
	std::atomic<unsigned> &marker(const CellKey &k, u64 block)
	{
		if (k.dev >= kPrivateDevBase)
			return m_private[size_t(k.dev - kPrivateDevBase) * kPrivateBlocks + block];
		return m_shared[unsigned(k.space)][k.dev][block];
	}
	std::atomic<unsigned> m_shared[2][kSharedDevs][kSharedBlocks] = {};
	std::vector<std::atomic<unsigned>> m_private;
	std::atomic<int> m_violations{0};
};

void StressBio::end_io(bio *b)
{
	StressBio *s = stress_of(b);
	int st = s->state.load();
	if ((st != Holding && st != Parked) || !s->state.compare_exchange_strong(st, Done))
		s->checker->bad("completion of a bio that was neither holding nor waiting");
	TestBio::end_io(b);
}

struct Worker {
	BioPrison &prison;
	Checker &check;
	unsigned thread;
	std::mt19937 rng;
	std::deque<StressBio *> queue; /* bios this thread must (re)drive */

	void redrive(dmxx_bio_list &l)
	{
		while (bio *b = bio_list_pop(l)) {
			int expect = Parked;
			if (!stress_of(b)->state.compare_exchange_strong(expect, Queued))
				check.bad("released a bio that was not waiting");
			queue.push_back(stress_of(b));
		}
	}

	void complete(StressBio *s, u8 status)
	{
		if (s->state.load() != Holding)
			check.bad("completed a bio that did not hold its cell");
		bio_complete(&s->b, status);
	}

	/* @s holds @cell: do the "work", then let go in one of the prison's ways. */
	void run_holder(StressBio *s, Cell *cell)
	{
		for (;;) {
			CellKey k = cell->key();
			check.claim(k, *s);
			if (rng() % 8 == 0)
				std::this_thread::yield();
			check.unclaim(k, *s);
			dmxx_bio_list out = {};
			switch (rng() % 5) {
			case 0:
				prison.release(*cell, out);
				if (bio_list_pop(out) != &s->b)
					check.bad("release did not give the holder first");
				redrive(out);
				complete(s, DMXX_BLK_STS_OK);
				return;
			case 1:
				prison.release_no_holder(*cell, out);
				redrive(out);
				complete(s, DMXX_BLK_STS_OK);
				return;
			case 2: {
				dmxx_bio_list taken = {};
				prison.visit_release(
					*cell,
					[&](bio *holder, dmxx_bio_list &inmates) {
						if (holder != &s->b)
							check.bad("visit saw another holder");
						if (bio *b = bio_list_pop(inmates))
							bio_list_add(taken, b);
					},
					out);
				redrive(taken);
				redrive(out);
				complete(s, DMXX_BLK_STS_OK);
				return;
			}
			case 3:
				/* Every bio of the cell completes here, with an error. */
				prison.error(*cell, DMXX_BLK_STS_IOERR);
				return;
			default: {
				Cell *next = prison.promote_or_release(*cell, slot_of);
				complete(s, DMXX_BLK_STS_OK);
				if (!next)
					return;
				check.promotions.fetch_add(1, std::memory_order_relaxed);
				StressBio *n = stress_of(next->holder());
				int expect = Parked;
				if (!n->state.compare_exchange_strong(expect, Holding))
					check.bad("promoted a bio that was not waiting");
				s = n;
				cell = next;
				continue; /* the promoted bio runs as holder right here */
			}
			}
		}
	}

	void drive(StressBio *s)
	{
		s->state.store(Parked); /* before detain: a release may move it on at once */
		Cell *cell;
		auto r = prison.detain(s->key, &s->b, s->slot[0], cell);
		if (r.is_error()) {
			check.bad("detain failed");
			return;
		}
		if (r.value()) {
			check.joins.fetch_add(1, std::memory_order_relaxed);
			return; /* waits in the cell; whoever releases it re-drives it */
		}
		int expect = Parked;
		if (!s->state.compare_exchange_strong(expect, Holding))
			check.bad("new holder was not ours");
		run_holder(s, cell);
	}

	CellKey random_key()
	{
		if (rng() % 4 == 0) {
			/* Disjoint from every other thread: a private device. */
			u64 b = rng() % (kPrivateBlocks - 8);
			u64 e = cell_range_piece_end(b, b + 1 + rng() % 8);
			return range_key(CellSpace::Data, kPrivateDevBase + thread, b, e);
		}
		CellSpace space = rng() % 2 ? CellSpace::Data : CellSpace::Virtual;
		u32 dev = u32(rng() % kSharedDevs);
		u64 b = rng() % kSharedBlocks;
		u64 len = rng() % 6 == 0 ? 1 + rng() % 6 : 1;
		u64 e = b + len < kSharedBlocks ? b + len : kSharedBlocks;
		return range_key(space, dev, b, e);
	}

	void run(std::vector<std::unique_ptr<StressBio>> &mine)
	{
		for (auto &s : mine) {
			s->key = random_key();
			drive(s.get());
			while (!queue.empty() && rng() % 2) {
				StressBio *q = queue.front();
				queue.pop_front();
				drive(q);
			}
		}
		while (!queue.empty()) {
			StressBio *q = queue.front();
			queue.pop_front();
			drive(q);
		}
	}
};

class PrisonStress : public dmxx::test::DmxxTest, public ::testing::WithParamInterface<unsigned> {};

TEST_P(PrisonStress, ManyThreadsOneHolderPerKeyNoBioLostOrReleasedTwice)
{
#ifdef __SANITIZE_THREAD__
	constexpr unsigned kPerThread = 6000;
#else
	constexpr unsigned kPerThread = 50000;
#endif
	constexpr unsigned kThreads = 8;
	BioPrison prison;
	ASSERT_TRUE(prison.init(GetParam()).is_ok());
	Checker check(kThreads);

	std::vector<std::vector<std::unique_ptr<StressBio>>> bios(kThreads);
	for (unsigned t = 0; t < kThreads; t++)
		for (unsigned i = 0; i < kPerThread; i++)
			bios[t].push_back(std::make_unique<StressBio>(t * kPerThread + i, &check));

	std::vector<std::thread> threads;
	for (unsigned t = 0; t < kThreads; t++)
		threads.emplace_back([&, t] {
			Worker w{prison, check, t, std::mt19937(t * 7919 + 1), {}};
			w.run(bios[t]);
		});
	for (auto &th : threads)
		th.join();

	EXPECT_EQ(check.violations(), 0);
	EXPECT_GT(check.joins.load(), kPerThread / 20) << "too little contention to mean anything";
	EXPECT_GT(check.promotions.load(), 0u);
	RecordProperty("joins", int(check.joins.load()));
	RecordProperty("promotions", int(check.promotions.load()));
	EXPECT_EQ(prison.cells_in_use(), 0u);
	EXPECT_TRUE(prison.check());
	unsigned not_once = 0, not_done = 0;
	for (auto &v : bios)
		for (auto &s : v) {
			not_once += s->completions.load() != 1;
			not_done += s->state.load() != Done;
		}
	EXPECT_EQ(not_once, 0u) << "bios completed zero or several times";
	EXPECT_EQ(not_done, 0u);
}

INSTANTIATE_TEST_SUITE_P(Shards, PrisonStress, ::testing::Values(1u, 64u),
			 [](const ::testing::TestParamInfo<unsigned> &info) {
				 return std::string(info.param == 1 ? "SingleLock" : "Sharded");
			 });

/*
 * The checker itself must be able to fail: two prisons for one key space
 * (a prison that lost its shared lock) hand the same block to two holders,
 * and the marker table reports it.
 */
TEST(PrisonStressChecker, CatchesTwoHoldersOfOneBlock)
{
	BioPrison a, b;
	ASSERT_TRUE(a.init(1).is_ok());
	ASSERT_TRUE(b.init(1).is_ok());
	Checker check(1);
	StressBio s1(1, &check), s2(2, &check);
	s1.key = s2.key = data_block_key(0, 3);
	Cell *c1, *c2;
	ASSERT_FALSE(a.detain(s1.key, &s1.b, s1.slot[0], c1).value());
	ASSERT_FALSE(b.detain(s2.key, &s2.b, s2.slot[0], c2).value());
	check.claim(s1.key, s1);
	check.claim(s2.key, s2);
	EXPECT_GT(check.violations(), 0);
	dmxx_bio_list out = {};
	a.release(*c1, out);
	b.release(*c2, out);
}

} // namespace
