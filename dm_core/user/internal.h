/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between the userspace platform's own files; not for tests. */
#pragma once

#include <dmxx/platform.h>

namespace dmxx::user {

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
