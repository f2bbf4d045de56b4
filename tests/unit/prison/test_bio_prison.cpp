// SPDX-License-Identifier: GPL-2.0
/*
 * The bio prison's semantics, single-threaded, for the sharded prison and
 * for the single-lock configuration (the same code with one shard).
 */
#include "prison_test_util.h"

#include "../helpers.h"

#include <map>
#include <memory>
#include <random>

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::test::take_all;
using dmxx::test::TestBio;

namespace {

class PrisonTest : public dmxx::test::DmxxTest, public ::testing::WithParamInterface<unsigned> {
protected:
	void SetUp() override
	{
		DmxxTest::SetUp();
		ASSERT_TRUE(prison.init(GetParam()).is_ok());
	}
	void TearDown() override
	{
		EXPECT_EQ(prison.cells_in_use(), 0u);
		EXPECT_TRUE(prison.check());
		m_owner.reset(); /* before the base class counts live allocations */
		DmxxTest::TearDown();
	}

	/* detain() that must succeed; returns "already held". */
	bool detain(const CellKey &k, TestBio *t, Cell &slot, Cell *&cell)
	{
		auto r = prison.detain(k, t ? &t->b : nullptr, slot, cell);
		EXPECT_TRUE(r.is_ok()) << r.error_code();
		return r.is_ok() && r.value();
	}

