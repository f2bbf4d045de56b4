/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Atomics on the compiler's __atomic builtins: identical code in the kernel
 * and in userspace (where TSan understands them), no <atomic> needed.
 * Relaxed for statistics, acquire/release for hand-offs; say which.
 */
#pragma once

namespace dmxx {

enum class Order : int {
	Relaxed = __ATOMIC_RELAXED,
	Acquire = __ATOMIC_ACQUIRE,
	Release = __ATOMIC_RELEASE,
	AcqRel = __ATOMIC_ACQ_REL,
	SeqCst = __ATOMIC_SEQ_CST,
};

template <typename T> class Atomic {
public:
	constexpr Atomic() : m_v() {}
	constexpr explicit Atomic(T v) : m_v(v) {}
	Atomic(const Atomic &) = delete;
	Atomic &operator=(const Atomic &) = delete;

	T load(Order o = Order::SeqCst) const { return __atomic_load_n(&m_v, int(o)); }
	void store(T v, Order o = Order::SeqCst) { __atomic_store_n(&m_v, v, int(o)); }
	T fetch_add(T d, Order o = Order::SeqCst) { return __atomic_fetch_add(&m_v, d, int(o)); }
	T fetch_sub(T d, Order o = Order::SeqCst) { return __atomic_fetch_sub(&m_v, d, int(o)); }
	T exchange(T v, Order o = Order::SeqCst) { return __atomic_exchange_n(&m_v, v, int(o)); }
	bool compare_exchange(T &expected, T desired, Order o = Order::SeqCst)
	{
		return __atomic_compare_exchange_n(&m_v, &expected, desired, false, int(o),
						   int(o == Order::AcqRel || o == Order::Release
							       ? Order::Acquire
							       : o));
	}

private:
	T m_v;
};

/*
 * READ_ONCE/WRITE_ONCE with an order: for a plain field that lock-free
 * readers load while writers (serialised by a lock) store. Every store to
 * such a field goes through store_once; reads under the writers' lock may
 * stay plain.
 */
template <typename T> T load_once(const T *p, Order o) { return __atomic_load_n(p, int(o)); }
template <typename T> void store_once(T *p, T v, Order o) { __atomic_store_n(p, v, int(o)); }

} // namespace dmxx
