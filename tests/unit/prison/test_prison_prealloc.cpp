// SPDX-License-Identifier: GPL-2.0
/*
 * The 2013 dm-thin deadlock (seed 003): a path that holds one cell from a
 * mempool and then needs a second cell from the same mempool waits forever
 * once the reserve is gone, because the only element that could come back
 * is the one it holds. Each scenario runs the old pattern (cells from a
 * pool, as Linux 6.1's bio_detain() still takes them) and ours (cell memory
 * in per-bio data, or in a structure the worker preallocated before it
 * touched the prison) through the same watchdog, with a pool of ONE
 * element in reserve-only mode. The old pattern stalls by construction: the
 * single element is held by the waiting thread itself and nothing else can
 * free one. Ours never takes a cell from a pool, so it completes.
 */
#include "harness/watchdog.h"
#include "prison_test_util.h"

#include "../helpers.h"

#include <mempool.h>

#include <atomic>
#include <memory>
#include <thread>

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::test::TestBio;
using dmxx::test::Watchdog;
using namespace std::chrono_literals;

namespace {

/* A one-element pool that cannot fall back on the allocator. */
void init_pool_of_one(Mempool &pool, usize element)
{
	ASSERT_TRUE(pool.init(element, 1).is_ok());
	pool.set_reserve_only(true);
}

/* Let a stalled allocation through so the thread can finish and be joined. */
void unstall(Mempool &pool)
{
	pool.set_reserve_only(false);
	pool.kick();
}

bool held(Result<bool> r)
{
	if (r.is_error())
		dmxx_fatal("detain failed in the prealloc test");
	return r.value();
}

/*
 * The map path of a write to a mapped block, as Linux 6.1's thin_bio_map
 * runs it: lock the virtual block, look up, lock the data block, then
 * release both and remap. The cells come from @cells.
 */
void map_with_pooled_cells(BioPrison &prison, Mempool &cells, bio *b, u64 vblock, u64 dblock)
{
	Cell *virt_mem = new (in_place, cells.alloc(AllocMode::NoIO)) Cell();
	Cell *virt;
	if (held(prison.detain(virtual_block_key(0, vblock), b, *virt_mem, virt)))
		dmxx_fatal("unexpected contention");
	/* The second cell, with the first one held: this is where 6.1 can wait forever. */
	Cell *data_mem = new (in_place, cells.alloc(AllocMode::NoIO)) Cell();
	Cell *data;
	if (held(prison.detain(data_block_key(0, dblock), b, *data_mem, data)))
		dmxx_fatal("unexpected contention");
	dmxx_bio_list out = {};
	prison.release_no_holder(*data, out);
	prison.release_no_holder(*virt, out);
	cells.free(data_mem);
	cells.free(virt_mem);
}

/* Ours: the same path with the bio's own cell slots (per-bio data). */
void map_with_per_bio_cells(BioPrison &prison, TestBio &t, u64 vblock, u64 dblock)
{
	Cell *virt, *data;
	if (held(prison.detain(virtual_block_key(0, vblock), &t.b, t.slot[0], virt)))
		dmxx_fatal("unexpected contention");
	if (held(prison.detain(data_block_key(0, dblock), &t.b, t.slot[1], data)))
		dmxx_fatal("unexpected contention");
	dmxx_bio_list out = {};
	prison.release_no_holder(*data, out);
	prison.release_no_holder(*virt, out);
}

class PrisonPrealloc : public dmxx::test::DmxxTest {
protected:
	void SetUp() override
	{
		DmxxTest::SetUp();
		ASSERT_TRUE(prison.init().is_ok());
	}
	void TearDown() override
	{
		m_owner.reset(); /* before the base class counts live allocations */
		DmxxTest::TearDown();
	}
	std::unique_ptr<BioPrison> m_owner = std::make_unique<BioPrison>();
	BioPrison &prison = *m_owner;
};

TEST_F(PrisonPrealloc, MapPathWithPooledCellsStallsOnAPoolOfOne)
{
	Mempool cells;
	init_pool_of_one(cells, sizeof(Cell));
	TestBio t(1);
	std::atomic<bool> done{false};
	std::thread mapper([&] {
		user::set_thread_name("map (pooled cells)");
		map_with_pooled_cells(prison, cells, &t.b, 10, 500);
		done.store(true);
		Watchdog::poke();
	});
	Watchdog w(300ms);
	w.name(cells.wait_channel(), "cell mempool");
	auto outcome = w.wait_for([&] { return done.load(); }, 5000ms);
	EXPECT_EQ(outcome, Watchdog::Outcome::Stalled) << "the negative control must be caught";
	EXPECT_EQ(cells.reserve_level(), 0u) << "its only cell is the one the mapper holds";
	EXPECT_EQ(cells.waiting(), 1u) << "and the mapper waits for a second one";
	EXPECT_EQ(prison.cells_in_use(), 1u);
	unstall(cells);
	mapper.join();
	EXPECT_TRUE(done.load());
	EXPECT_EQ(prison.cells_in_use(), 0u);
}

TEST_F(PrisonPrealloc, MapPathWithPerBioCellsCompletesOnAPoolOfOne)
{
	/* Bios themselves come from a one-element pool; their cells come with them. */
	Mempool bios;
	init_pool_of_one(bios, sizeof(TestBio));
	constexpr int kBios = 200;
	std::atomic<int> mapped{0};
	auto mapper = [&](unsigned id) {
		for (int i = 0; i < kBios / 2; i++) {
			TestBio *t = new (in_place, bios.alloc(AllocMode::NoIO)) TestBio(id);
			map_with_per_bio_cells(prison, *t, u64(i) % 7, 100 + u64(i) % 5);
			bio_complete(&t->b, DMXX_BLK_STS_OK);
			t->~TestBio();
			bios.free(t);
			mapped.fetch_add(1);
			Watchdog::poke();
		}
	};
	/* Two mappers on one element: each waits for the other's bio, which always comes back. */
	std::thread a(mapper, 1), b(mapper, 2);
	Watchdog w(2000ms);
	w.name(bios.wait_channel(), "bio mempool");
	auto outcome = w.wait_for([&] { return mapped.load() == kBios; }, 10000ms);
	if (outcome != Watchdog::Outcome::Completed)
		unstall(bios);
	a.join();
	b.join();
	EXPECT_EQ(outcome, Watchdog::Outcome::Completed);
	EXPECT_EQ(prison.cells_in_use(), 0u);
}

/*
 * A discard with passdown: the discard bio locks its virtual range for as
 * long as it runs, and each mapped run inside it locks its data blocks
 * without a holder bio. 6.1 takes all of these cells from the one pool.
 */
constexpr u64 kRuns[][2] = {{200, 204}, {300, 301}, {410, 416}};

TEST_F(PrisonPrealloc, DiscardWithPooledCellsStallsOnAPoolOfOne)
{
	Mempool cells;
	init_pool_of_one(cells, sizeof(Cell));
	TestBio discard(1, DMXX_REQ_OP_DISCARD);
	std::atomic<bool> done{false};
	std::thread worker([&] {
		user::set_thread_name("discard (pooled cells)");
		Cell *virt_mem = new (in_place, cells.alloc(AllocMode::NoIO)) Cell();
		Cell *virt;
		held(prison.detain(range_key(CellSpace::Virtual, 0, 0, 16), &discard.b, *virt_mem, virt));
		dmxx_bio_list out = {};
		for (auto &run : kRuns) {
			Cell *data_mem = new (in_place, cells.alloc(AllocMode::NoIO)) Cell();
			Cell *data;
			held(prison.get_cell(range_key(CellSpace::Data, 0, run[0], run[1]), *data_mem, data));
			prison.release_no_holder(*data, out);
			cells.free(data_mem);
		}
		prison.release_no_holder(*virt, out);
		cells.free(virt_mem);
		done.store(true);
		Watchdog::poke();
	});
	Watchdog w(300ms);
	w.name(cells.wait_channel(), "cell mempool");
	auto outcome = w.wait_for([&] { return done.load(); }, 5000ms);
	EXPECT_EQ(outcome, Watchdog::Outcome::Stalled) << "the negative control must be caught";
	EXPECT_EQ(cells.reserve_level(), 0u) << "its only cell is the discard's virtual cell";
	EXPECT_EQ(cells.waiting(), 1u) << "and the worker waits for a data cell";
	unstall(cells);
	worker.join();
	EXPECT_EQ(prison.cells_in_use(), 0u);
}

/*
 * Ours: the virtual cell is the discard bio's own slot; each run's data
 * cell lives in a mapping the worker takes from the mapping pool BEFORE it
 * locks anything, and hands to another context (here a workqueue; in
 * dm-thin the deferred set) that releases the cell and frees the mapping.
 * The worker never waits for a mapping while holding one, so a pool of one
 * mapping is enough: each wait ends when the previous mapping finishes.
 */
struct Mapping {
	dmxx_work work; /* first: the work function gets this address */
	Cell data_cell;
	BioPrison *prison;
	Mempool *pool;
	std::atomic<int> *finished;
};

void finish_mapping(dmxx_work *w)
{
	auto *m = reinterpret_cast<Mapping *>(w);
	dmxx_bio_list out = {};
	m->prison->release_no_holder(m->data_cell, out);
	std::atomic<int> *finished = m->finished;
	Mempool *pool = m->pool;
	m->~Mapping();
	pool->free(m);
	finished->fetch_add(1);
}

TEST_F(PrisonPrealloc, DiscardWithPreallocatedMappingsCompletesOnAPoolOfOne)
{
	Mempool mappings;
	init_pool_of_one(mappings, sizeof(Mapping));
	dmxx_workqueue *wq = dmxx_wq_create("prison-mapping", DMXX_WQ_MEM_RECLAIM);
	ASSERT_NE(wq, nullptr);
	TestBio discard(1, DMXX_REQ_OP_DISCARD);
	std::atomic<int> finished{0};
	std::atomic<bool> done{false};
	std::thread worker([&] {
		user::set_thread_name("discard (preallocated)");
		Cell *virt;
		held(prison.detain(range_key(CellSpace::Virtual, 0, 0, 16), &discard.b, discard.slot[0], virt));
		for (auto &run : kRuns) {
			/* Prealloc first, with nothing from this pool in hand. */
			auto *m = new (in_place, mappings.alloc(AllocMode::NoIO)) Mapping();
			m->prison = &prison;
			m->pool = &mappings;
			m->finished = &finished;
			dmxx_work_init(&m->work, finish_mapping);
			Cell *data;
			held(prison.get_cell(range_key(CellSpace::Data, 0, run[0], run[1]), m->data_cell, data));
			dmxx_queue_work(wq, &m->work);
		}
		dmxx_bio_list out = {};
		prison.release_no_holder(*virt, out);
		done.store(true);
		Watchdog::poke();
	});
	Watchdog w(2000ms);
	auto outcome = w.wait_for(
		[&] { return done.load() && finished.load() == int(sizeof(kRuns) / sizeof(kRuns[0])); },
		10000ms);
	if (outcome != Watchdog::Outcome::Completed)
		unstall(mappings);
	worker.join();
	dmxx_flush_workqueue(wq);
	dmxx_wq_destroy(wq);
	EXPECT_EQ(outcome, Watchdog::Outcome::Completed);
	EXPECT_EQ(prison.cells_in_use(), 0u);
}

} // namespace
