/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Per-CPU state without shared cache lines: a counter that every CPU bumps,
 * and the cache-line-aligned memory such state lives in.
 *
 * Why: a counter that every allocation increments is one cache line that
 * each CPU must own exclusively to write; with two CPUs allocating, the line
 * moves on every increment and the counter costs more than the allocation
 * (measured: BioSet's allocs counter, bench_bioset). So each CPU writes its
 * own line and a reader sums them. The CPU comes from dmxx_this_cpu(), a hint
 * that may be stale: two CPUs can meet on one slot, so slots are updated
 * with atomic adds (relaxed: nothing is published through a counter).
 */
#pragma once

#include <dmxx/atomic.h>
#include <dmxx/placement.h>
#include <dmxx/platform.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

namespace dmxx {

/* x86-64 and arm64 both move memory between CPUs in 64-byte lines. */
inline constexpr usize cache_line_bytes = 64;

constexpr usize round_up_to_line(usize n)
{
	return (n + cache_line_bytes - 1) & ~(cache_line_bytes - 1);
}

/*
 * Zeroed memory starting on a cache line. dmxx_alloc promises only
 * pointer alignment (kmalloc's minimum, malloc's 16 bytes), so this
 * over-allocates by a line less one byte and rounds the start up.
 */
class CacheAlignedMemory {
public:
	CacheAlignedMemory() = default;
	~CacheAlignedMemory() { dmxx_free(m_raw); }
	CacheAlignedMemory(const CacheAlignedMemory &) = delete;
	CacheAlignedMemory &operator=(const CacheAlignedMemory &) = delete;

	Result<void> init(usize bytes)
	{
		m_raw = dmxx_zalloc(bytes + cache_line_bytes - 1, DMXX_ALLOC_SLEEP);
		if (!m_raw)
			return err(ENOMEM);
		m_base = reinterpret_cast<u8 *>(round_up_to_line(reinterpret_cast<uptr>(m_raw)));
		return {};
	}
	u8 *get() const { return m_base; }

private:
	void *m_raw = nullptr;
	u8 *m_base = nullptr;
};

/*
 * A statistics counter: add() touches only this CPU's slot; sum() reads all
 * slots, and is exact once the adders are done (tests compare it exactly
 * after joining their threads). Between those points it is a moment's
 * approximation, as the kernel's percpu_counter_sum() is.
 */
class PercpuCounter {
public:
	/*
	 * At most this many slots: CPUs beyond share them (still correct, the
	 * adds are atomic), so a machine with thousands of possible CPUs does
	 * not cost each counter a large allocation.
	 */
	static constexpr unsigned max_slots = 64;

	PercpuCounter() = default;
	PercpuCounter(const PercpuCounter &) = delete;
	PercpuCounter &operator=(const PercpuCounter &) = delete;

	Result<void> init()
	{
		unsigned cpus = dmxx_nr_cpus();
		unsigned n = cpus == 0 ? 1 : cpus < max_slots ? cpus : max_slots;
		TRY(m_mem.init(sizeof(Slot) * n));
		m_slots = reinterpret_cast<Slot *>(m_mem.get());
		for (unsigned i = 0; i < n; i++)
			new (in_place, &m_slots[i]) Slot;
		m_nr = n;
		return {};
	}

	void add(u64 delta)
	{
		unsigned cpu = dmxx_this_cpu();
		m_slots[cpu < m_nr ? cpu : cpu % m_nr].value.fetch_add(delta, Order::Relaxed);
	}

	u64 sum() const
	{
		u64 total = 0;
		for (unsigned i = 0; i < m_nr; i++)
			total += m_slots[i].value.load(Order::Relaxed);
		return total;
	}

private:
	struct alignas(cache_line_bytes) Slot {
		Atomic<u64> value{0};
	};
	static_assert(sizeof(Slot) == cache_line_bytes, "one slot per cache line");

	CacheAlignedMemory m_mem;
	Slot *m_slots = nullptr;
	unsigned m_nr = 0;
};

} // namespace dmxx
