// SPDX-License-Identifier: GPL-2.0
/* Userspace platform: workqueues. */
#include <dmxx/lock.h>

#include "helpers.h"

#include <dmxx/user/watch.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>

using namespace dmxx;

namespace {

class Workqueue : public dmxx::test::DmxxTest {};

struct Item {
	dmxx_work work; /* first: the work function casts back */
	std::atomic<int> runs{0};
	std::atomic<int> *concurrent = nullptr;
	std::atomic<int> *max_concurrent = nullptr;
	std::vector<int> *order = nullptr;
	std::mutex *order_lock = nullptr;
	int id = 0;
	dmxx_completion *gate = nullptr;    /* wait for this before returning */
	dmxx_workqueue *requeue_on = nullptr;
	int requeue_times = 0;
};

Item *item_of(dmxx_work *w) { return reinterpret_cast<Item *>(w); }

void item_fn(dmxx_work *w)
{
	Item *it = item_of(w);
	if (it->concurrent) {
		int now = ++*it->concurrent;
		int prev = it->max_concurrent->load();
		while (now > prev && !it->max_concurrent->compare_exchange_weak(prev, now)) {
		}
		std::this_thread::sleep_for(std::chrono::microseconds(200));
	}
	if (it->order) {
		std::lock_guard<std::mutex> g(*it->order_lock);
		it->order->push_back(it->id);
	}
	if (it->gate)
		dmxx_wait_for_completion(it->gate);
	if (it->concurrent)
		--*it->concurrent;
	int n = ++it->runs;
	if (it->requeue_on && n < it->requeue_times) {
		EXPECT_EQ(dmxx_queue_work(it->requeue_on, &it->work), 1);
	}
}

} // namespace

TEST_F(Workqueue, RunsQueuedWorkAndFlushWaitsForIt)
{
	dmxx_workqueue *wq = dmxx_wq_create("t", 0);
	ASSERT_NE(wq, nullptr);
	std::vector<Item> items(20);
	for (auto &it : items) {
		dmxx_work_init(&it.work, item_fn);
		EXPECT_EQ(dmxx_queue_work(wq, &it.work), 1);
	}
	dmxx_flush_workqueue(wq);
	for (auto &it : items)
		EXPECT_EQ(it.runs.load(), 1);
	dmxx_wq_destroy(wq);
}

TEST_F(Workqueue, QueueingAPendingItemReturnsZero)
{
	dmxx_workqueue *wq = dmxx_wq_create("t", DMXX_WQ_ORDERED);
	ASSERT_NE(wq, nullptr);
	dmxx_completion gate;
	dmxx_completion_init(&gate);
	Item blocker, it;
	blocker.gate = &gate;
	dmxx_work_init(&blocker.work, item_fn);
	dmxx_work_init(&it.work, item_fn);
	EXPECT_EQ(dmxx_queue_work(wq, &blocker.work), 1);
	EXPECT_EQ(dmxx_queue_work(wq, &it.work), 1);
	EXPECT_EQ(dmxx_queue_work(wq, &it.work), 0); /* still pending behind the blocker */
	dmxx_complete(&gate);
	dmxx_flush_workqueue(wq);
	EXPECT_EQ(it.runs.load(), 1);
	EXPECT_EQ(dmxx_queue_work(wq, &it.work), 1); /* runnable again once it ran */
	dmxx_flush_workqueue(wq);
	EXPECT_EQ(it.runs.load(), 2);
	dmxx_wq_destroy(wq);
	dmxx_completion_destroy(&gate);
}

