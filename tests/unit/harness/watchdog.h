/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The deadlock harness: waits for a test's condition while watching the
 * platform's progress counter (<dmxx/user/watch.h>), and tells a finished
 * run from a stalled one.
 *
 *   Watchdog w;                         // stall window 2 s (configurable)
 *   w.watch(&set, "SL");                // dumped, and unstalled on recovery
 *   auto r = w.wait_for([&] { return done == n; });
 *   // r == Completed: pred became true.
 *   // r == Stalled:   pred false and no progress (no bio completion, work
 *   //                 item run or wake-up) for a whole window; w.dump()
 *   //                 holds every thread's state and pending bio lists,
 *   //                 each watched BioSet's reserve, waiters and backlog,
 *   //                 and each workqueue's queue.
 *   w.recover();                        // unstall every watched BioSet
 *
 * Waiting is on a condition variable that every progress event notifies;
 * the window is only how long "nothing happened" must last to be called a
 * stall, never a sleep that decides the outcome.
 */
#pragma once

#include <bioset.h>
#include <dmxx/user/watch.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace dmxx::test {

class Watchdog {
public:
	enum class Outcome { Completed, Stalled, Deadline };

	explicit Watchdog(std::chrono::milliseconds stall_window = std::chrono::milliseconds(2000));
	~Watchdog();
	Watchdog(const Watchdog &) = delete;
	Watchdog &operator=(const Watchdog &) = delete;

	/* Dump @set under @name and unstall it on recover(). */
	void watch(BioSet *set, const std::string &name);
	/* Name any object threads may block on (completion, mutex, work item). */
	void name(const void *obj, const std::string &name);

	/*
	 * Completed once @pred holds; Stalled when no progress happened for
	 * the stall window; Deadline if progress continued past @deadline.
	 * On Stalled/Deadline the dump is taken (and printed to stderr).
	 */
	Outcome wait_for(const std::function<bool()> &pred,
			 std::chrono::milliseconds deadline = std::chrono::milliseconds(8000));

	/* The last dump taken (empty if none). */
	const std::string &dump() const { return m_dump; }
	std::string take_dump();
	/* Unstall every watched BioSet (allocator back on, waiters woken). */
	void recover();
	/* Let the watchdog know a condition changed outside the platform. */
	static void poke() { user::progress_bump(); }

private:
	struct Watched {
		BioSet *set;
		std::string name;
	};
	std::chrono::milliseconds m_window;
	std::vector<Watched> m_sets;
	std::vector<const void *> m_named;
	std::string m_dump;
};

const char *outcome_name(Watchdog::Outcome o);

inline std::ostream &operator<<(std::ostream &os, Watchdog::Outcome o) { return os << outcome_name(o); }

} // namespace dmxx::test
