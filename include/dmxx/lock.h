/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Lock types and RAII guards over the platform's locks.
 *
 * The guard is the only way the core takes a lock, so every unlock is on
 * scope exit and early returns cannot leak a held lock. Declare owning
 * pointers before the guard so their frees run after the unlock.
 */
#pragma once

#include <dmxx/platform.h>

namespace dmxx {

class SpinLock {
public:
	SpinLock() { dmxx_spin_init(&m_lock); }
	SpinLock(const SpinLock &) = delete;
	SpinLock &operator=(const SpinLock &) = delete;
	void lock() { dmxx_spin_lock(&m_lock); }
	void unlock() { dmxx_spin_unlock(&m_lock); }
	unsigned long lock_irqsave() { return dmxx_spin_lock_irqsave(&m_lock); }
	void unlock_irqrestore(unsigned long flags) { dmxx_spin_unlock_irqrestore(&m_lock, flags); }

private:
	dmxx_spinlock m_lock;
};

class Mutex {
public:
	Mutex() { dmxx_mutex_init(&m_lock); }
	~Mutex() { dmxx_mutex_destroy(&m_lock); }
	Mutex(const Mutex &) = delete;
	Mutex &operator=(const Mutex &) = delete;
	void lock() { dmxx_mutex_lock(&m_lock); }
	void unlock() { dmxx_mutex_unlock(&m_lock); }

private:
	dmxx_mutex m_lock;
};

class RwSem {
public:
	RwSem() { dmxx_rwsem_init(&m_sem); }
	~RwSem() { dmxx_rwsem_destroy(&m_sem); }
	RwSem(const RwSem &) = delete;
	RwSem &operator=(const RwSem &) = delete;
	void lock_shared() { dmxx_down_read(&m_sem); }
	void unlock_shared() { dmxx_up_read(&m_sem); }
	bool try_lock_shared() { return dmxx_down_read_trylock(&m_sem) != 0; }
	void lock() { dmxx_down_write(&m_sem); }
	void unlock() { dmxx_up_write(&m_sem); }

private:
	dmxx_rwsem m_sem;
};

/* Holds any lock with lock()/unlock() for its scope. */
template <typename L> class [[nodiscard]] Guard {
public:
	explicit Guard(L &l) : m_lock(l) { m_lock.lock(); }
	~Guard() { m_lock.unlock(); }
	Guard(const Guard &) = delete;
	Guard &operator=(const Guard &) = delete;

private:
	L &m_lock;
};

template <typename L> class [[nodiscard]] SharedGuard {
public:
	explicit SharedGuard(L &l) : m_lock(l) { m_lock.lock_shared(); }
	~SharedGuard() { m_lock.unlock_shared(); }
	SharedGuard(const SharedGuard &) = delete;
	SharedGuard &operator=(const SharedGuard &) = delete;

private:
	L &m_lock;
};

/* Spinlock held with interrupts off: for state shared with end_io. */
class [[nodiscard]] IrqGuard {
public:
	explicit IrqGuard(SpinLock &l) : m_lock(l), m_flags(l.lock_irqsave()) {}
	~IrqGuard() { m_lock.unlock_irqrestore(m_flags); }
	IrqGuard(const IrqGuard &) = delete;
	IrqGuard &operator=(const IrqGuard &) = delete;

private:
	SpinLock &m_lock;
	unsigned long m_flags;
};

} // namespace dmxx
