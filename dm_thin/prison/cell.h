/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A bio-prison cell: the lock on one key, the bio that holds it and the
 * bios waiting behind it.
 *
 * The prison never allocates a cell. The caller owns the memory and hands
 * it in with each detain: a slot in the bio's per-bio data for cells a bio
 * holds, or a slot in a structure the worker preallocated before touching
 * the prison (a mapping, a discard job) for cells with no holder bio. So a
 * path that holds one cell can never wait for the memory of a second one:
 * the 2013 dm-thin deadlock (taking a second cell from the mempool that the
 * first came from) has no pool to happen in.
 *
 * A cell's memory is the prison's from the detain that links it until the
 * release that unlinks it; the caller must not reuse it in between.
 */
#pragma once

#include <dmxx/platform.h>
#include <dmxx/types.h>

#include "cell_key.h"

namespace dmxx::thin {

class CellTree;
class BioPrison;

class Cell {
public:
	Cell() = default;
	Cell(const Cell &) = delete;
	Cell &operator=(const Cell &) = delete;

	const CellKey &key() const { return m_key; }
	/* The bio that holds the cell; nullptr for a cell taken without one. */
	bio *holder() const { return m_holder; }
	/* In a prison right now. Only meaningful to whoever owns the cell. */
	bool linked() const { return m_height != 0; }

	/*
	 * The client's own link, for queueing cells it owns (deferred cells,
	 * cells waiting for a commit). The prison never touches it.
	 */
	Cell *client_next = nullptr;

private:
	friend class CellTree;
	friend class BioPrison;

	/* Tree links; a cell is linked iff m_height != 0. */
	Cell *m_left = nullptr;
	Cell *m_right = nullptr;
	Cell *m_parent = nullptr;
	CellKey m_key = {};
	u8 m_height = 0;
	bio *m_holder = nullptr;
	dmxx_bio_list m_inmates = {}; /* in arrival order */
};

} // namespace dmxx::thin
