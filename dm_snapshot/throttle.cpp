// SPDX-License-Identifier: GPL-2.0
#include "throttle.h"

#include <dmxx/params.h>

namespace dmxx::snap {

unsigned CowThrottle::limit()
{
	unsigned v;
	if (dmxx_param_read_uint("snapshot_cow_threshold", &v) < 0)
		v = default_threshold;
	return v ? v : 1;
}

void CowThrottle::note_max(unsigned n)
{
	if (n > m_max.load(Order::Relaxed))
		m_max.store(n, Order::Relaxed);
}

bool CowThrottle::try_acquire()
{
	unsigned lim = limit();
	Guard g(m_lock);
	if (m_head || m_in_flight >= lim)
		return false;
	m_in_flight++;
	note_max(m_in_flight);
	return true;
}

void CowThrottle::acquire_forced()
{
	Guard g(m_lock);
	m_in_flight++;
	note_max(m_in_flight);
}

void CowThrottle::release()
{
	unsigned lim = limit();
	Sleeper *grants = nullptr;
	bool wake_legacy = false;
	{
		Guard g(m_lock);
		if (!m_in_flight)
			dmxx_fatal("snapshot throttle: release without a slot");
		m_in_flight--;
		/*
		 * Hand slots over: the count stays, so no newcomer can take them
		 * first. One slot, one sleeper; more only if the limit was raised.
		 */
		while (m_head && m_in_flight < lim) {
			Sleeper *w = m_head;
			m_head = w->next;
			if (!m_head)
				m_tail = nullptr;
			m_sleepers--;
			w->granted = true;
			w->next = grants;
			grants = w;
			m_in_flight++;
			note_max(m_in_flight);
		}
		if (m_mode == ThrottleMode::Semaphore2018)
			wake_legacy = true;
		else if (m_mode == ThrottleMode::Kernel2019)
			wake_legacy = m_in_flight <= lim;
	}
	while (grants) {
		Sleeper *w = grants;
		grants = w->next;
		w->done.complete(); /* safe on the sleeper's stack: complete() is */
	}
	if (wake_legacy)
		m_legacy_wait.wake_all(); /* 2019 woke every sleeper: reproduced as such */
}

CowThrottle::Wait CowThrottle::wait_for_grant()
{
	Sleeper me;
	unsigned lim = limit();
	{
		Guard g(m_lock);
		if (m_closed)
			return Wait::Closed;
		/* A slot may have come free since the caller's try: take it now. */
		if (!m_head && m_in_flight < lim) {
			m_in_flight++;
			note_max(m_in_flight);
			return Wait::Granted;
		}
		me.next = nullptr;
		if (m_tail)
			m_tail->next = &me;
		else
			m_head = &me;
		m_tail = &me;
		m_sleepers++;
	}
	me.done.wait();
	return me.granted ? Wait::Granted : Wait::Closed;
}

void CowThrottle::close()
{
	Sleeper *all;
	{
		Guard g(m_lock);
		m_closed = true;
		all = m_head;
		m_head = m_tail = nullptr;
		m_sleepers = 0;
	}
	while (all) {
		Sleeper *n = all->next;
		all->granted = false;
		all->done.complete();
		all = n;
	}
	m_legacy_wait.wake_all();
}

void CowThrottle::legacy_down()
{
	for (;;) {
		unsigned lim = limit();
		{
			Guard g(m_lock);
			if (m_in_flight < lim || m_closed) {
				m_in_flight++;
				note_max(m_in_flight);
				return;
			}
		}
		m_legacy_sleepers.fetch_add(1, Order::Relaxed);
		m_legacy_wait.wait_once([&] {
			unsigned now = limit();
			Guard g(m_lock);
			return m_in_flight < now || m_closed;
		});
		m_legacy_sleepers.fetch_sub(1, Order::Relaxed);
	}
}

bool CowThrottle::over_limit_2019() const
{
	unsigned lim = limit();
	Guard g(m_lock);
	return m_in_flight > lim;
}

void CowThrottle::wait_2019()
{
	m_legacy_sleepers.fetch_add(1, Order::Relaxed);
	m_legacy_wait.wait([&] {
		unsigned lim = limit();
		Guard g(m_lock);
		return m_in_flight <= lim || m_closed;
	});
	m_legacy_sleepers.fetch_sub(1, Order::Relaxed);
}

unsigned CowThrottle::in_flight() const
{
	Guard g(m_lock);
	return m_in_flight;
}

unsigned CowThrottle::sleepers() const
{
	Guard g(m_lock);
	return m_sleepers;
}

} // namespace dmxx::snap
