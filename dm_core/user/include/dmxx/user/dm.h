/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The userspace device-mapper model: target registry, tables, and mapped
 * devices, following drivers/md/dm.c and dm-table.c (Linux 6.1) closely
 * enough that a target behaves here as it does in the kernel:
 *
 *  - a table is "start len target args..." lines; targets are looked up
 *    by name in the registry (dmxx_register_target), constructed in order
 *    with ti->error preset to "Unknown error", and a failed load destroys
 *    what it built and changes nothing;
 *  - after construction every device area reported by iterate_devices is
 *    checked against its device's size and logical block size;
 *  - bios are split at target boundaries and max_io_len; each piece is a
 *    clone with the target's per-bio data in front of it; map results are
 *    acted on as DM does (REMAPPED: submit, SUBMITTED: the target owns it,
 *    KILL: IOERR, REQUEUE: push back and retry); end_io is called per clone;
 *  - PREFLUSH is sent as empty flush clones (num_flush_bios per target),
 *    then the data part, without PREFLUSH; discards and write-zeroes go to
 *    targets with num_*_bios clones each, or fail with NOTSUPP;
 *  - suspend runs presuspend, blocks new bios (they are deferred), waits for
 *    in-flight ones, runs postsuspend; resume swaps in a loaded table,
 *    runs preresume/resume, and reissues deferred bios.
 *
 * Not modelled yet: zoned devices, integrity, io_hints/queue limits beyond
 * the logical block size, table events waited on by userspace.
 */
#pragma once

#include <dmxx/user/block.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dmxx::user {

struct DmTable;

/* What a dmsetup command would report: 0 or -errno, and DM's reason. */
struct DmResult {
	int code = 0;
	std::string error; /* ti->error for a constructor failure, else the model's reason */
	bool ok() const { return code == 0; }
};

class DmDevice final : public block_device {
public:
	/* `dmsetup create NAME --table TABLE`: nullptr (and nothing left behind) on failure. */
	static std::unique_ptr<DmDevice> create(const std::string &name, const std::string &table,
						DmResult *result = nullptr);
	/* `dmsetup create NAME --notable`. */
	static std::unique_ptr<DmDevice> create_empty(const std::string &name, DmResult *result = nullptr);
	/* `dmsetup remove`: waits for in-flight I/O; fatal if a table still holds the device open. */
	~DmDevice() override;

	/*
	 * `dmsetup load`: builds the inactive table; on failure nothing changes.
	 *
	 * The device's type is bound by the first successful load, atomically
	 * with publishing that table as the inactive one; a later load of a
	 * table of another type fails with -EINVAL and changes nothing. The
	 * model's type: "bio-based" or "bio-based-immutable" (a target with
	 * DMXX_TARGET_IMMUTABLE) and the table's per-bio-data size, which
	 * fixes the size of the device's clone front pad. The device's
	 * type-dependent resources are allocated (a blocking allocation)
	 * before the exclusive publication lock is taken, never under it: the
	 * lock is a spinlock, so the may-sleep checker would report it.
	 */
	DmResult load(const std::string &table);
	/* "none" until the first load, then e.g. "bio-based pdata=16". */
	std::string type_name() const;
	/* Test only: do the type setup allocation under the publication lock (wrong). */
	void set_setup_under_lock_for_test(bool on) { m_setup_under_lock = on; }
	void clear_inactive();
	DmResult suspend(bool noflush = false);
	DmResult resume();
	bool suspended() const;
	bool has_inactive() const;

	/* `dmsetup status` / `dmsetup table`: "start len type result" lines joined by '\n'. */
	std::string status(int type = DMXX_STATUSTYPE_INFO, unsigned flags = 0);
	/* The targets' own result strings, in table order. */
	std::vector<std::string> target_status(int type, unsigned flags = 0, unsigned maxlen = 4096);
	/* `dmsetup message NAME SECTOR ARGS...`. */
	DmResult message(sector_t sector, const std::string &msg, std::string *result = nullptr);

	struct DevArea {
		std::string dev; /* dmxx_dm_dev_name() */
		sector_t start;
		sector_t len;
	};
	/* iterate_devices of target @index of the active table. */
	std::vector<DevArea> iterate_devices(unsigned index);
	unsigned num_targets();
	/* The active table's target @index (for inspecting ti fields in tests). */
	dm_target *target(unsigned index);
	uint64_t event_nr() const { return m_events.load(); }
	/* The device's worker (kdmflush): deferred bios are processed here. */
	dmxx_workqueue *workqueue() const { return m_wq; }
	/* The work item that runs the deferred list on workqueue(). */
	const void *deferred_work_item() const { return &m_work.work; }

	void submit(bio *b) override;

	/* Model internals, used by the I/O path. */
	struct Io;
	void io_done(Io *io);
	void table_event() { m_events.fetch_add(1); }

private:
	DmDevice(const std::string &name, unsigned minor);
	void process(DmTable *t, bio *b);
	void defer(bio *b, bool at_head);
	void kick();
	static void deferred_work(dmxx_work *w);
	void run_deferred();
	DmResult do_suspend(bool noflush);
	DmResult resume_locked(DmTable **old);

	mutable std::mutex m_suspend_lock; /* md->suspend_lock: table changes, suspend, resume */
	mutable std::mutex m_lock;         /* state below */
	std::condition_variable m_idle;
	DmTable *m_active = nullptr;
	mutable dmxx_spinlock m_publish;  /* _hash_lock: m_inactive and the type binding */
	DmTable *m_inactive = nullptr;    /* guarded by m_publish */
	bool m_type_bound = false;        /* guarded by m_publish */
	bool m_type_immutable = false;
	unsigned m_type_pdata = 0;
	void *m_type_setup = nullptr;     /* the type's resources, allocated at binding */
	bool m_setup_under_lock = false;
	bool m_blocked = false;   /* new bios are deferred */
	bool m_suspended = false;
	bool m_delay = false;     /* DELAY_REQUEUE pending */
	unsigned m_in_flight = 0;
	bio *m_deferred_head = nullptr;
	bio *m_deferred_tail = nullptr;
	std::atomic<uint64_t> m_events{0};
	dmxx_workqueue *m_wq = nullptr;
	struct DeferredWork {
		dmxx_work work; /* first: the work function casts back */
		DmDevice *md;
	} m_work;
};

} // namespace dmxx::user
