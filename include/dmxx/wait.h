/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Waiting for a condition without holding a lock.
 *
 * wait_event(q, cond) sleeps until cond() is true, re-checking after every
 * wakeup. The caller must hold no lock: the 2019 dm-snapshot deadlock was a
 * throttle that slept holding a lock its wakers needed. Wakers make the
 * condition true first, then call q.wake_all() / q.wake_one().
 */
#pragma once

#include <dmxx/platform.h>

namespace dmxx {

class WaitQueue {
public:
	WaitQueue() { dmxx_waitq_init(&m_q); }
	~WaitQueue() { dmxx_waitq_destroy(&m_q); }
	WaitQueue(const WaitQueue &) = delete;
	WaitQueue &operator=(const WaitQueue &) = delete;

	void wake_all() { dmxx_wake_up_all(&m_q); }
	void wake_one() { dmxx_wake_up_one(&m_q); }

	template <typename Cond> void wait(Cond cond)
	{
		if (cond())
			return;
		dmxx_wait_entry e;
		dmxx_wait_entry_init(&e);
		for (;;) {
			dmxx_wait_prepare(&m_q, &e);
			if (cond())
				break;
			dmxx_wait_sleep(&e);
		}
		dmxx_wait_finish(&m_q, &e);
	}

	/*
	 * One bounded sleep: prepare, re-check, sleep once. For loops that must
	 * retry an operation (mempool refill) rather than wait for a predicate.
	 */
	template <typename Cond> void wait_once(Cond cond)
	{
		dmxx_wait_entry e;
		dmxx_wait_entry_init(&e);
		dmxx_wait_prepare(&m_q, &e);
		if (!cond())
			dmxx_wait_sleep(&e);
		dmxx_wait_finish(&m_q, &e);
	}

	dmxx_waitq *raw() { return &m_q; }

private:
	dmxx_waitq m_q;
};

class Completion {
public:
	Completion() { dmxx_completion_init(&m_c); }
	~Completion() { dmxx_completion_destroy(&m_c); }
	Completion(const Completion &) = delete;
	Completion &operator=(const Completion &) = delete;
	void complete() { dmxx_complete(&m_c); }
	void complete_all() { dmxx_complete_all(&m_c); }
	void wait() { dmxx_wait_for_completion(&m_c); }
	bool wait_ms(unsigned ms) { return dmxx_wait_for_completion_timeout_ms(&m_c, ms) != 0; }

private:
	dmxx_completion m_c;
};

} // namespace dmxx