	std::unique_ptr<BioPrison> m_owner = std::make_unique<BioPrison>();
	BioPrison &prison = *m_owner;
};

TEST_P(PrisonTest, FirstDetainHoldsLaterOnesWaitInArrivalOrder)
{
	TestBio t1(1), t2(2), t3(3);
	CellKey k = data_block_key(0, 42);
	Cell *c1, *c2, *c3;
	EXPECT_FALSE(detain(k, &t1, t1.slot[0], c1));
	EXPECT_EQ(c1, &t1.slot[0]);
	EXPECT_EQ(c1->holder(), &t1.b);
	EXPECT_TRUE(c1->linked());
	EXPECT_TRUE(detain(k, &t2, t2.slot[0], c2));
	EXPECT_TRUE(detain(k, &t3, t3.slot[0], c3));
	EXPECT_EQ(c2, c1);
	EXPECT_EQ(c3, c1);
	EXPECT_FALSE(t2.slot[0].linked()) << "the memory of a bio that joined stays unused";
	EXPECT_EQ(prison.cells_in_use(), 1u);

	dmxx_bio_list out = {};
	prison.release(*c1, out);
	EXPECT_EQ(take_all(out), (std::vector<bio *>{&t1.b, &t2.b, &t3.b}));
	EXPECT_FALSE(t1.slot[0].linked());
	EXPECT_EQ(t1.completions.load() + t2.completions.load() + t3.completions.load(), 0);
}

TEST_P(PrisonTest, ConflictNeedsSameSpaceSameDeviceAndOverlap)
{
	TestBio a(1), b(2), c(3), d(4), e(5), f(6), g(7);
	Cell *ca, *cb, *cc, *cd, *ce, *cf, *cg;
	EXPECT_FALSE(detain(data_block_key(1, 5), &a, a.slot[0], ca));
	EXPECT_FALSE(detain(virtual_block_key(1, 5), &b, b.slot[0], cb)) << "other space";
	EXPECT_FALSE(detain(data_block_key(2, 5), &c, c.slot[0], cc)) << "other device";
	EXPECT_TRUE(detain(range_key(CellSpace::Data, 1, 0, 8), &d, d.slot[0], cd)) << "range covers 5";
	EXPECT_EQ(cd, ca);
	EXPECT_FALSE(detain(range_key(CellSpace::Data, 1, 6, 10), &e, e.slot[0], ce)) << "[6,10) misses 5";
	EXPECT_TRUE(detain(data_block_key(1, 9), &f, f.slot[0], cf));
	EXPECT_EQ(cf, ce);
	EXPECT_FALSE(detain(data_block_key(1, 10), &g, g.slot[0], cg)) << "end is exclusive";
	EXPECT_EQ(prison.cells_in_use(), 5u);

	dmxx_bio_list out = {};
	for (Cell *cell : {ca, cb, cc, ce, cg})
		prison.release(*cell, out);
	EXPECT_EQ(take_all(out).size(), 7u);
}

TEST_P(PrisonTest, KeysMustBeNonEmptyAndInsideOneRegion)
{
	TestBio t(1);
	Cell *cell = nullptr;
	auto einval = [&](CellKey k) {
		auto r = prison.detain(k, &t.b, t.slot[0], cell);
		return r.is_error() && r.error_code() == -EINVAL;
	};
	EXPECT_TRUE(einval(range_key(CellSpace::Virtual, 0, 5, 5)));
	EXPECT_TRUE(einval(range_key(CellSpace::Virtual, 0, 6, 5)));
	EXPECT_TRUE(einval(range_key(CellSpace::Virtual, 0, 1020, 1030)));
	EXPECT_TRUE(einval(range_key(CellSpace::Virtual, 0, 0, kCellRegionBlocks + 1)));
	EXPECT_FALSE(t.slot[0].linked());
	EXPECT_EQ(prison.cells_in_use(), 0u);

	/* A whole region is one key. */
	EXPECT_FALSE(detain(range_key(CellSpace::Virtual, 0, 1024, 2048), &t, t.slot[0], cell));
	dmxx_bio_list out = {};
	prison.release(*cell, out);
	EXPECT_EQ(take_all(out), std::vector<bio *>{&t.b});

	/* Splitting a long range into region-sized pieces. */
	EXPECT_EQ(cell_range_piece_end(1000, 5000), 1024u);
	EXPECT_EQ(cell_range_piece_end(1024, 5000), 2048u);
	EXPECT_EQ(cell_range_piece_end(4096, 5000), 5000u);
	EXPECT_EQ(cell_range_piece_end(3, 4), 4u);
	EXPECT_EQ(cell_range_piece_end(~0ull - 5, ~0ull), ~0ull);
	u64 pieces = 0;
	for (u64 b = 1000; b < 5000; b = cell_range_piece_end(b, 5000)) {
		EXPECT_TRUE(range_key(CellSpace::Virtual, 0, b, cell_range_piece_end(b, 5000)).valid());
		pieces++;
	}
	EXPECT_EQ(pieces, 5u);
}

TEST_P(PrisonTest, ReleaseNoHolderLeavesTheHolderToTheCaller)
{
	TestBio t1(1), t2(2), t3(3);
	CellKey k = virtual_block_key(3, 7);
	Cell *c, *j;
	EXPECT_FALSE(detain(k, &t1, t1.slot[0], c));
	EXPECT_TRUE(detain(k, &t2, t2.slot[0], j));
	EXPECT_TRUE(detain(k, &t3, t3.slot[0], j));
	dmxx_bio_list out = {};
	prison.release_no_holder(*c, out);
	EXPECT_EQ(take_all(out), (std::vector<bio *>{&t2.b, &t3.b}));
	EXPECT_FALSE(t1.slot[0].linked());

	/* The key is free again, and the same memory can lock it anew. */
	EXPECT_FALSE(detain(k, &t1, t1.slot[0], c));
	prison.release_no_holder(*c, out);
	EXPECT_EQ(take_all(out).size(), 0u);
}

TEST_P(PrisonTest, ErrorCompletesHolderAndInmatesOnceWithTheStatus)
{
	TestBio t1(1), t2(2), t3(3);
	CellKey k = data_block_key(0, 1);
	Cell *c, *j;
	EXPECT_FALSE(detain(k, &t1, t1.slot[1], c));
	EXPECT_TRUE(detain(k, &t2, t2.slot[1], j));
	EXPECT_TRUE(detain(k, &t3, t3.slot[1], j));
	prison.error(*c, DMXX_BLK_STS_IOERR);
	for (TestBio *t : {&t1, &t2, &t3}) {
		EXPECT_EQ(t->completions.load(), 1) << t->id;
		EXPECT_EQ(t->status.load(), DMXX_BLK_STS_IOERR) << t->id;
	}
}

TEST_P(PrisonTest, CellWithoutHolderLocksTheKeyForPreallocatedMemory)
{
	/* The discard worker's case: a data range locked from a mapping it preallocated. */
	struct Mapping {
		Cell cell;
	} m;
	TestBio t(1);
	Cell *c, *j;
	auto r = prison.get_cell(range_key(CellSpace::Data, 0, 100, 116), m.cell, c);
	ASSERT_TRUE(r.is_ok());
	EXPECT_FALSE(r.value());
	EXPECT_EQ(c, &m.cell);
	EXPECT_EQ(c->holder(), nullptr);
	EXPECT_TRUE(detain(data_block_key(0, 115), &t, t.slot[1], j));
	EXPECT_EQ(j, &m.cell);
	/* get_cell on a held key finds the cell and adds nothing. */
	Mapping other;
	Cell *found;
	auto again = prison.get_cell(data_block_key(0, 100), other.cell, found);
	ASSERT_TRUE(again.is_ok());
	EXPECT_TRUE(again.value());
	EXPECT_EQ(found, &m.cell);

	dmxx_bio_list out = {};
	prison.release(*c, out);
	EXPECT_EQ(take_all(out), std::vector<bio *>{&t.b}) << "no holder: only the inmate";
}

TEST_P(PrisonTest, VisitReleaseVisitsUnderTheLockThenReleases)
{
	TestBio t1(1), t2(2), t3(3);
	CellKey k = virtual_block_key(0, 9);
	Cell *c, *j;
	EXPECT_FALSE(detain(k, &t1, t1.slot[0], c));
	EXPECT_TRUE(detain(k, &t2, t2.slot[0], j));
	EXPECT_TRUE(detain(k, &t3, t3.slot[0], j));
	int depth_in_visit = -1;
	bio *seen_holder = nullptr;
	std::vector<bio *> taken;
	dmxx_bio_list rest = {};
	prison.visit_release(
		*c,
		[&](bio *holder, dmxx_bio_list &inmates) {
			depth_in_visit = user::spinlock_depth();
			seen_holder = holder;
			taken.push_back(bio_list_pop(inmates)); /* take one, leave one */
		},
		rest);
	EXPECT_GE(depth_in_visit, 1) << "the visitor runs with the shard lock held";
	EXPECT_EQ(seen_holder, &t1.b);
	EXPECT_EQ(taken, std::vector<bio *>{&t2.b});
	EXPECT_EQ(take_all(rest), std::vector<bio *>{&t3.b});
	EXPECT_FALSE(t1.slot[0].linked());
}

/* promote_or_release's storage_of for dm-thin-like bios: the new holder's own slot. */
Cell &own_slot(bio *b) { return TestBio::of(b)->slot[0]; }

TEST_P(PrisonTest, PromoteHandsTheCellToTheNextBioInItsOwnMemory)
{
	TestBio t1(1), t2(2), t3(3), t4(4);
	CellKey k = data_block_key(5, 77);
	Cell *c, *j;
	EXPECT_FALSE(detain(k, &t1, t1.slot[0], c));
	EXPECT_TRUE(detain(k, &t2, t2.slot[0], j));
	EXPECT_TRUE(detain(k, &t3, t3.slot[0], j));

	Cell *p = prison.promote_or_release(*c, own_slot);
	ASSERT_EQ(p, &t2.slot[0]);
	EXPECT_EQ(p->holder(), &t2.b);
	EXPECT_EQ(p->key().begin, 77u);
	EXPECT_FALSE(t1.slot[0].linked()) << "the old holder may now complete and free its memory";
	EXPECT_TRUE(prison.check());

	/* t1's memory is reusable at once, and the key stays locked by t2. */
	Cell *other;
	EXPECT_FALSE(detain(data_block_key(5, 78), &t1, t1.slot[0], other));
	EXPECT_TRUE(detain(k, &t4, t4.slot[0], j));
	EXPECT_EQ(j, p);

	p = prison.promote_or_release(*p, own_slot);
	ASSERT_EQ(p, &t3.slot[0]);
	p = prison.promote_or_release(*p, own_slot);
	ASSERT_EQ(p, &t4.slot[0]);
	EXPECT_EQ(prison.promote_or_release(*p, own_slot), nullptr) << "no inmate left: released";
	EXPECT_FALSE(t4.slot[0].linked());

	dmxx_bio_list out = {};
	prison.release(*other, out);
	EXPECT_EQ(take_all(out), std::vector<bio *>{&t1.b});
}

TEST_P(PrisonTest, PromoteInPlaceWhenTheMemoryIsNobodysBio)
{
	struct Job {
		Cell cell;
	} job;
	TestBio t1(1), t2(2);
	Cell *c, *j;
	ASSERT_TRUE(prison.get_cell(virtual_block_key(0, 1), job.cell, c).is_ok());
	EXPECT_TRUE(detain(virtual_block_key(0, 1), &t1, t1.slot[0], j));
	EXPECT_TRUE(detain(virtual_block_key(0, 1), &t2, t2.slot[0], j));
	Cell *p = prison.promote_or_release(*c, [&](bio *) -> Cell & { return job.cell; });
	EXPECT_EQ(p, &job.cell);
	EXPECT_EQ(p->holder(), &t1.b);
	dmxx_bio_list out = {};
	prison.release(*p, out);
	EXPECT_EQ(take_all(out), (std::vector<bio *>{&t1.b, &t2.b}));
}

/*
 * The tree under a random mix of detains (joins and new cells, single
 * blocks and ranges), releases and hand-overs, against a plain model; the
 * prison's own check() verifies the AVL shape and shard placement each step.
 */
TEST_P(PrisonTest, RandomOperationsAgreeWithAModel)
{
	constexpr unsigned kBios = 400;
	std::vector<std::unique_ptr<TestBio>> bios;
	for (unsigned i = 0; i < kBios; i++)
		bios.push_back(std::make_unique<TestBio>(i));
	struct Held {
		Cell *cell;
		std::vector<bio *> inmates;
	};
	std::vector<Held> held;
	std::vector<unsigned> idle;
	for (unsigned i = 0; i < kBios; i++)
		idle.push_back(i);
	std::mt19937 rng(12345);
	auto pick = [&](unsigned n) { return unsigned(rng() % n); };

	for (int step = 0; step < 6000; step++) {
		unsigned op = pick(10);
		if (op < 6 && !idle.empty()) {
			unsigned at = pick(unsigned(idle.size()));
			TestBio *t = bios[idle[at]].get();
			idle.erase(idle.begin() + at);
			CellSpace space = pick(2) ? CellSpace::Data : CellSpace::Virtual;
			u32 dev = pick(3);
			u64 begin = pick(3000);
			u64 len = pick(4) == 0 ? 1 + pick(40) : 1;
			u64 end = cell_range_piece_end(begin, begin + len);
			CellKey k = range_key(space, dev, begin, end);
			Held *conflict = nullptr;
			for (Held &h : held)
				if (h.cell->key().conflicts_with(k))
					conflict = &h;
			Cell *c;
			bool was_held = detain(k, t, t->slot[0], c);
			ASSERT_EQ(was_held, conflict != nullptr) << "step " << step;
			if (was_held) {
				bool found = false;
				for (Held &h : held)
					if (h.cell == c) {
						ASSERT_TRUE(h.cell->key().conflicts_with(k));
						h.inmates.push_back(&t->b);
						found = true;
					}
				ASSERT_TRUE(found);
			} else {
				ASSERT_EQ(c, &t->slot[0]);
				held.push_back({c, {}});
			}
		} else if (!held.empty()) {
			unsigned at = pick(unsigned(held.size()));
			Held h = held[at];
			held.erase(held.begin() + at);
			bio *holder = h.cell->holder();
			if (op < 8) {
				dmxx_bio_list out = {};
				prison.release(*h.cell, out);
				std::vector<bio *> expect{holder};
				expect.insert(expect.end(), h.inmates.begin(), h.inmates.end());
				ASSERT_EQ(take_all(out), expect) << "step " << step;
				for (bio *b : expect)
					idle.push_back(TestBio::of(b)->id);
			} else {
				Cell *p = prison.promote_or_release(*h.cell, own_slot);
				idle.push_back(TestBio::of(holder)->id);
				if (h.inmates.empty()) {
					ASSERT_EQ(p, nullptr);
				} else {
					ASSERT_EQ(p, &TestBio::of(h.inmates[0])->slot[0]);
					ASSERT_EQ(p->holder(), h.inmates[0]);
					held.push_back({p, {h.inmates.begin() + 1, h.inmates.end()}});
				}
			}
		}
		ASSERT_EQ(prison.cells_in_use(), held.size());
		if (step % 16 == 0) {
			ASSERT_TRUE(prison.check()) << "step " << step;
		}
	}
	for (Held &h : held) {
		dmxx_bio_list out = {};
		prison.release(*h.cell, out);
		EXPECT_EQ(take_all(out).size(), 1 + h.inmates.size());
	}
}

/*
 * dm-thin releases a discard's cell from the bio's end_io, which may run in
 * interrupt context: releasing must not sleep (the model runs end_io in
 * atomic context and aborts on a sleep).
 */
struct EndIoRelease {
	BioPrison *prison;
	Cell *cell;
	std::vector<bio *> released;
};

TEST_P(PrisonTest, CellsCanBeReleasedFromCompletionContext)
{
	TestBio discard(1, DMXX_REQ_OP_DISCARD), waiter(2);
	Cell *c, *j;
	EXPECT_FALSE(detain(range_key(CellSpace::Virtual, 0, 0, 64), &discard, discard.slot[0], c));
	EXPECT_TRUE(detain(virtual_block_key(0, 17), &waiter, waiter.slot[0], j));
	static EndIoRelease ctx; /* end_io gets only the bio */
	ctx = {&prison, c, {}};
	discard.b.bi_end_io = [](bio *) {
		dmxx_bio_list out = {};
		ctx.prison->release_no_holder(*ctx.cell, out);
		ctx.released = take_all(out);
	};
	bio_complete(&discard.b, DMXX_BLK_STS_OK);
	EXPECT_EQ(ctx.released, std::vector<bio *>{&waiter.b});
	EXPECT_EQ(user::sleep_violations(), 0u);
}

TEST_P(PrisonTest, DestroyingAPrisonWithHeldCellsIsReported)
{
	TestBio t(1);
	{
		BioPrison p;
		ASSERT_TRUE(p.init(GetParam()).is_ok());
		Cell *c;
		ASSERT_TRUE(p.detain(data_block_key(0, 1), &t.b, t.slot[0], c).is_ok());
	}
	EXPECT_TRUE(user::log_contains("still held"));
}

using PrisonDeathTest = PrisonTest;

TEST_P(PrisonDeathTest, ReleasingACellTwiceIsFatal)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	TestBio t(1);
	Cell *c;
	ASSERT_FALSE(detain(data_block_key(0, 1), &t, t.slot[0], c));
	dmxx_bio_list out = {};
	prison.release(*c, out);
	EXPECT_DEATH(prison.release(*c, out), "");
}

