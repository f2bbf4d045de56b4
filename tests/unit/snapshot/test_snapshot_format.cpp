// SPDX-License-Identifier: GPL-2.0
/* The P store's on-disk format and the in-memory exception tables, as pure code. */
#include "../helpers.h"

#include "exception_table.h"
#include "format.h"

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

using namespace dmxx;
using namespace dmxx::snap;

/* The header of a valid store with 8-sector chunks, byte for byte as Linux writes it. */
TEST(SnapshotFormat, HeaderFixture)
{
	const u8 fixture[16] = {0x53, 0x6e, 0x41, 0x70, 0x01, 0x00, 0x00, 0x00,
				0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00};
	u8 buf[16] = {};
	encode_header(buf, {disk_magic, 1, disk_version, 8});
	EXPECT_EQ(memcmp(buf, fixture, 16), 0);
	EXPECT_EQ(memcmp(buf, "SnAp", 4), 0);
	Header h = decode_header(fixture);
	EXPECT_EQ(h.magic, disk_magic);
	EXPECT_EQ(h.valid, 1u);
	EXPECT_EQ(h.version, 1u);
	EXPECT_EQ(h.chunk_size, 8u);

	/* Invalidated, 64 KiB chunks. */
	const u8 invalid[16] = {0x53, 0x6e, 0x41, 0x70, 0, 0, 0, 0, 1, 0, 0, 0, 0x80, 0, 0, 0};
	h = decode_header(invalid);
	EXPECT_EQ(h.valid, 0u);
	EXPECT_EQ(h.chunk_size, 128u);
}

TEST(SnapshotFormat, ExceptionFixtureAndRoundTrip)
{
	/* (old 0x0102030405060708, new 0x2a): little-endian, old first. */
	const u8 fixture[32] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x2a, 0, 0, 0, 0, 0, 0, 0,
				0xff, 0, 0, 0, 0, 0, 0, 0,                      0x03, 0, 0, 0, 0, 0, 0, 0};
	u8 area[32] = {};
	encode_exception(area, 0, {0x0102030405060708ull, 0x2a});
	encode_exception(area, 1, {0xff, 3});
	EXPECT_EQ(memcmp(area, fixture, 32), 0);
	CoreException e = decode_exception(fixture, 1);
	EXPECT_EQ(e.old_chunk, 0xffu);
	EXPECT_EQ(e.new_chunk, 3u);
	for (u64 v : {0ull, 1ull, 0xffffffffull, 0x100000000ull, ~0ull}) {
		encode_exception(area, 0, {v, ~v});
		CoreException d = decode_exception(area, 0);
		EXPECT_EQ(d.old_chunk, v);
		EXPECT_EQ(d.new_chunk, ~v);
	}
}

TEST(SnapshotFormat, AreaLayout)
{
	AreaLayout l(8); /* 4 KiB chunks: 256 exceptions per area */
	EXPECT_EQ(l.exceptions_per_area(), 256u);
	EXPECT_EQ(l.area_location(0), 1u);
	EXPECT_EQ(l.area_location(1), 258u);
	EXPECT_EQ(l.area_location(2), 515u);
	EXPECT_TRUE(l.is_metadata(0));
	EXPECT_TRUE(l.is_metadata(1));
	EXPECT_FALSE(l.is_metadata(2));
	EXPECT_FALSE(l.is_metadata(257));
	EXPECT_TRUE(l.is_metadata(258));
	EXPECT_EQ(AreaLayout::first_free(), 2u);
	EXPECT_EQ(l.skip_metadata(257), 257u);
	EXPECT_EQ(l.skip_metadata(258), 259u);
	EXPECT_EQ(l.skip_metadata(2), 2u);
	/* Handing out chunks in order never hands out metadata, and fills areas exactly. */
	chunk_t next = AreaLayout::first_free();
	for (int i = 0; i < 1000; i++) {
		ASSERT_FALSE(l.is_metadata(next)) << next;
		next = l.skip_metadata(next + 1);
	}
	AreaLayout big(1024); /* 512 KiB chunks */
	EXPECT_EQ(big.exceptions_per_area(), 32768u);
	EXPECT_EQ(big.area_location(1), 32770u);
	/* Usage as status prints it: a fresh 8-sector store uses header + area 0. */
	Usage u = persistent_usage(2048, 8, AreaLayout::first_free(), 0);
	EXPECT_EQ(u.allocated, 16u);
	EXPECT_EQ(u.metadata, 16u);
	EXPECT_EQ(u.total, 2048u);
}