TEST_F(Workqueue, OrderedRunsOneAtATimeInOrder)
{
	dmxx_workqueue *wq = dmxx_wq_create("ordered", DMXX_WQ_ORDERED);
	ASSERT_NE(wq, nullptr);
	std::atomic<int> concurrent{0}, max_concurrent{0};
	std::vector<int> order;
	std::mutex order_lock;
	std::vector<Item> items(30);
	for (int i = 0; i < 30; i++) {
		items[i].id = i;
		items[i].concurrent = &concurrent;
		items[i].max_concurrent = &max_concurrent;
		items[i].order = &order;
		items[i].order_lock = &order_lock;
		dmxx_work_init(&items[i].work, item_fn);
		dmxx_queue_work(wq, &items[i].work);
	}
	dmxx_wq_destroy(wq); /* drains */
	EXPECT_EQ(max_concurrent.load(), 1);
	ASSERT_EQ(order.size(), 30u);
	for (int i = 0; i < 30; i++)
		EXPECT_EQ(order[i], i);
}

TEST_F(Workqueue, UnorderedRunsConcurrently)
{
	dmxx_workqueue *wq = dmxx_wq_create("parallel", 0);
	ASSERT_NE(wq, nullptr);
	/* Two items that can only both finish if they run at the same time. */
	dmxx_completion a_started, b_started;
	dmxx_completion_init(&a_started);
	dmxx_completion_init(&b_started);
	struct Pair {
		dmxx_work work;
		dmxx_completion *mine, *other;
		std::atomic<bool> saw_other{false};
	};
	auto fn = [](dmxx_work *w) {
		auto *p = reinterpret_cast<Pair *>(w);
		dmxx_complete(p->mine);
		p->saw_other = dmxx_wait_for_completion_timeout_ms(p->other, 10000) != 0;
	};
	Pair a{{}, &a_started, &b_started}, b{{}, &b_started, &a_started};
	dmxx_work_init(&a.work, fn);
	dmxx_work_init(&b.work, fn);
	dmxx_queue_work(wq, &a.work);
	dmxx_queue_work(wq, &b.work);
	dmxx_flush_workqueue(wq);
	EXPECT_TRUE(a.saw_other.load());
	EXPECT_TRUE(b.saw_other.load());
	dmxx_wq_destroy(wq);
	dmxx_completion_destroy(&a_started);
	dmxx_completion_destroy(&b_started);
}

TEST_F(Workqueue, DestroyDrainsSelfRequeueingWork)
{
	dmxx_workqueue *wq = dmxx_wq_create("requeue", 0);
	ASSERT_NE(wq, nullptr);
	Item it;
	it.requeue_on = wq;
	it.requeue_times = 50;
	dmxx_work_init(&it.work, item_fn);
	dmxx_queue_work(wq, &it.work);
	dmxx_wq_destroy(wq);
	EXPECT_EQ(it.runs.load(), 50);
}

TEST_F(Workqueue, WorkMayFreeItself)
{
	dmxx_workqueue *wq = dmxx_wq_create("free", 0);
	ASSERT_NE(wq, nullptr);
	static std::atomic<int> freed{0};
	freed = 0;
	struct Owned {
		dmxx_work work;
		int payload;
	};
	for (int i = 0; i < 10; i++) {
		auto *o = static_cast<Owned *>(dmxx_alloc(sizeof(Owned), DMXX_ALLOC_SLEEP));
		ASSERT_NE(o, nullptr);
		o->payload = i;
		dmxx_work_init(&o->work, [](dmxx_work *w) {
			dmxx_free(w);
			freed++;
		});
		dmxx_queue_work(wq, &o->work);
	}
	dmxx_wq_destroy(wq);
	EXPECT_EQ(freed.load(), 10);
}

TEST_F(Workqueue, CreateCanFail)
{
	user::fail_nth_alloc(0);
	EXPECT_EQ(dmxx_wq_create("fails", 0), nullptr);
	dmxx_workqueue *wq = dmxx_wq_create("works", 0);
	EXPECT_NE(wq, nullptr);
	dmxx_wq_destroy(wq);
}

