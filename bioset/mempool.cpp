// SPDX-License-Identifier: GPL-2.0
#include "mempool.h"

namespace dmxx {

Result<void> Mempool::init(usize size, unsigned min_nr)
{
	m_size = size;
	m_min_nr = min_nr;
	if (!min_nr)
		return {};
	m_elements = static_cast<void **>(dmxx_zalloc(sizeof(void *) * min_nr, DMXX_ALLOC_SLEEP));
	if (!m_elements)
		return err(ENOMEM);
	for (unsigned i = 0; i < min_nr; i++) {
		void *e = dmxx_alloc(size, DMXX_ALLOC_SLEEP);
		if (!e)
			return err(ENOMEM); /* the destructor frees what was taken */
		m_elements[m_curr++] = e;
	}
	return {};
}

Mempool::~Mempool()
{
	for (unsigned i = 0; i < m_curr; i++)
		dmxx_free(m_elements[i]);
	dmxx_free(m_elements);
}

void *Mempool::try_allocator(AllocMode mode)
{
	if (m_reserve_only.load(Order::Relaxed))
		return nullptr;
	return dmxx_alloc(m_size, static_cast<dmxx_alloc_mode>(mode));
}

/*
 * m_lock is taken with interrupts off: free() runs from bio completion,
 * which on real hardware is interrupt context, and an interrupt completing
 * a bio on a CPU that holds m_lock would otherwise spin on it forever.
 */
void *Mempool::take_reserve()
{
	IrqGuard g(m_lock);
	if (!m_curr)
		return nullptr;
	return m_elements[--m_curr];
}

unsigned Mempool::reserve_level() const
{
	IrqGuard g(m_lock);
	return m_curr;
}

void *Mempool::alloc(AllocMode mode)
{
	bool may_sleep = mode == AllocMode::Sleep || mode == AllocMode::NoIO;
	bool waited = false;
	for (bool first = true;; first = false) {
		/* The first try never sleeps: a full reserve should not wait on reclaim. */
		if (void *e = try_allocator(first ? AllocMode::NoWait : mode))
			return e;
		if (void *e = take_reserve())
			return e;
		if (!may_sleep)
			return nullptr;
		if (first)
			continue; /* one more allocator try with the caller's full mode */
		if (!waited) {
			waited = true; /* count allocations that waited, not sleeps */
			m_waits.fetch_add(1, Order::Relaxed);
		}
		m_waiting.fetch_add(1, Order::Relaxed);
		/* No lock held here: the freeing side takes m_lock to refill. */
		m_wait.wait_once([this] { return reserve_level() > 0; });
		m_waiting.fetch_sub(1, Order::Relaxed);
	}
}

void Mempool::free(void *element)
{
	if (!element)
		return;
	{
		IrqGuard g(m_lock);
		if (m_curr < m_min_nr) {
			m_elements[m_curr++] = element;
			element = nullptr;
		}
	}
	if (element)
		dmxx_free(element);
	else
		m_wait.wake_one();
}

} // namespace dmxx
