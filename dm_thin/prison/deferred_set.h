/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A deferred set: run work only after every I/O that was in flight when the
 * work was queued has finished.
 *
 * dm-thin needs this twice. Before a write's new mapping replaces a shared
 * block, reads already issued to the old block must finish, or the block
 * could be freed and reused under them. Before a discard unmaps a range,
 * I/O already remapped into it must finish. Later I/O does not matter: it
 * was mapped after the cell went up and sees the new state.
 *
 * I/O is counted in generations. add_work() parks the work on the current
 * generation and opens the next one, so I/O started afterwards is counted
 * apart; the work becomes ready once its generation and every older one
 * have drained. Generations live in a ring; when it is full the current
 * generation stays open, which only makes later work wait for more I/O
 * than it must, never less.
 *
 * inc() runs on the map path, dec() in bio completion: the lock is taken
 * with interrupts off, and ready work is handed back to the caller rather
 * than run under it.
 */
#pragma once

#include <dmxx/lock.h>
#include <dmxx/types.h>

namespace dmxx::thin {

/* Embedded in the caller's work item (a mapping, a discard job). */
struct DeferredWork {
	DeferredWork *next = nullptr;
};

/* A FIFO of work items. */
struct DeferredWorkList {
	DeferredWork *head = nullptr;
	DeferredWork *tail = nullptr;

	bool empty() const { return head == nullptr; }
	void push(DeferredWork *w)
	{
		w->next = nullptr;
		if (tail)
			tail->next = w;
		else
			head = w;
		tail = w;
	}
	DeferredWork *pop()
	{
		DeferredWork *w = head;
		if (w) {
			head = w->next;
			if (!head)
				tail = nullptr;
			w->next = nullptr;
		}
		return w;
	}
	/* Append all of @o; @o ends empty. */
	void splice(DeferredWorkList &o)
	{
		if (!o.head)
			return;
		if (tail)
			tail->next = o.head;
		else
			head = o.head;
		tail = o.tail;
		o.head = o.tail = nullptr;
	}
};

class DeferredSet {
public:
	static constexpr unsigned kGenerations = 64;

	/* What an I/O keeps (in its per-bio data) between inc() and dec(): its generation. */
	class Entry {
		friend class DeferredSet;
		unsigned in_flight = 0;
		DeferredWorkList work; /* waits for this and every older generation */
	};

	DeferredSet() = default;
	DeferredSet(const DeferredSet &) = delete;
	DeferredSet &operator=(const DeferredSet &) = delete;

	/* Count one I/O in the current generation. Never fails, never sleeps. */
	Entry *inc();

	/*
	 * The I/O counted by inc() has finished. Work that became ready is
	 * appended to @ready, in the order it was added; the caller runs it.
	 */
	void dec(Entry *entry, DeferredWorkList &ready);

	/*
	 * Queue @work behind every I/O in flight now. Returns false if there is
	 * none: @work was not queued and the caller runs it at once.
	 */
	bool add_work(DeferredWork *work);

	/* I/O counted and not yet finished (for tests and status). */
	unsigned in_flight() const;

private:
	static unsigned next(unsigned g) { return (g + 1) % kGenerations; }
	void collect_ready(DeferredWorkList &ready);

	mutable SpinLock m_lock;
	/* Generations m_oldest..m_current (ring order) are live; the others idle and empty. */
	unsigned m_oldest = 0;
	unsigned m_current = 0;
	Entry m_gens[kGenerations];
};

} // namespace dmxx::thin
