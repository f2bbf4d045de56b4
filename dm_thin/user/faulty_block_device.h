/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A block device that crashes on demand (userspace only), for crash-consistency tests.
 *
 * Why: the commit protocol's promise is "a crash at any write leaves the
 * last committed transaction intact". The only convincing test is to crash
 * at every write of a commit in turn and reopen. This wrapper counts writes
 * and, after the k-th, stops them (silently, like power loss, or with -EIO,
 * like a dying disk). It can also model a volatile write cache: writes are
 * held until a flush, and at the crash the unflushed ones are lost, kept, or
 * a random subset survives (what a real disk cache may do, in any order).
 *
 * Typical use (see tests/unit/persistent/test_transaction.cpp):
 *
 *   for (u64 k = 0;; k++) {
 *           auto disk = committed_image.clone();        // MemBlockDevice
 *           FaultyBlockDevice dev(*disk);
 *           dev.set_volatile_cache(true);
 *           dev.crash_after_writes(k, CrashMode::Silent);
 *           run_transaction_and_commit(dev);            // errors ignored after a crash
 *           bool crashed = dev.crashed();
 *           dev.power_cycle(Unflushed::RandomSubset, seed);  // what survived is now in *disk
 *           reopen(*disk) and check it equals the old or (if no crash) the new state;
 *           if (!crashed) break;
 *   }
 *
 * Thread-safe (one mutex). Not owned: the inner device must outlive this.
 */
#pragma once

#include <map>
#include <mutex>
#include <vector>

#include "persistent/block_device.h"

namespace dmxx::pdata {

enum class CrashMode {
	Silent,   /* writes and flushes after the crash "succeed" and are dropped */
	ReturnEIO /* they fail with -EIO (reads still work) */
};

/* What happens to writes that were not flushed when the power goes. */
enum class Unflushed {
	Lost,
	Kept,
	RandomSubset /* each survives with probability 1/2 (seeded, reproducible) */
};

class FaultyBlockDevice final : public BlockDevice {
public:
	explicit FaultyBlockDevice(BlockDevice &inner);

	Result<block_t> nr_blocks() override;
	Result<void> read(block_t b, void *buf) override;
	Result<void> write(block_t b, const void *buf) override;
	Result<void> flush() override;

	/*
	 * Let @n more writes through, then crash: the (n+1)-th write and every
	 * write and flush after it are dropped (or fail, per @mode). n = 0
	 * crashes at the next write.
	 */
	void crash_after_writes(u64 n, CrashMode mode);
	/* Crash now. */
	void crash_now(CrashMode mode);
	bool crashed() const;
	/* Never crash (the default). */
	void disarm();

	/*
	 * Hold writes in a volatile cache until flush() (reads see them). Off
	 * by default: then every write that returned is durable.
	 */
	void set_volatile_cache(bool on);

	/*
	 * The power comes back: unflushed writes are resolved per @policy into
	 * the inner device, the crash is cleared and the counters reset. After
	 * this the inner device holds exactly what a real disk would.
	 */
	void power_cycle(Unflushed policy, u64 seed = 0);

	/* Writes and flushes accepted since construction or the last power_cycle(). */
	u64 nr_writes() const;
	u64 nr_flushes() const;
	u64 nr_reads() const;
	/* Writes dropped or failed because of the crash. */
	u64 nr_lost_writes() const;

	/* Fail reads of one block with -EIO (tests of error paths); NO_BLOCK to stop. */
	void fail_reads_of(block_t b);

private:
	BlockDevice &m_inner;
	mutable std::mutex m_lock;
	bool m_armed = false;
	bool m_crashed = false;
	u64 m_crash_budget = 0;
	CrashMode m_mode = CrashMode::Silent;
	bool m_volatile = false;
	/* Unflushed writes, in order (a block may appear more than once). */
	std::vector<std::pair<block_t, std::vector<u8>>> m_pending;
	/* Latest unflushed contents per block, for reads. */
	std::map<block_t, size_t> m_latest;
	u64 m_writes = 0, m_flushes = 0, m_reads = 0, m_lost = 0;
	block_t m_fail_read = ~block_t(0);
};

} // namespace dmxx::pdata