TEST(SnapshotFormat, ScanArea)
{
	AreaLayout l(1); /* 32 entries per area */
	std::vector<u8> area(512, 0);
	encode_exception(area.data(), 0, {10, 2});
	encode_exception(area.data(), 1, {11, 3});
	encode_exception(area.data(), 2, {5, 4});
	std::vector<CoreException> seen;
	auto r = scan_area(area.data(), l, [&](const CoreException &e) -> Result<void> {
		seen.push_back(e);
		return {};
	});
	ASSERT_TRUE(r.is_ok());
	EXPECT_EQ(r.value().count, 3u);
	EXPECT_FALSE(r.value().full);
	EXPECT_EQ(r.value().max_new, 4u);
	ASSERT_EQ(seen.size(), 3u);
	EXPECT_EQ(seen[2].old_chunk, 5u);

	for (u32 i = 0; i < 32; i++)
		encode_exception(area.data(), i, {i, 100 + i});
	auto r2 = scan_area(area.data(), l, [](const CoreException &) -> Result<void> { return {}; });
	EXPECT_TRUE(r2.value().full);
	EXPECT_EQ(r2.value().count, 32u);
	/* The callback's error stops the scan. */
	int calls = 0;
	auto r3 = scan_area(area.data(), l, [&](const CoreException &) -> Result<void> {
		if (++calls == 3)
			return err(EILSEQ);
		return {};
	});
	EXPECT_EQ(r3.error_code(), -EILSEQ);
	EXPECT_EQ(calls, 3);

	EXPECT_TRUE(exception_plausible(l, 100, {7, 50}));
	EXPECT_FALSE(exception_plausible(l, 100, {7, 100})); /* beyond the device */
	EXPECT_FALSE(exception_plausible(l, 100, {7, 34}));  /* area 1 */
	EXPECT_FALSE(exception_plausible(l, 100, {7, 1}));   /* area 0 */
}

TEST(SnapshotFormat, ChunkSizeChecks)
{
	EXPECT_EQ(chunk_size_problem(8, 512, 512), nullptr);
	EXPECT_STREQ(chunk_size_problem(12, 512, 512), "Chunk size is not a power of 2");
	EXPECT_STREQ(chunk_size_problem(4, 512, 4096), "Chunk size is not a multiple of device blocksize");
	EXPECT_STREQ(chunk_size_problem(4, 4096, 512), "Chunk size is not a multiple of device blocksize");
	EXPECT_EQ(chunk_size_problem(8, 4096, 4096), nullptr);
	EXPECT_STREQ(chunk_size_problem(1u << 22, 512, 512), "Chunk size is too high");
	EXPECT_EQ(chunk_size_problem(1u << 21, 512, 512), nullptr);
}

/* ---- exception tables ---------------------------------------------------------------------------- */

namespace {
class Tables : public dmxx::test::DmxxTest {
protected:
	std::unique_ptr<ExceptionTables> owner = std::make_unique<ExceptionTables>();
	ExceptionTables &t = *owner;
	void SetUp() override
	{
		DmxxTest::SetUp();
		ASSERT_TRUE(t.init(4096).is_ok());
	}
	void TearDown() override
	{
		owner.reset(); /* before the allocation balance is checked */
		DmxxTest::TearDown();
	}
	Result<void> add(chunk_t o, chunk_t n)
	{
		auto *e = new CompleteException(o, n);
		ChunkLock lk(t, o);
		auto r = t.insert_complete(e);
		if (r.is_error())
			delete e;
		return r;
	}
	bool find(chunk_t o, chunk_t *n)
	{
		ChunkLock lk(t, o);
		return t.lookup_complete(o, n);
	}
};
} // namespace

TEST_F(Tables, RunsFormAndAnswerLookups)
{
	/* 100..104 -> 10..14 in order, then 99 -> 9 before the run, then an unrelated one. */
	for (chunk_t i = 0; i < 5; i++)
		ASSERT_TRUE(add(100 + i, 10 + i).is_ok());
	ASSERT_TRUE(add(99, 9).is_ok());
	ASSERT_TRUE(add(110, 500).is_ok());
	EXPECT_EQ(t.complete_chunks(), 7u);
	chunk_t n;
	for (chunk_t i = 99; i <= 104; i++) {
		ASSERT_TRUE(find(i, &n)) << i;
		EXPECT_EQ(n, i - 90);
	}
	EXPECT_FALSE(find(105, &n));
	EXPECT_FALSE(find(98, &n));
	ASSERT_TRUE(find(110, &n));
	EXPECT_EQ(n, 500u);
	EXPECT_EQ(add(102, 77).error_code(), -EEXIST);
	/* Chunks that only collide in the hash stay apart. */
	ASSERT_TRUE(add(100 + (1ull << 20), 7).is_ok());
	ASSERT_TRUE(find(100 + (1ull << 20), &n));
	EXPECT_EQ(n, 7u);
	ASSERT_TRUE(find(100, &n));
	EXPECT_EQ(n, 10u);
}

