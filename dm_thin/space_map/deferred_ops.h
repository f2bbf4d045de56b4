/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Count changes the metadata space map could not apply when they were asked
 * for, because it was already in the middle of changing its own structures.
 *
 * Changing a bitmap or the overflow btree shadows blocks, and shadowing asks
 * the same space map for a new block and drops a count on the old one. Doing
 * those while the outer change is half done would re-enter it, so they are
 * queued here and applied when the outermost operation finishes (applying
 * them may queue a few more; that converges because a block already
 * shadowed in this transaction is written in place).
 *
 * The queue is a fixed ring allocated once: nothing allocates memory while
 * the metadata map is recursing, and a runaway recursion fails with -ENOMEM
 * instead of growing without bound. How deep it gets is bounded by one
 * operation's btree shadowing, not by the transaction's size.
 */
#pragma once

#include <dmxx/new.h>
#include <dmxx/result.h>

#include "persistent/space_map.h"

namespace dmxx::pdata {

struct BlockOp {
	enum class Kind : u8 { Inc, Dec };
	block_t begin;
	block_t end; /* exclusive */
	Kind kind;
};

class DeferredOps {
public:
	/* The kernel's MAX_RECURSIVE_ALLOCATIONS; a ring of this many is ~24 KiB. */
	static constexpr u32 default_capacity = 1024;

	DeferredOps() = default;
	~DeferredOps() { delete[] m_ops; }
	DeferredOps(const DeferredOps &) = delete;
	DeferredOps &operator=(const DeferredOps &) = delete;

	Result<void> init(u32 capacity)
	{
		/* One slot stays empty so that full and empty differ. */
		m_ops = new (AllocMode::Sleep) BlockOp[capacity + 1];
		if (!m_ops)
			return err(ENOMEM);
		m_slots = capacity + 1;
		m_head = m_tail = 0;
		m_high_water = 0;
		return {};
	}

	bool empty() const { return m_head == m_tail; }
	u32 size() const { return m_tail >= m_head ? m_tail - m_head : m_tail + m_slots - m_head; }
	/* The deepest the queue has been since init (for tests and diagnostics). */
	u32 high_water() const { return m_high_water; }

	Result<void> push(BlockOp::Kind kind, block_t begin, block_t end)
	{
		u32 next = advance(m_tail);
		if (next == m_head)
			return err(ENOMEM);
		m_ops[m_tail] = BlockOp{begin, end, kind};
		m_tail = next;
		if (size() > m_high_water)
			m_high_water = size();
		return {};
	}

	const BlockOp &front() const { return m_ops[m_head]; }
	void pop() { m_head = advance(m_head); }
	/*
	 * The front op's first block has been applied: drop just that block.
	 * Applying a range one block at a time keeps the rest of it counted
	 * here (adjustment(), has_inc()) until its bitmap says so.
	 */
	void consume_first_block()
	{
		BlockOp &op = m_ops[m_head];
		if (++op.begin >= op.end)
			pop();
	}
	void clear() { m_head = m_tail = 0; }

	/* Net change the queued ops will make to @b's count. */
	s64 adjustment(block_t b) const
	{
		s64 adj = 0;
		for (u32 i = m_head; i != m_tail; i = advance(i)) {
			const BlockOp &op = m_ops[i];
			if (b >= op.begin && b < op.end)
				adj += op.kind == BlockOp::Kind::Inc ? 1 : -1;
		}
		return adj;
	}

	/* Is an increment of @b waiting? Such a block is taken even though its bitmap says 0. */
	bool has_inc(block_t b) const
	{
		for (u32 i = m_head; i != m_tail; i = advance(i)) {
			const BlockOp &op = m_ops[i];
			if (op.kind == BlockOp::Kind::Inc && b >= op.begin && b < op.end)
				return true;
		}
		return false;
	}

private:
	u32 advance(u32 i) const { return i + 1 == m_slots ? 0 : i + 1; }

	BlockOp *m_ops = nullptr;
	u32 m_slots = 0;
	u32 m_head = 0;
	u32 m_tail = 0;
	u32 m_high_water = 0;
};

} // namespace dmxx::pdata
