/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test controls of the userspace platform: allocation fault injection, the
 * captured log, and the "sleeping while atomic" checker.
 *
 * Userspace only (tests and dm_core/user); the portable core never includes
 * this. All controls are process-wide and thread-safe; tests that change
 * them should use the RAII helpers so one test cannot leak settings into
 * the next.
 */
#pragma once

#include <dmxx/platform.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dmxx::user {

/* ---- allocation fault injection ----------------------------------------- */
/*
 * Applies to dmxx_alloc/dmxx_zalloc and operator new(size, AllocMode): the
 * allocations the core makes. The model's own bookkeeping (clones, tables)
 * is not subject to it, as the kernel's mempools are not.
 */
struct AllocStats {
	uint64_t attempts;  /* calls, failed or not */
	uint64_t failures;  /* injected failures */
	uint64_t live;      /* dmxx_alloc'd and not yet dmxx_free'd (operator new excluded) */
};

/* Make the @n-th allocation from now fail (0 = the next one); one shot. */
void fail_nth_alloc(uint64_t n);
/* Every allocation from the @n-th on fails, until cleared. */
void fail_allocs_from(uint64_t n);
/* Every allocation with @mode fails, until cleared. */
void fail_allocs_with_mode(dmxx_alloc_mode mode, bool fail = true);
/* Drop every injection rule. */
void clear_alloc_faults();
AllocStats alloc_stats();

/* Clears allocation faults on construction and destruction. */
class AllocFaultScope {
public:
	AllocFaultScope() { clear_alloc_faults(); }
	~AllocFaultScope() { clear_alloc_faults(); }
	AllocFaultScope(const AllocFaultScope &) = delete;
	AllocFaultScope &operator=(const AllocFaultScope &) = delete;
};

/* ---- log ---------------------------------------------------------------- */

struct LogLine {
	dmxx_log_level level;
	std::string text; /* without the "device-mapper: dmxx: " prefix */
};

std::vector<LogLine> log_lines();
void log_clear();
/* True if some captured line contains @needle. */
bool log_contains(const std::string &needle);
/* Echo each line to stderr (default: on if DMXX_LOG_STDERR is set). */
void log_set_echo(bool echo);

/* ---- sleeping in atomic context ------------------------------------------ */
/*
 * Every sleeping primitive checks dmxx_may_sleep(). A violation is logged
 * and then, by default, aborts the process (a loud failure in any test).
 * Tests of the checker itself switch to Record and read the counter.
 */
enum class ViolationMode { Abort, Record };
void set_violation_mode(ViolationMode mode);
ViolationMode violation_mode();
uint64_t sleep_violations();
std::string last_violation();

/* Called by sleeping primitives; @what names the primitive. */
void might_sleep(const char *what);

/*
 * Marks the calling thread as in atomic context (IRQ/softirq): the model
 * runs bio completions this way, so end_io paths that sleep are caught.
 */
class AtomicScope {
public:
	AtomicScope();
	~AtomicScope();
	AtomicScope(const AtomicScope &) = delete;
	AtomicScope &operator=(const AtomicScope &) = delete;
};

/* Spinlocks held by the calling thread (for tests). */
int spinlock_depth();

/* ---- CPU hints ------------------------------------------------------------ */
/*
 * dmxx_this_cpu() for the calling thread only: @cpu (taken modulo
 * dmxx_nr_cpus()), or the real hint again if @cpu < 0. Lets a test put a
 * free on one "CPU" and the next allocation on another, deterministically.
 */
void set_cpu_hint_for_test(int cpu);
/*
 * What dmxx_nr_cpus() returns from now on (0: the host's count again), so a
 * test on a 2-CPU host can build pools with 8 shards. Objects sized by it
 * keep the value they saw at init.
 */
void set_nr_cpus_for_test(unsigned n);

/* Restores both for the calling thread on destruction. */
class CpuHintScope {
public:
	CpuHintScope() = default;
	~CpuHintScope()
	{
		set_cpu_hint_for_test(-1);
		set_nr_cpus_for_test(0);
	}
	CpuHintScope(const CpuHintScope &) = delete;
	CpuHintScope &operator=(const CpuHintScope &) = delete;
};

} // namespace dmxx::user
