/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Chunks with I/O in flight that a copy or merge must not overtake.
 *
 * A snapshot read of an uncopied chunk goes to the origin. If an origin
 * write to that chunk is waiting for the chunk's copy, it must not be
 * released while such a read is still reading the origin, or the read could
 * return the new data. So reads are tracked (their node lives in DM's
 * per-bio data: no allocation), and a finishing copy, after publishing the
 * complete exception (new reads now go to the COW), waits for the tracked
 * ones to drain. The merge does the same for writes to chunks it merges.
 *
 * Untracking happens in end_io (any context): an IRQ-safe spinlock, and a
 * wake-up only when somebody waits.
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/lock.h>
#include <dmxx/wait.h>

#include "format.h"

namespace dmxx::snap {

class TrackedChunks {
public:
	/*
	 * Per-bio. next/pprev are the list's (neighbours rewrite them under the
	 * lock); tracked is the bio's own, read unlocked by its end_io.
	 */
	struct Node {
		Node *next;
		Node **pprev;
		chunk_t chunk;
		bool tracked;
	};

	static void init_node(Node *n) { n->tracked = false; }
	static bool is_tracked(const Node *n) { return n->tracked; }

	void track(Node *n, chunk_t chunk)
	{
		n->chunk = chunk;
		n->tracked = true;
		IrqGuard g(m_lock);
		Node **head = &m_slots[slot(chunk)];
		n->next = *head;
		if (*head)
			(*head)->pprev = &n->next;
		*head = n;
		n->pprev = head;
	}

	void untrack(Node *n)
	{
		bool wake;
		{
			IrqGuard g(m_lock);
			*n->pprev = n->next;
			if (n->next)
				n->next->pprev = n->pprev;
			n->tracked = false;
			wake = m_waiters != 0;
		}
		if (wake)
			m_drained.wake_all();
	}

	bool busy(chunk_t chunk)
	{
		IrqGuard g(m_lock);
		return busy_locked(chunk);
	}

	/* Sleep until no tracked I/O touches @chunk. No lock may be held. */
	void wait_idle(chunk_t chunk)
	{
		if (!busy(chunk))
			return;
		{
			IrqGuard g(m_lock);
			m_waiters++;
		}
		m_drained.wait([&] { return !busy(chunk); });
		IrqGuard g(m_lock);
		m_waiters--;
	}

private:
	static constexpr unsigned nr_slots = 16;
	static unsigned slot(chunk_t c) { return unsigned(c & (nr_slots - 1)); }

	bool busy_locked(chunk_t chunk) const
	{
		for (Node *n = m_slots[slot(chunk)]; n; n = n->next)
			if (n->chunk == chunk)
				return true;
		return false;
	}

	SpinLock m_lock;
	Node *m_slots[nr_slots] = {};
	unsigned m_waiters = 0; /* guarded by m_lock */
	WaitQueue m_drained;
};

} // namespace dmxx::snap
