/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Observability of the userspace platform, for deadlock harnesses
 * (tests/unit/harness/watchdog.h).
 *
 *  - A process-wide progress counter, bumped on every bio completion, every
 *    work item run and every return from a blocking wait. progress_wait()
 *    sleeps on a condition variable until the counter moves (no polling).
 *  - A registry of the threads that use the platform: each records, while
 *    blocked in a platform wait (wait queue, completion, mutex, rwsem, flush,
 *    sleep), what it waits on and a snapshot of its pending submission lists
 *    (current->bio_list), taken by the thread itself before it blocks, so a
 *    dump never reads another thread's lists unsynchronised.
 *  - A registry of workqueues (queued / running items) and of object names,
 *    so a dump can say "blocked in wait_sleep on [mempool SL]".
 *
 * Userspace only: the portable core never includes this.
 */
#pragma once

#include <dmxx/platform.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dmxx::user {

/* ---- progress ------------------------------------------------------------ */

uint64_t progress_count();
void progress_bump();
/* Sleeps until progress_count() != @seen or @until; returns the count. */
uint64_t progress_wait(uint64_t seen, std::chrono::steady_clock::time_point until);

/* ---- names ------------------------------------------------------------------ */

/* Name @obj (a waitq, completion, mutex, BioSet, work item...) in dumps. */
void name_object(const void *obj, const std::string &name);
void forget_object(const void *obj);
/* "[name]" if named, else the address. */
std::string object_name(const void *obj);

/* Name the calling thread in dumps (workers are named "wq:<name>/<n>"). */
void set_thread_name(const std::string &name);

/* One line per bio in a pending list; the harness installs a richer one. */
using BioDescriber = std::string (*)(const bio *b);
void set_bio_describer(BioDescriber fn);

/* ---- reports ------------------------------------------------------------------ */

struct ThreadReport {
	std::string name;
	bool blocked = false;
	std::string state;                /* "blocked in mutex_lock on [x]", "running work ...", "idle" */
	std::vector<std::string> pending[2]; /* snapshot of current->bio_list at block time */
	bool in_submission = false;       /* inside dmxx_submit_bio when it blocked */
};
std::vector<ThreadReport> thread_reports();

struct WorkqueueReport {
	std::string name;
	unsigned workers, queued, running;
	std::vector<std::string> queued_items; /* object names of the queued work items */
};
std::vector<WorkqueueReport> workqueue_reports();

/*
 * Marks the calling thread blocked on @obj in primitive @what for its
 * scope; the platform's waits use it, a test's own waits may too.
 */
class BlockScope {
public:
	BlockScope(const char *what, const void *obj);
	~BlockScope();
	BlockScope(const BlockScope &) = delete;
	BlockScope &operator=(const BlockScope &) = delete;
};

} // namespace dmxx::user
