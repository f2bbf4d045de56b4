// SPDX-License-Identifier: GPL-2.0
#include "watchdog.h"

#include <dmxx/user/block.h>

#include <cstdio>
#include <ostream>
#include <sstream>

namespace dmxx::test {

namespace {

const char *policy_name(RescuePolicy p)
{
	switch (p) {
	case RescuePolicy::PerSet:
		return "PerSet";
	case RescuePolicy::None:
		return "None";
	case RescuePolicy::AllBios:
		return "AllBios";
	case RescuePolicy::CurrentLevel:
		return "CurrentLevel";
	}
	return "?";
}

/* Runs on the blocking thread, over its own bios. */
std::string describe_bio(const bio *b)
{
	char buf[200];
	BioSet *set = BioSet::owner(b);
	std::string owner = set ? user::object_name(set) : "no set";
	snprintf(buf, sizeof(buf), "bio %p -> %s sector %llu +%u (%s)", (const void *)b,
		 b->bi_bdev ? b->bi_bdev->name().c_str() : "?", (unsigned long long)b->bi_sector,
		 b->bi_size >> 9, owner.c_str());
	return buf;
}

} // namespace

const char *outcome_name(Watchdog::Outcome o)
{
	switch (o) {
	case Watchdog::Outcome::Completed:
		return "Completed";
	case Watchdog::Outcome::Stalled:
		return "Stalled";
	case Watchdog::Outcome::Deadline:
		return "Deadline";
	}
	return "?";
}

Watchdog::Watchdog(std::chrono::milliseconds stall_window) : m_window(stall_window)
{
	user::set_bio_describer(describe_bio);
	user::set_thread_name("test (watchdog)");
}

Watchdog::~Watchdog()
{
	for (const void *o : m_named)
		user::forget_object(o);
}

void Watchdog::watch(BioSet *set, const std::string &n)
{
	m_sets.push_back({set, n});
	name(set, n);
	name(set->pool_wait_channel(), "mempool of " + n);
	name(set->rescue_work(), "rescue work of " + n);
}

void Watchdog::name(const void *obj, const std::string &n)
{
	user::name_object(obj, n);
	m_named.push_back(obj);
}

Watchdog::Outcome Watchdog::wait_for(const std::function<bool()> &pred, std::chrono::milliseconds deadline)
{
	using clock = std::chrono::steady_clock;
	const auto end = clock::now() + deadline;
	uint64_t seen = user::progress_count();
	auto last_progress = clock::now();
	Outcome out;
	for (;;) {
		if (pred())
			return Outcome::Completed;
		auto stall_at = last_progress + m_window;
		auto now = clock::now();
		if (now >= stall_at) {
			out = Outcome::Stalled;
			break;
		}
		if (now >= end) {
			out = Outcome::Deadline;
			break;
		}
		uint64_t c = user::progress_wait(seen, std::min(stall_at, end));
		if (c != seen) {
			seen = c;
			last_progress = clock::now();
		}
	}
	if (pred()) /* it became true right at the edge: not a stall */
		return Outcome::Completed;

	std::ostringstream os;
	os << "=== dmxx watchdog: " << outcome_name(out) << " (no progress for " << m_window.count()
	   << " ms; progress count " << user::progress_count() << ")\n";
	os << "--- threads\n";
	for (const auto &t : user::thread_reports()) {
		os << "thread " << t.name << ": " << t.state << (t.in_submission ? " (inside submit_bio)" : "") << "\n";
		for (int i = 0; i < 2; i++)
			for (const auto &b : t.pending[i])
				os << "  bio_list[" << i << "]: " << b << "\n";
	}
	os << "--- bio sets\n";
	for (const auto &w : m_sets) {
		auto st = w.set->stats();
		os << "bioset " << w.name << ": reserve " << w.set->reserve_level() << "/" << w.set->pool_size()
		   << ", waiters " << w.set->pool_waiting() << ", rescue backlog " << w.set->rescue_backlog()
		   << ", policy " << policy_name(w.set->rescue_policy()) << ", allocs " << st.allocs << ", rescues "
		   << st.rescues << ", rescued bios " << st.rescued_bios << ", pool waits " << st.pool_waits << "\n";
	}
	os << "--- workqueues\n";
	for (const auto &q : user::workqueue_reports()) {
		if (!q.queued && !q.running)
			continue;
		os << "workqueue " << q.name << ": " << q.workers << " workers, " << q.running << " running, "
		   << q.queued << " queued\n";
		for (const auto &i : q.queued_items)
			os << "  queued: " << i << "\n";
	}
	m_dump = os.str();
	fprintf(stderr, "%s", m_dump.c_str());
	return out;
}

std::string Watchdog::take_dump()
{
	std::string d;
	d.swap(m_dump);
	return d;
}

void Watchdog::recover()
{
	for (const auto &w : m_sets)
		w.set->unstall();
}

} // namespace dmxx::test