TEST_F(Workqueue, FlushOnlyWaitsForEarlierWork)
{
	dmxx_workqueue *wq = dmxx_wq_create("flush", 0);
	ASSERT_NE(wq, nullptr);
	dmxx_completion gate;
	dmxx_completion_init(&gate);
	Item early, late;
	late.gate = &gate;
	dmxx_work_init(&early.work, item_fn);
	dmxx_work_init(&late.work, item_fn);
	dmxx_queue_work(wq, &early.work);
	dmxx_flush_workqueue(wq);
	EXPECT_EQ(early.runs.load(), 1);
	dmxx_queue_work(wq, &late.work); /* blocked until the gate opens */
	dmxx_complete(&gate);
	dmxx_wq_destroy(wq);
	EXPECT_EQ(late.runs.load(), 1);
	dmxx_completion_destroy(&gate);
}

using WorkqueueDeathTest = Workqueue;

TEST_F(WorkqueueDeathTest, FlushFromOwnWorkIsFatal)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			static dmxx_workqueue *wq = dmxx_wq_create("self", 0);
			static dmxx_work w;
			dmxx_work_init(&w, [](dmxx_work *) { dmxx_flush_workqueue(wq); });
			dmxx_queue_work(wq, &w);
			dmxx_flush_workqueue(wq);
		},
		"from its own work item");
}

TEST_F(WorkqueueDeathTest, WorkReturningWithSpinlockHeldIsFatal)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			static SpinLock *lock = new SpinLock;
			static dmxx_workqueue *wq = dmxx_wq_create("leaky", 0);
			static dmxx_work w;
			dmxx_work_init(&w, [](dmxx_work *) { lock->lock(); });
			dmxx_queue_work(wq, &w);
			dmxx_flush_workqueue(wq);
		},
		"holding a spinlock");
}

/*
 * Work items are non-reentrant, as in the kernel: an item queued again
 * while it runs is not started on another worker of the same workqueue; it
 * runs again once the current run has returned.
 */
namespace {
struct Reentry {
	dmxx_work work; /* first */
	dmxx_workqueue *wq;
	dmxx_completion started, release;
	std::atomic<int> runs{0}, concurrent{0}, max_concurrent{0};
};

void reentry_fn(dmxx_work *w)
{
	auto *r = reinterpret_cast<Reentry *>(w);
	int now = ++r->concurrent;
	int prev = r->max_concurrent.load();
	while (now > prev && !r->max_concurrent.compare_exchange_weak(prev, now)) {
	}
	int n = ++r->runs;
	if (n == 1) {
		/* Queue ourselves again while running, then wait with 3 idle workers around. */
		EXPECT_EQ(dmxx_queue_work(r->wq, &r->work), 1);
		dmxx_complete(&r->started);
		dmxx_wait_for_completion(&r->release);
	}
	--r->concurrent;
}
} // namespace

TEST_F(Workqueue, WorkItemsAreNotReentrant)
{
	Reentry r;
	r.wq = dmxx_wq_create("reentry", 0); /* 4 workers */
	ASSERT_NE(r.wq, nullptr);
	dmxx_completion_init(&r.started);
	dmxx_completion_init(&r.release);
	dmxx_work_init(&r.work, reentry_fn);
	dmxx_queue_work(r.wq, &r.work);
	dmxx_wait_for_completion(&r.started);
	/* The requeued run is held back, observably: queued, not running. */
	bool held_back = false;
	for (const auto &q : user::workqueue_reports())
		if (q.name == "reentry")
			held_back = q.queued == 1 && q.running == 1 && q.queued_items.size() == 1 &&
				    q.queued_items[0].find("held back") != std::string::npos;
	EXPECT_TRUE(held_back);
	EXPECT_EQ(r.runs.load(), 1);
	dmxx_complete(&r.release);
	dmxx_flush_workqueue(r.wq);
	EXPECT_EQ(r.runs.load(), 2);
	EXPECT_EQ(r.max_concurrent.load(), 1);
	dmxx_wq_destroy(r.wq);
	dmxx_completion_destroy(&r.started);
	dmxx_completion_destroy(&r.release);
}
