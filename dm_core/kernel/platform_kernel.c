// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel implementation of the dmxx porting interface (include/dmxx/platform.h).
 *
 * Thin by design: each function forwards to the kernel API of the same role.
 * The C++ core never sees a kernel header; this file is where it meets one.
 */
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/device-mapper.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/smp.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include <dmxx/platform.h>

#define DM_MSG_PREFIX "dmxx"

/* The opaque storage in platform.h must hold the real kernel objects. */
#define DMXX_FITS(ours, theirs)                                           \
	static_assert(sizeof(struct ours) >= sizeof(theirs) &&            \
		      __alignof__(struct ours) >= __alignof__(theirs),    \
		      #ours " storage too small for " #theirs)
DMXX_FITS(dmxx_spinlock, spinlock_t);
DMXX_FITS(dmxx_mutex, struct mutex);
DMXX_FITS(dmxx_rwsem, struct rw_semaphore);
DMXX_FITS(dmxx_completion, struct completion);
DMXX_FITS(dmxx_waitq, struct wait_queue_head);
DMXX_FITS(dmxx_wait_entry, struct wait_queue_entry);
DMXX_FITS(dmxx_work, struct work_struct);

/* ---- allocation ---- */

static gfp_t dmxx_gfp(enum dmxx_alloc_mode mode)
{
	switch (mode) {
	case DMXX_ALLOC_SLEEP:
		return GFP_KERNEL;
	case DMXX_ALLOC_NOIO:
		return GFP_NOIO;
	case DMXX_ALLOC_NOWAIT:
		return GFP_NOWAIT | __GFP_NOWARN;
	case DMXX_ALLOC_ATOMIC:
	default:
		return GFP_ATOMIC | __GFP_NOWARN;
	}
}

void *dmxx_alloc(unsigned long size, enum dmxx_alloc_mode mode)
{
	return kmalloc(size, dmxx_gfp(mode));
}

void *dmxx_zalloc(unsigned long size, enum dmxx_alloc_mode mode)
{
	return kzalloc(size, dmxx_gfp(mode));
}

void dmxx_free(const void *p)
{
	kfree(p);
}

void *dmxx_kvalloc(unsigned long size, enum dmxx_alloc_mode mode)
{
	return kvmalloc(size, dmxx_gfp(mode));
}

void *dmxx_kvzalloc(unsigned long size, enum dmxx_alloc_mode mode)
{
	return kvzalloc(size, dmxx_gfp(mode));
}

void dmxx_kvfree(const void *p)
{
	kvfree(p);
}

/* ---- logging ---- */

void dmxx_log(enum dmxx_log_level level, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	switch (level) {
	case DMXX_LOG_ERR:
		pr_err("device-mapper: " DM_MSG_PREFIX ": %pV\n", &vaf);
		break;
	case DMXX_LOG_WARN:
		pr_warn("device-mapper: " DM_MSG_PREFIX ": %pV\n", &vaf);
		break;
	case DMXX_LOG_INFO:
		pr_info("device-mapper: " DM_MSG_PREFIX ": %pV\n", &vaf);
		break;
	default:
		pr_debug("device-mapper: " DM_MSG_PREFIX ": %pV\n", &vaf);
		break;
	}
	va_end(args);
}

int dmxx_snprintf(char *buf, unsigned long size, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(buf, size, fmt, args);
	va_end(args);
	return n;
}

int dmxx_vsnprintf(char *buf, unsigned long size, const char *fmt, va_list args)
{
	return vsnprintf(buf, size, fmt, args);
}

void dmxx_fatal(const char *why)
{
	pr_crit("device-mapper: " DM_MSG_PREFIX ": internal error: %s\n", why);
	BUG();
}

/* ---- locks ---- */

#define AS(type, p) ((type *)(void *)(p)->opaque)

void dmxx_spin_init(struct dmxx_spinlock *l) { spin_lock_init(AS(spinlock_t, l)); }
void dmxx_spin_lock(struct dmxx_spinlock *l) { spin_lock(AS(spinlock_t, l)); }
void dmxx_spin_unlock(struct dmxx_spinlock *l) { spin_unlock(AS(spinlock_t, l)); }

unsigned long dmxx_spin_lock_irqsave(struct dmxx_spinlock *l)
{
	unsigned long flags;

	spin_lock_irqsave(AS(spinlock_t, l), flags);
	return flags;
}

void dmxx_spin_unlock_irqrestore(struct dmxx_spinlock *l, unsigned long flags)
{
	spin_unlock_irqrestore(AS(spinlock_t, l), flags);
}

void dmxx_mutex_init(struct dmxx_mutex *m) { mutex_init(AS(struct mutex, m)); }
void dmxx_mutex_destroy(struct dmxx_mutex *m) { mutex_destroy(AS(struct mutex, m)); }
void dmxx_mutex_lock(struct dmxx_mutex *m) { mutex_lock(AS(struct mutex, m)); }
void dmxx_mutex_unlock(struct dmxx_mutex *m) { mutex_unlock(AS(struct mutex, m)); }

void dmxx_rwsem_init(struct dmxx_rwsem *s) { init_rwsem(AS(struct rw_semaphore, s)); }
void dmxx_rwsem_destroy(struct dmxx_rwsem *s) { }
void dmxx_down_read(struct dmxx_rwsem *s) { down_read(AS(struct rw_semaphore, s)); }
void dmxx_up_read(struct dmxx_rwsem *s) { up_read(AS(struct rw_semaphore, s)); }
int dmxx_down_read_trylock(struct dmxx_rwsem *s) { return down_read_trylock(AS(struct rw_semaphore, s)); }
void dmxx_down_write(struct dmxx_rwsem *s) { down_write(AS(struct rw_semaphore, s)); }
void dmxx_up_write(struct dmxx_rwsem *s) { up_write(AS(struct rw_semaphore, s)); }

int dmxx_may_sleep(void)
{
	return !in_atomic() && !irqs_disabled();
}

/* ---- waiting ---- */

void dmxx_completion_init(struct dmxx_completion *c) { init_completion(AS(struct completion, c)); }
void dmxx_completion_destroy(struct dmxx_completion *c) { }
void dmxx_complete(struct dmxx_completion *c) { complete(AS(struct completion, c)); }
void dmxx_complete_all(struct dmxx_completion *c) { complete_all(AS(struct completion, c)); }

void dmxx_wait_for_completion(struct dmxx_completion *c)
{
	might_sleep();
	wait_for_completion(AS(struct completion, c));
}

int dmxx_wait_for_completion_timeout_ms(struct dmxx_completion *c, unsigned ms)
{
	might_sleep();
	return wait_for_completion_timeout(AS(struct completion, c), msecs_to_jiffies(ms)) != 0;
}

void dmxx_waitq_init(struct dmxx_waitq *q) { init_waitqueue_head(AS(struct wait_queue_head, q)); }
void dmxx_waitq_destroy(struct dmxx_waitq *q) { }
void dmxx_wake_up_all(struct dmxx_waitq *q) { wake_up_all(AS(struct wait_queue_head, q)); }
void dmxx_wake_up_one(struct dmxx_waitq *q) { wake_up(AS(struct wait_queue_head, q)); }

void dmxx_wait_entry_init(struct dmxx_wait_entry *e)
{
	init_wait(AS(struct wait_queue_entry, e));
}

/*
 * prepare_to_wait() queues the entry only if it is not queued: a sleep that
 * returned without a wakeup leaves it linked, and re-initialising it then
 * would corrupt the wait queue. Hence init once, prepare every iteration.
 */
void dmxx_wait_prepare(struct dmxx_waitq *q, struct dmxx_wait_entry *e)
{
	prepare_to_wait(AS(struct wait_queue_head, q), AS(struct wait_queue_entry, e),
			TASK_UNINTERRUPTIBLE);
}

void dmxx_wait_sleep(struct dmxx_wait_entry *e)
{
	schedule();
}

void dmxx_wait_finish(struct dmxx_waitq *q, struct dmxx_wait_entry *e)
{
	finish_wait(AS(struct wait_queue_head, q), AS(struct wait_queue_entry, e));
}

/* ---- deferred work ---- */

void dmxx_work_init(struct dmxx_work *w, dmxx_work_fn fn)
{
	/* work_func_t takes the work_struct, which sits at offset 0 of dmxx_work. */
	INIT_WORK(AS(struct work_struct, w), (work_func_t)(void *)fn);
}

struct dmxx_workqueue *dmxx_wq_create(const char *name, unsigned flags)
{
	unsigned wqf = 0;

	if (flags & DMXX_WQ_MEM_RECLAIM)
		wqf |= WQ_MEM_RECLAIM;
	if (flags & DMXX_WQ_HIGHPRI)
		wqf |= WQ_HIGHPRI;
	if (flags & DMXX_WQ_UNBOUND)
		wqf |= WQ_UNBOUND;
	if (flags & DMXX_WQ_ORDERED)
		return (struct dmxx_workqueue *)alloc_ordered_workqueue("%s", wqf, name);
	return (struct dmxx_workqueue *)alloc_workqueue("%s", wqf, 0, name);
}

void dmxx_wq_destroy(struct dmxx_workqueue *wq)
{
	destroy_workqueue((struct workqueue_struct *)wq);
}

int dmxx_queue_work(struct dmxx_workqueue *wq, struct dmxx_work *w)
{
	return queue_work((struct workqueue_struct *)wq, AS(struct work_struct, w));
}

void dmxx_flush_workqueue(struct dmxx_workqueue *wq)
{
	flush_workqueue((struct workqueue_struct *)wq);
}

/* ---- CPUs ---- */

/* A hint only (see platform.h): callers run preemptible, so no smp_processor_id() check. */
unsigned dmxx_this_cpu(void) { return raw_smp_processor_id(); }
unsigned dmxx_nr_cpus(void) { return nr_cpu_ids; }

/* ---- tasks ---- */

unsigned long dmxx_current_task(void) { return (unsigned long)current; }

/* ---- time ---- */

unsigned long long dmxx_now_ns(void) { return ktime_get_ns(); }
void dmxx_sleep_ms(unsigned ms) { msleep(ms); }
void dmxx_cond_resched(void) { cond_resched(); }

/* ---- bios and block devices ---- */

void dmxx_submit_bio(struct bio *bio) { submit_bio_noacct(bio); }
void dmxx_bio_endio(struct bio *bio) { bio_endio(bio); }

/* Our view of current->bio_list must be the kernel's struct bio_list. */
static_assert(sizeof(struct dmxx_bio_list) == sizeof(struct bio_list) &&
	      offsetof(struct dmxx_bio_list, head) == offsetof(struct bio_list, head) &&
	      offsetof(struct dmxx_bio_list, tail) == offsetof(struct bio_list, tail),
	      "struct dmxx_bio_list must mirror struct bio_list");

struct dmxx_bio_list *dmxx_current_bio_lists(void)
{
	return (struct dmxx_bio_list *)current->bio_list;
}

void dmxx_bio_init(struct bio *bio, struct block_device *bdev, void *vecs, unsigned short max_vecs,
		   unsigned opf)
{
	bio_init(bio, bdev, vecs, max_vecs, (__force blk_opf_t)opf);
}

void dmxx_bio_uninit(struct bio *bio)
{
	bio_uninit(bio);
}

int dmxx_bio_init_clone(struct bio *clone, struct bio *src, struct block_device *bdev,
			enum dmxx_alloc_mode mode)
{
	return bio_init_clone(bdev, clone, src, dmxx_gfp(mode));
}

void dmxx_bio_trim(struct bio *bio, unsigned long long offset, unsigned long long size)
{
	bio_trim(bio, offset, size);
}

unsigned dmxx_bio_data_vecs(const void *buf, unsigned long len)
{
	unsigned long start = (unsigned long)buf;

	return (unsigned)(((start + len + PAGE_SIZE - 1) >> PAGE_SHIFT) - (start >> PAGE_SHIFT));
}

/* Core memory is kmalloc'ed (directly mapped) or kvmalloc'ed (maybe vmalloc): one vec per page. */
int dmxx_bio_add_data(struct bio *bio, void *buf, unsigned len)
{
	char *p = buf;

	while (len) {
		unsigned off = offset_in_page(p);
		unsigned n = min_t(unsigned, len, PAGE_SIZE - off);
		struct page *page = is_vmalloc_addr(p) ? vmalloc_to_page(p) : virt_to_page(p);

		if (bio_add_page(bio, page, n, off) != n)
			return -EINVAL;
		p += n;
		len -= n;
	}
	return 0;
}

unsigned long long dmxx_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

unsigned dmxx_bdev_logical_block_size(struct block_device *bdev)
{
	return bdev_logical_block_size(bdev);
}
