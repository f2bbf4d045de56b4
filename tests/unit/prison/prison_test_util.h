/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test bios for the bio prison: the userspace model's struct bio with the
 * cell slots a target keeps in per-bio data, and a completion record.
 */
#pragma once

#include "prison/bio_prison.h"

#include <dmxx/bio_list.h>

#include <atomic>
#include <vector>

namespace dmxx::test {

struct TestBio {
	thin::Cell slot[2]; /* what dm-thin keeps per bio: a virtual and a data cell */
	unsigned id = 0;
	std::atomic<int> completions{0};
	std::atomic<int> status{-1};
	bio b{};

	explicit TestBio(unsigned i = 0, u32 opf = DMXX_REQ_OP_WRITE) : id(i)
	{
		b.bi_private = this;
		b.bi_end_io = &TestBio::end_io;
		b.bi_opf = opf;
	}
	TestBio(const TestBio &) = delete;
	TestBio &operator=(const TestBio &) = delete;

	static TestBio *of(bio *b) { return static_cast<TestBio *>(b->bi_private); }
	static void end_io(bio *b)
	{
		TestBio *t = of(b);
		t->status.store(b->bi_status);
		t->completions.fetch_add(1);
	}
};

/* Drain @l into a vector, in order. */
inline std::vector<bio *> take_all(dmxx_bio_list &l)
{
	std::vector<bio *> v;
	while (bio *b = bio_list_pop(l))
		v.push_back(b);
	return v;
}

} // namespace dmxx::test