TEST_F(Tables, RemovalShrinksAndSplitsRuns)
{
	for (chunk_t i = 0; i < 8; i++)
		ASSERT_TRUE(add(200 + i, 40 + i).is_ok());
	CompleteException *spare = nullptr;
	chunk_t n;
	{
		ChunkLock lk(t, 207);
		ASSERT_TRUE(t.remove_complete(207, &spare).is_ok()); /* tail */
		ASSERT_TRUE(t.remove_complete(200, &spare).is_ok()); /* head */
		EXPECT_EQ(t.remove_complete(204, &spare).error_code(), -ENOMEM); /* middle needs a spare */
	}
	spare = new CompleteException{};
	{
		ChunkLock lk(t, 204);
		ASSERT_TRUE(t.remove_complete(204, &spare).is_ok());
		EXPECT_EQ(spare, nullptr);
		EXPECT_EQ(t.remove_complete(204, &spare).error_code(), -ENOENT);
	}
	EXPECT_FALSE(find(200, &n));
	EXPECT_FALSE(find(204, &n));
	EXPECT_FALSE(find(207, &n));
	for (chunk_t c : {201, 202, 203, 205, 206}) {
		ASSERT_TRUE(find(c, &n)) << c;
		EXPECT_EQ(n, c - 160);
	}
	EXPECT_EQ(t.complete_chunks(), 5u);
}

/* Chunks go in middle-out, so runs grow at both ends; odd groups' chunk 1 breaks the run. */
static constexpr chunk_t lockless_order[8] = {4, 3, 5, 2, 6, 1, 7, 0};
static chunk_t cow_of(chunk_t c)
{
	return c + 1000000 + ((c % 8 == 1 && (c / 8) % 2) ? 5 : 0);
}

TEST_F(Tables, LocklessLookupAgreesWithTheLockedOne)
{
	for (chunk_t g = 0; g < 4; g++) {
		for (chunk_t i : lockless_order) {
			ASSERT_TRUE(add(g * 8 + i, cow_of(g * 8 + i)).is_ok());
			for (chunk_t c = 0; c < 40; c++) {
				chunk_t locked = 0, lockless = 0;
				bool a = find(c, &locked);
				ASSERT_EQ(t.lookup_complete_lockless(c, &lockless), a) << c;
				if (a) {
					EXPECT_EQ(lockless, locked) << c;
					EXPECT_EQ(lockless, cow_of(c)) << c;
				}
			}
		}
	}
	EXPECT_EQ(t.complete_chunks(), 32u);
}

/*
 * Readers without locks beside a writer that grows runs at both ends: a
 * chunk is never found before its insertion began (the writer marks it
 * first), and is always mapped to its own COW chunk. A writer that grew a
 * run downwards length-first would let a reader see the old start with the
 * new length: one chunk too many at the top.
 */
TEST_F(Tables, LocklessReadersNeverSeeAChunkEarly)
{
	constexpr chunk_t groups = 512, chunks = groups * 8;
	long total_hits = 0;
	for (int pass = 0; pass < 40; pass++) {
		auto table = std::make_unique<ExceptionTables>();
		ASSERT_TRUE(table->init(4096).is_ok());
		ExceptionTables &tab = *table;
		std::vector<std::atomic<int>> started(chunks);
		std::atomic<chunk_t> group{0};
		std::atomic<bool> done{false};
		std::atomic<long> early{0}, wrong{0}, hits{0};
		std::atomic<int> ready{0};
		auto reader = [&](unsigned seed) {
			std::mt19937 rng(seed);
			ready++;
			while (!done.load(std::memory_order_acquire)) {
				chunk_t c = group.load(std::memory_order_relaxed) * 8 + rng() % 9;
				if (c >= chunks)
					continue;
				chunk_t nc;
				if (!tab.lookup_complete_lockless(c, &nc))
					continue;
				hits++;
				if (!started[c].load(std::memory_order_acquire))
					early++;
				if (nc != cow_of(c))
					wrong++;
			}
		};
		std::thread r1(reader, 1 + pass), r2(reader, 100 + pass);
		while (ready.load() < 2)
			std::this_thread::yield();
		for (chunk_t g = 0; g < groups; g++) {
			group.store(g, std::memory_order_relaxed);
			for (chunk_t i : lockless_order) {
				chunk_t c = g * 8 + i;
				started[c].store(1, std::memory_order_release);
				auto *e = new CompleteException(c, cow_of(c));
				ChunkLock lk(tab, c);
				EXPECT_TRUE(tab.insert_complete(e).is_ok());
			}
		}
		done.store(true, std::memory_order_release);
		r1.join();
		r2.join();
		EXPECT_EQ(early.load(), 0) << "pass " << pass;
		EXPECT_EQ(wrong.load(), 0) << "pass " << pass;
		total_hits += hits.load();
	}
	EXPECT_GT(total_hits, 0) << "the readers never overlapped the writer";
}

TEST_F(Tables, PendingEntries)
{
	PendingLink a{nullptr, 5}, b{nullptr, 5 + 4096}, c{nullptr, 6};
	{
		ChunkLock lk(t, 5);
		t.insert_pending(&a);
		t.insert_pending(&b);
		t.insert_pending(&c);
		EXPECT_EQ(t.lookup_pending(5), &a);
		EXPECT_EQ(t.lookup_pending(5 + 4096), &b);
		EXPECT_EQ(t.lookup_pending(6), &c);
		EXPECT_EQ(t.lookup_pending(7), nullptr);
		t.remove_pending(&a);
		EXPECT_EQ(t.lookup_pending(5), nullptr);
		EXPECT_EQ(t.lookup_pending(5 + 4096), &b);
		t.remove_pending(&b);
		t.remove_pending(&c);
	}
}
