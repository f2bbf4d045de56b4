/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between the userspace platform's own files; not for tests. */
#pragma once

#include <dmxx/platform.h>
#include <dmxx/user/watch.h>

#include <string>
#include <vector>

namespace dmxx::user {

/*
 * The calling thread's pending submission lists, one line per bio (block.cpp).
 * Returns whether the thread is inside dmxx_submit_bio.
 */
bool snapshot_bio_lists(std::vector<std::string> out[2], BioDescriber describe);

/* Counts one allocation attempt against the fault-injection rules. */
bool alloc_should_fail(dmxx_alloc_mode mode);

} // namespace dmxx::user

namespace dmxx::user {

/* Allocations made by the model itself (the kernel's mempools) are never failed. */
class NoFaultScope {
public:
	NoFaultScope();
	~NoFaultScope();
	NoFaultScope(const NoFaultScope &) = delete;
	NoFaultScope &operator=(const NoFaultScope &) = delete;
};

} // namespace dmxx::user
