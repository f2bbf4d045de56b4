// SPDX-License-Identifier: GPL-2.0
#include "deferred_set.h"

#include <dmxx/platform.h>

namespace dmxx::thin {

DeferredSet::Entry *DeferredSet::inc()
{
	IrqGuard g(m_lock);
	Entry *e = &m_gens[m_current];
	e->in_flight++;
	return e;
}

/*
 * Retire drained generations from the oldest on. Work of a retired
 * generation is ready: its own I/O and all older I/O are done. The current
 * generation drains too once it is the only live one, which is how work
 * queued while a single generation was live becomes ready.
 */
void DeferredSet::collect_ready(DeferredWorkList &ready)
{
	while (m_oldest != m_current && m_gens[m_oldest].in_flight == 0) {
		ready.splice(m_gens[m_oldest].work);
		m_oldest = next(m_oldest);
	}
	if (m_oldest == m_current && m_gens[m_current].in_flight == 0)
		ready.splice(m_gens[m_current].work);
}

void DeferredSet::dec(Entry *entry, DeferredWorkList &ready)
{
	IrqGuard g(m_lock);
	if (entry < m_gens || entry >= m_gens + kGenerations || entry->in_flight == 0)
		dmxx_fatal("deferred set: dec without a matching inc");
	entry->in_flight--;
	collect_ready(ready);
}

bool DeferredSet::add_work(DeferredWork *work)
{
	IrqGuard g(m_lock);
	if (m_oldest == m_current && m_gens[m_current].in_flight == 0)
		return false;
	m_gens[m_current].work.push(work);
	/*
	 * Close this generation so that I/O started from now on does not hold
	 * the work up, unless the ring is full; then later I/O joins it.
	 */
	unsigned n = next(m_current);
	if (n != m_oldest)
		m_current = n;
	return true;
}

unsigned DeferredSet::in_flight() const
{
	IrqGuard g(m_lock);
	unsigned total = 0;
	for (const Entry &e : m_gens)
		total += e.in_flight;
	return total;
}

} // namespace dmxx::thin
