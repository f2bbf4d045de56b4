/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The porting interface: everything the portable core needs from its host.
 *
 * This header is plain C so that both platforms can implement it:
 *   - dm_core/kernel/  C glue over kernel APIs, compiled by kbuild;
 *   - dm_core/user/    pthreads and in-memory block devices, for tests.
 * The core includes this and nothing platform-specific. Hot-path accessors
 * (bio fields, dm_target fields) are inline and live in <dmxx/impl/...>,
 * which the include path resolves to the platform being built; in the
 * kernel they read struct offsets generated from the kernel headers at
 * build time, so a bio field costs one load, not a call.
 *
 * Objects with platform-defined layout (locks, wait queues, work items) are
 * embedded in core objects as opaque storage whose size and alignment come
 * from the impl header; each platform checks at build time that its real
 * type fits.
 */
#ifndef DMXX_PLATFORM_H
#define DMXX_PLATFORM_H

#include <dmxx/impl/platform_config.h>

#ifdef __cplusplus
extern "C" {
#define DMXX_NOEXCEPT noexcept
#define DMXX_ALIGNAS(n) alignas(n)
#else
#define DMXX_NOEXCEPT
#define DMXX_ALIGNAS(n) _Alignas(n)
#endif

/* Kernel types the core handles only by pointer. */
struct bio;
struct block_device;
struct dm_dev;
struct dm_target;
struct queue_limits;

/* ---- allocation --------------------------------------------------------- */

/* How an allocation may block; each platform maps these to its own flags. */
enum dmxx_alloc_mode {
	DMXX_ALLOC_SLEEP = 0,  /* GFP_KERNEL */
	DMXX_ALLOC_NOIO = 1,   /* GFP_NOIO */
	DMXX_ALLOC_NOWAIT = 2, /* GFP_NOWAIT | __GFP_NOWARN */
	DMXX_ALLOC_ATOMIC = 3, /* GFP_ATOMIC | __GFP_NOWARN */
};

/* Returns NULL on failure; never panics, never retries forever. */
void *dmxx_alloc(unsigned long size, enum dmxx_alloc_mode mode) DMXX_NOEXCEPT;
void *dmxx_zalloc(unsigned long size, enum dmxx_alloc_mode mode) DMXX_NOEXCEPT;
void dmxx_free(const void *p) DMXX_NOEXCEPT;

/* ---- logging and formatting --------------------------------------------- */

enum dmxx_log_level { DMXX_LOG_ERR = 3, DMXX_LOG_WARN = 4, DMXX_LOG_INFO = 6, DMXX_LOG_DEBUG = 7 };

/* Prefixed "device-mapper: dmxx: " in the kernel log. */
void dmxx_log(enum dmxx_log_level level, const char *fmt, ...) DMXX_NOEXCEPT
	__attribute__((format(printf, 2, 3)));

/* vsnprintf semantics: returns the length that would have been written. */
int dmxx_vsnprintf(char *buf, unsigned long size, const char *fmt, __builtin_va_list args) DMXX_NOEXCEPT
	__attribute__((format(printf, 3, 0)));
int dmxx_snprintf(char *buf, unsigned long size, const char *fmt, ...) DMXX_NOEXCEPT
	__attribute__((format(printf, 3, 4)));

/*
 * A broken internal invariant (never user input): stop loudly. Not declared
 * noreturn: objtool cannot see across objects that it does not return, and
 * would reject the caller's missing epilogue.
 */
void dmxx_fatal(const char *why) DMXX_NOEXCEPT;

/* ---- locks -------------------------------------------------------------- */
/*
 * Opaque, embeddable storage. A spinlock holder must not sleep; a mutex or
 * rwsem holder may. C++ code uses the RAII wrappers in <dmxx/lock.h>.
 */
struct dmxx_spinlock {
	DMXX_ALIGNAS(DMXX_LOCK_ALIGN) unsigned char opaque[DMXX_SPINLOCK_SIZE];
};
struct dmxx_mutex {
	DMXX_ALIGNAS(DMXX_LOCK_ALIGN) unsigned char opaque[DMXX_MUTEX_SIZE];
};
struct dmxx_rwsem {
	DMXX_ALIGNAS(DMXX_LOCK_ALIGN) unsigned char opaque[DMXX_RWSEM_SIZE];
};

void dmxx_spin_init(struct dmxx_spinlock *l) DMXX_NOEXCEPT;
void dmxx_spin_lock(struct dmxx_spinlock *l) DMXX_NOEXCEPT;
void dmxx_spin_unlock(struct dmxx_spinlock *l) DMXX_NOEXCEPT;
/* IRQ-safe variants for locks shared with bio completion (end_io) context. */
unsigned long dmxx_spin_lock_irqsave(struct dmxx_spinlock *l) DMXX_NOEXCEPT;
void dmxx_spin_unlock_irqrestore(struct dmxx_spinlock *l, unsigned long flags) DMXX_NOEXCEPT;

void dmxx_mutex_init(struct dmxx_mutex *m) DMXX_NOEXCEPT;
void dmxx_mutex_destroy(struct dmxx_mutex *m) DMXX_NOEXCEPT;
void dmxx_mutex_lock(struct dmxx_mutex *m) DMXX_NOEXCEPT;
void dmxx_mutex_unlock(struct dmxx_mutex *m) DMXX_NOEXCEPT;

void dmxx_rwsem_init(struct dmxx_rwsem *s) DMXX_NOEXCEPT;
void dmxx_rwsem_destroy(struct dmxx_rwsem *s) DMXX_NOEXCEPT;
void dmxx_down_read(struct dmxx_rwsem *s) DMXX_NOEXCEPT;
void dmxx_up_read(struct dmxx_rwsem *s) DMXX_NOEXCEPT;
/* Nonzero if taken for read at once; never sleeps (completion paths use it). */
int dmxx_down_read_trylock(struct dmxx_rwsem *s) DMXX_NOEXCEPT;
void dmxx_down_write(struct dmxx_rwsem *s) DMXX_NOEXCEPT;
void dmxx_up_write(struct dmxx_rwsem *s) DMXX_NOEXCEPT;

/*
 * Debug check behind the rule "never sleep holding a spinlock": each
 * platform's sleeping primitives assert this. Returns nonzero if the
 * calling context may sleep (no spinlock held, not in atomic context).
 */
int dmxx_may_sleep(void) DMXX_NOEXCEPT;

/* ---- waiting ------------------------------------------------------------ */

struct dmxx_completion {
	DMXX_ALIGNAS(DMXX_LOCK_ALIGN) unsigned char opaque[DMXX_COMPLETION_SIZE];
};
void dmxx_completion_init(struct dmxx_completion *c) DMXX_NOEXCEPT;
void dmxx_completion_destroy(struct dmxx_completion *c) DMXX_NOEXCEPT;
void dmxx_complete(struct dmxx_completion *c) DMXX_NOEXCEPT;
void dmxx_complete_all(struct dmxx_completion *c) DMXX_NOEXCEPT;
void dmxx_wait_for_completion(struct dmxx_completion *c) DMXX_NOEXCEPT;
/* Returns 0 on timeout, nonzero if completed. */
int dmxx_wait_for_completion_timeout_ms(struct dmxx_completion *c, unsigned ms) DMXX_NOEXCEPT;

/*
 * A wait queue: sleepers wait for a condition that wakers make true.
 * The core's wait_event() (see <dmxx/wait.h>) is written in terms of
 * prepare/sleep/finish so the condition is re-checked after each wakeup
 * and no lock is held while sleeping.
 */
struct dmxx_waitq {
	DMXX_ALIGNAS(DMXX_LOCK_ALIGN) unsigned char opaque[DMXX_WAITQ_SIZE];
};
struct dmxx_wait_entry {
	DMXX_ALIGNAS(DMXX_LOCK_ALIGN) unsigned char opaque[DMXX_WAIT_ENTRY_SIZE];
};
void dmxx_waitq_init(struct dmxx_waitq *q) DMXX_NOEXCEPT;
void dmxx_waitq_destroy(struct dmxx_waitq *q) DMXX_NOEXCEPT;
void dmxx_wake_up_all(struct dmxx_waitq *q) DMXX_NOEXCEPT;
void dmxx_wake_up_one(struct dmxx_waitq *q) DMXX_NOEXCEPT;
/* Once per wait, before the first prepare (init_wait()). */
void dmxx_wait_entry_init(struct dmxx_wait_entry *e) DMXX_NOEXCEPT;
/* Each iteration: queue @e if it is not queued yet, and mark the task as about to sleep. */
void dmxx_wait_prepare(struct dmxx_waitq *q, struct dmxx_wait_entry *e) DMXX_NOEXCEPT;
void dmxx_wait_sleep(struct dmxx_wait_entry *e) DMXX_NOEXCEPT;
void dmxx_wait_finish(struct dmxx_waitq *q, struct dmxx_wait_entry *e) DMXX_NOEXCEPT;

/* ---- deferred work ------------------------------------------------------ */

struct dmxx_work;
typedef void (*dmxx_work_fn)(struct dmxx_work *w);
struct dmxx_work {
	DMXX_ALIGNAS(DMXX_LOCK_ALIGN) unsigned char opaque[DMXX_WORK_SIZE];
};
struct dmxx_workqueue;

enum dmxx_wq_flags {
	DMXX_WQ_MEM_RECLAIM = 1 << 0, /* has a rescuer thread: may run under memory pressure */
	DMXX_WQ_HIGHPRI = 1 << 1,
	DMXX_WQ_UNBOUND = 1 << 2,
	DMXX_WQ_ORDERED = 1 << 3, /* one item at a time, in queueing order */
};

void dmxx_work_init(struct dmxx_work *w, dmxx_work_fn fn) DMXX_NOEXCEPT;
/* NULL on failure. */
struct dmxx_workqueue *dmxx_wq_create(const char *name, unsigned flags) DMXX_NOEXCEPT;
void dmxx_wq_destroy(struct dmxx_workqueue *wq) DMXX_NOEXCEPT; /* drains first */
/* Returns nonzero if queued, 0 if it was already pending. */
int dmxx_queue_work(struct dmxx_workqueue *wq, struct dmxx_work *w) DMXX_NOEXCEPT;
void dmxx_flush_workqueue(struct dmxx_workqueue *wq) DMXX_NOEXCEPT;

/* ---- CPUs --------------------------------------------------------------- */
/*
 * For spreading hot shared state (per-CPU counters, mempool shards) so that
 * CPUs do not write the same cache line. dmxx_this_cpu() is a hint: the
 * caller may be preempted or migrate right after reading it, so it selects
 * a slot, never an owner; code must stay correct whatever it returns.
 * It is below dmxx_nr_cpus(), which does not change while the module runs
 * (userspace tests may change it between pools: use the value seen at init
 * and take the hint modulo it).
 */
unsigned dmxx_this_cpu(void) DMXX_NOEXCEPT;
unsigned dmxx_nr_cpus(void) DMXX_NOEXCEPT;

/* ---- tasks -------------------------------------------------------------- */
/*
 * The calling task (kernel: current; userspace: the thread), as a nonzero
 * number no other live task has. For telling "held by someone else, wait"
 * from "held by me, waiting would never end" (block cache).
 */
unsigned long dmxx_current_task(void) DMXX_NOEXCEPT;

/* ---- time --------------------------------------------------------------- */

unsigned long long dmxx_now_ns(void) DMXX_NOEXCEPT; /* monotonic */
void dmxx_sleep_ms(unsigned ms) DMXX_NOEXCEPT;
void dmxx_cond_resched(void) DMXX_NOEXCEPT;

/* ---- checksums ---------------------------------------------------------- */

/*
 * CRC-32C (Castagnoli), the kernel's crc32c(seed, data, len): no pre- or
 * post-inversion, so callers pass the seed their format wants (persistent-data
 * seeds with ~0 and xors the result with a per-block-type salt). The kernel
 * glue uses the kernel's accelerated implementation.
 */
unsigned dmxx_crc32c(unsigned seed, const void *data, unsigned long len) DMXX_NOEXCEPT;

/* ---- bios and block devices --------------------------------------------- */
/* Field access is inline, in <dmxx/impl/bio_access.h>. */

void dmxx_submit_bio(struct bio *bio) DMXX_NOEXCEPT;     /* submit_bio_noacct */
void dmxx_bio_endio(struct bio *bio) DMXX_NOEXCEPT;      /* complete with bi_status */
unsigned long long dmxx_bdev_nr_sectors(struct block_device *bdev) DMXX_NOEXCEPT;
unsigned dmxx_bdev_logical_block_size(struct block_device *bdev) DMXX_NOEXCEPT;

/*
 * Large buffers (metadata areas, copy buffers, hash tables): kvmalloc() in the
 * kernel, so they need not be physically contiguous. NULL on failure. Bio
 * data may live in them (dmxx_bio_add_data).
 */
void *dmxx_kvalloc(unsigned long size, enum dmxx_alloc_mode mode) DMXX_NOEXCEPT;
void *dmxx_kvzalloc(unsigned long size, enum dmxx_alloc_mode mode) DMXX_NOEXCEPT;
void dmxx_kvfree(const void *p) DMXX_NOEXCEPT;
/*
 * Bio data from core memory: the vecs a bio needs to carry @len bytes at @buf
 * (memory from dmxx_alloc or dmxx_kvalloc: one vec per page touched), and
 * appending those bytes to a bio made by dmxx_bio_init with that many vecs
 * free. 0, or -EINVAL if the bio has no room for them.
 */
unsigned dmxx_bio_data_vecs(const void *buf, unsigned long len) DMXX_NOEXCEPT;
int dmxx_bio_add_data(struct bio *bio, void *buf, unsigned len) DMXX_NOEXCEPT;

/*
 * Bio memory and the submission context, for bio sets (bioset/).
 *
 * A bio set lays out [front pad][struct bio][inline vecs] itself, sized by
 * DMXX_BIO_STRUCT_SIZE and DMXX_BVEC_SIZE from the impl header, and initialises
 * the bio through the platform. Clones share the source's data.
 */
struct dmxx_bio_list {
	struct bio *head;
	struct bio *tail;
};

/*
 * The calling task's submission lists (current->bio_list): [0] holds bios
 * submitted at the level being processed, [1] those of the levels above,
 * still waiting. NULL when not inside bio submission.
 */
struct dmxx_bio_list *dmxx_current_bio_lists(void) DMXX_NOEXCEPT;
/* bio_init() with room for @max_vecs vecs at @vecs (inline storage). */
void dmxx_bio_init(struct bio *bio, struct block_device *bdev, void *vecs, unsigned short max_vecs,
		   unsigned opf) DMXX_NOEXCEPT;
/* Drops what the bio holds (cgroup and crypt references) before its memory is reused. */
void dmxx_bio_uninit(struct bio *bio) DMXX_NOEXCEPT;
/* @clone becomes a clone of @src (same data) for @bdev. 0 or -errno. */
int dmxx_bio_init_clone(struct bio *clone, struct bio *src, struct block_device *bdev,
			enum dmxx_alloc_mode mode) DMXX_NOEXCEPT;
/* Keep @size sectors starting @offset sectors into the bio's data. */
void dmxx_bio_trim(struct bio *bio, unsigned long long offset, unsigned long long size) DMXX_NOEXCEPT;

/* ---- device-mapper ------------------------------------------------------ */
/* Field access is inline, in <dmxx/impl/bio_access.h>. */

/* Open @path ("/dev/x" or "major:minor") for the table's mode. 0 or -errno. */
int dmxx_dm_get_device(struct dm_target *ti, const char *path, struct dm_dev **out) DMXX_NOEXCEPT;
void dmxx_dm_put_device(struct dm_target *ti, struct dm_dev *dev) DMXX_NOEXCEPT;
struct block_device *dmxx_dm_dev_bdev(struct dm_dev *dev) DMXX_NOEXCEPT;
/* "major:minor", as status lines print devices. */
const char *dmxx_dm_dev_name(struct dm_dev *dev) DMXX_NOEXCEPT;
/* @msg must outlive the table load: pass a string literal. */
void dmxx_ti_set_error(struct dm_target *ti, const char *msg) DMXX_NOEXCEPT;
const char *dmxx_ti_error(struct dm_target *ti) DMXX_NOEXCEPT;

/* Target capabilities set by the constructor (cold path). */
struct dmxx_ti_config {
	unsigned num_flush_bios;
	unsigned num_discard_bios;
	unsigned num_secure_erase_bios;
	unsigned num_write_zeroes_bios;
	unsigned per_io_data_size;
	unsigned max_io_len;      /* 0 = none */
	int flush_supported;
	int discards_supported;
};
/* 0 or -errno (max_io_len is validated by DM). */
int dmxx_ti_configure(struct dm_target *ti, const struct dmxx_ti_config *cfg) DMXX_NOEXCEPT;
/*
 * Which of the target's duplicate bios this is (dm_bio_get_target_bio_nr):
 * 0..num_flush_bios-1 for flushes, 0..num_discard_bios-1 for discards, else 0.
 */
unsigned dmxx_bio_target_nr(struct bio *bio) DMXX_NOEXCEPT;
/* Notify userspace (dmsetup wait / LVM) that the target's state changed. */
void dmxx_dm_table_event(struct dm_target *ti) DMXX_NOEXCEPT;

/*
 * A target type as the core describes it. Each platform turns this into its
 * own registration (struct target_type in the kernel). Function pointers go
 * straight to the C++ entry points: no trampoline on the map path.
 */
typedef int (*dmxx_iterate_fn)(struct dm_target *ti, struct dm_dev *dev, unsigned long long start,
			       unsigned long long len, void *data);

struct dmxx_target_desc {
	const char *name;
	unsigned version[3];
	unsigned long long features; /* DMXX_TARGET_* */
	int (*ctr)(struct dm_target *ti, unsigned argc, char **argv);
	void (*dtr)(struct dm_target *ti);
	int (*map)(struct dm_target *ti, struct bio *bio);
	int (*end_io)(struct dm_target *ti, struct bio *bio, unsigned char *status);
	void (*presuspend)(struct dm_target *ti);
	void (*postsuspend)(struct dm_target *ti);
	int (*preresume)(struct dm_target *ti);
	void (*resume)(struct dm_target *ti);
	void (*status)(struct dm_target *ti, int type, unsigned flags, char *result, unsigned maxlen);
	int (*message)(struct dm_target *ti, unsigned argc, char **argv, char *result,
		       unsigned maxlen);
	int (*prepare_ioctl)(struct dm_target *ti, struct block_device **bdev);
	int (*iterate_devices)(struct dm_target *ti, dmxx_iterate_fn fn, void *data);
	void (*io_hints)(struct dm_target *ti, struct queue_limits *limits);
};

/* Opaque registration handle. */
struct dmxx_target_reg;
/* 0 or -errno; *out receives the handle for unregistering. */
int dmxx_register_target(const struct dmxx_target_desc *desc, struct dmxx_target_reg **out) DMXX_NOEXCEPT;
void dmxx_unregister_target(struct dmxx_target_reg *reg) DMXX_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DMXX_PLATFORM_H */