TEST(PrisonInit, ShardCountIsRoundedAndBounded)
{
	BioPrison a, b, c, d;
	EXPECT_EQ(a.init(0).error_code(), -EINVAL);
	EXPECT_EQ(b.init(BioPrison::kMaxShards + 1).error_code(), -EINVAL);
	ASSERT_TRUE(c.init(3).is_ok());
	EXPECT_EQ(c.shards(), 4u);
	EXPECT_EQ(c.init(4).error_code(), -EBUSY);
	ASSERT_TRUE(d.init().is_ok());
	EXPECT_EQ(d.shards(), BioPrison::kDefaultShards);
}

/* The prison has no cell allocator at all: cell memory always comes from the caller. */
template <typename P>
concept HasCellAllocator = requires(P p) { p.alloc_cell(); } || requires(P p) { p.free_cell(nullptr); };
static_assert(!HasCellAllocator<BioPrison>, "cells are never allocated by the prison");

std::string shard_name(const ::testing::TestParamInfo<unsigned> &info)
{
	return info.param == 1 ? "SingleLock" : "Sharded";
}
INSTANTIATE_TEST_SUITE_P(Shards, PrisonTest, ::testing::Values(1u, 64u), shard_name);
INSTANTIATE_TEST_SUITE_P(Shards, PrisonDeathTest, ::testing::Values(64u), shard_name);

} // namespace
