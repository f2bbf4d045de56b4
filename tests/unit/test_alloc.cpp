// SPDX-License-Identifier: GPL-2.0
/* Userspace platform: allocation fault injection, log capture, may-sleep checking. */
#include <dmxx/lock.h>
#include <dmxx/new.h>

#include "helpers.h"

#include <thread>

using namespace dmxx;
using dmxx::user::AtomicScope;
using dmxx::user::ViolationMode;

namespace {

class Platform : public dmxx::test::DmxxTest {};

struct Counted {
	static inline int constructed = 0;
	int x;
	explicit Counted(int v) : x(v) { constructed++; }
};

} // namespace

TEST_F(Platform, AllocAndFreeTrackLiveCount)
{
	auto before = user::alloc_stats();
	void *p = dmxx_alloc(100, DMXX_ALLOC_SLEEP);
	ASSERT_NE(p, nullptr);
	EXPECT_EQ(user::alloc_stats().live, before.live + 1);
	EXPECT_EQ(user::alloc_stats().attempts, before.attempts + 1);
	dmxx_free(p);
	dmxx_free(nullptr);
	EXPECT_EQ(user::alloc_stats().live, before.live);
}

TEST_F(Platform, ZallocZeroes)
{
	auto *p = static_cast<unsigned char *>(dmxx_zalloc(256, DMXX_ALLOC_NOIO));
	ASSERT_NE(p, nullptr);
	for (int i = 0; i < 256; i++)
		ASSERT_EQ(p[i], 0);
	dmxx_free(p);
}

TEST_F(Platform, FailNthIsOneShotAndCountsFromNow)
{
	user::fail_nth_alloc(2);
	void *a = dmxx_alloc(8, DMXX_ALLOC_SLEEP);
	void *b = dmxx_alloc(8, DMXX_ALLOC_ATOMIC);
	void *c = dmxx_alloc(8, DMXX_ALLOC_SLEEP);
	void *d = dmxx_alloc(8, DMXX_ALLOC_SLEEP);
	EXPECT_NE(a, nullptr);
	EXPECT_NE(b, nullptr);
	EXPECT_EQ(c, nullptr);
	EXPECT_NE(d, nullptr);
	dmxx_free(a);
	dmxx_free(b);
	dmxx_free(d);

	auto before = user::alloc_stats().failures;
	user::fail_nth_alloc(0);
	EXPECT_EQ(dmxx_zalloc(8, DMXX_ALLOC_SLEEP), nullptr);
	EXPECT_EQ(user::alloc_stats().failures, before + 1);
}

TEST_F(Platform, FailFromNthIsPersistentUntilCleared)
{
	user::fail_allocs_from(1);
	void *a = dmxx_alloc(8, DMXX_ALLOC_SLEEP);
	EXPECT_NE(a, nullptr);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(dmxx_alloc(8, DMXX_ALLOC_SLEEP), nullptr);
	user::clear_alloc_faults();
	void *b = dmxx_alloc(8, DMXX_ALLOC_SLEEP);
	EXPECT_NE(b, nullptr);
	dmxx_free(a);
	dmxx_free(b);
}

TEST_F(Platform, FailByMode)
{
	user::fail_allocs_with_mode(DMXX_ALLOC_NOWAIT);
	EXPECT_EQ(dmxx_alloc(8, DMXX_ALLOC_NOWAIT), nullptr);
	EXPECT_EQ(new (AllocMode::NoWait) int(3), nullptr);
	void *s = dmxx_alloc(8, DMXX_ALLOC_SLEEP);
	void *a = dmxx_alloc(8, DMXX_ALLOC_ATOMIC);
	EXPECT_NE(s, nullptr);
	EXPECT_NE(a, nullptr);
	dmxx_free(s);
	dmxx_free(a);
	user::fail_allocs_with_mode(DMXX_ALLOC_NOWAIT, false);
	void *n = dmxx_alloc(8, DMXX_ALLOC_NOWAIT);
	EXPECT_NE(n, nullptr);
	dmxx_free(n);
}

TEST_F(Platform, OperatorNewIsInjectedAndSkipsTheConstructor)
{
	Counted::constructed = 0;
	user::fail_nth_alloc(0);
	Counted *c = try_new<Counted>(AllocMode::Sleep, 5);
	EXPECT_EQ(c, nullptr);
	EXPECT_EQ(Counted::constructed, 0); /* -fcheck-new semantics */
	c = try_new<Counted>(AllocMode::Sleep, 6);
	ASSERT_NE(c, nullptr);
	EXPECT_EQ(c->x, 6);
	EXPECT_EQ(Counted::constructed, 1);
	delete c; /* libstdc++'s delete pairs with the nothrow new underneath */

	user::fail_nth_alloc(0);
	EXPECT_EQ(new (AllocMode::Atomic) int[16], nullptr);
	int *arr = new (AllocMode::Atomic) int[16];
	ASSERT_NE(arr, nullptr);
	delete[] arr;
}

TEST_F(Platform, LogIsCaptured)
{
	dmxx_log(DMXX_LOG_WARN, "value %d of %s", 42, "x");
	auto lines = user::log_lines();
	ASSERT_EQ(lines.size(), 1u);
	EXPECT_EQ(lines[0].level, DMXX_LOG_WARN);
	EXPECT_EQ(lines[0].text, "value 42 of x");
	EXPECT_TRUE(user::log_contains("42 of"));
	user::log_clear();
	EXPECT_TRUE(user::log_lines().empty());
}

TEST_F(Platform, SnprintfHasVsnprintfSemantics)
{
	char buf[4];
	EXPECT_EQ(dmxx_snprintf(buf, sizeof(buf), "%s", "abcdef"), 6);
	EXPECT_STREQ(buf, "abc");
}

TEST_F(Platform, MaySleepTracksSpinlocksAndAtomicContext)
{
	SpinLock l;
	EXPECT_TRUE(dmxx_may_sleep());
	{
		Guard<SpinLock> g(l);
		EXPECT_FALSE(dmxx_may_sleep());
		EXPECT_EQ(user::spinlock_depth(), 1);
	}
	EXPECT_TRUE(dmxx_may_sleep());
	{
		IrqGuard g(l);
		EXPECT_FALSE(dmxx_may_sleep());
	}
	EXPECT_TRUE(dmxx_may_sleep());
	{
		AtomicScope a;
		EXPECT_FALSE(dmxx_may_sleep());
	}
	EXPECT_TRUE(dmxx_may_sleep());
	/* Per thread: another thread holding a spinlock does not affect us. */
	std::thread t([&] {
		Guard<SpinLock> g(l);
		EXPECT_FALSE(dmxx_may_sleep());
	});
	t.join();
	EXPECT_TRUE(dmxx_may_sleep());
}

/*
 * Every sleeping primitive, called under a spinlock, is reported: each call
 * below must add exactly one violation. Each is also run without the
 * spinlock, where it must add none.
 */
TEST_F(Platform, EverySleepingPrimitiveIsCheckedUnderSpinlock)
{
	user::set_violation_mode(ViolationMode::Record);
	dmxx_mutex m;
	dmxx_mutex_init(&m);
	dmxx_rwsem s;
	dmxx_rwsem_init(&s);
	dmxx_completion c;
	dmxx_completion_init(&c);
	dmxx_waitq q;
	dmxx_waitq_init(&q);
	dmxx_workqueue *wq = dmxx_wq_create("check", 0);
	ASSERT_NE(wq, nullptr);
	SpinLock spin;

	struct Case {
		const char *name;
		std::function<void()> fn;
	};
	std::vector<Case> cases = {
		{"mutex_lock", [&] { dmxx_mutex_lock(&m); dmxx_mutex_unlock(&m); }},
		{"down_read", [&] { dmxx_down_read(&s); dmxx_up_read(&s); }},
		{"down_write", [&] { dmxx_down_write(&s); dmxx_up_write(&s); }},
		{"wait_for_completion", [&] { dmxx_complete(&c); dmxx_wait_for_completion(&c); }},
		{"wait_for_completion_timeout", [&] { dmxx_wait_for_completion_timeout_ms(&c, 0); }},
		{"wait_sleep",
		 [&] {
			 dmxx_wait_entry e;
			 dmxx_wait_entry_init(&e);
			 dmxx_wait_prepare(&q, &e);
			 dmxx_wake_up_all(&q); /* woken: sleep returns at once */
			 dmxx_wait_sleep(&e);
			 dmxx_wait_finish(&q, &e);
		 }},
		{"sleep_ms", [&] { dmxx_sleep_ms(0); }},
		{"cond_resched", [&] { dmxx_cond_resched(); }},
		{"flush_workqueue", [&] { dmxx_flush_workqueue(wq); }},
		{"alloc SLEEP", [&] { dmxx_free(dmxx_alloc(8, DMXX_ALLOC_SLEEP)); }},
		{"alloc NOIO", [&] { dmxx_free(dmxx_alloc(8, DMXX_ALLOC_NOIO)); }},
		{"new Sleep", [&] { delete new (AllocMode::Sleep) int(1); }},
	};
	for (auto &tc : cases) {
		uint64_t before = user::sleep_violations();
		tc.fn();
		EXPECT_EQ(user::sleep_violations(), before) << tc.name << " without a spinlock";
		{
			Guard<SpinLock> g(spin);
			tc.fn();
		}
		EXPECT_EQ(user::sleep_violations(), before + 1) << tc.name << " under a spinlock";
		EXPECT_NE(user::last_violation().find("sleeping function called from invalid context"),
			  std::string::npos);
		{
			AtomicScope a;
			tc.fn();
		}
		EXPECT_EQ(user::sleep_violations(), before + 2) << tc.name << " in atomic context";
	}

	/* Non-sleeping allocation modes are fine under a spinlock. */
	uint64_t before = user::sleep_violations();
	{
		Guard<SpinLock> g(spin);
		dmxx_free(dmxx_alloc(8, DMXX_ALLOC_NOWAIT));
		dmxx_free(dmxx_alloc(8, DMXX_ALLOC_ATOMIC));
		dmxx_complete(&c); /* waking never sleeps */
		dmxx_wake_up_all(&q);
	}
	EXPECT_EQ(user::sleep_violations(), before);
	dmxx_wait_for_completion(&c);

	dmxx_wq_destroy(wq);
	dmxx_waitq_destroy(&q);
	dmxx_completion_destroy(&c);
	dmxx_rwsem_destroy(&s);
	dmxx_mutex_destroy(&m);
	EXPECT_TRUE(user::log_contains("sleeping function called from invalid context: mutex_lock"));
}

using PlatformDeathTest = Platform;

TEST_F(PlatformDeathTest, SleepUnderSpinlockAbortsByDefault)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			SpinLock spin;
			Mutex m;
			Guard<SpinLock> g(spin);
			Guard<Mutex> g2(m);
		},
		"sleeping function called from invalid context: mutex_lock");
}

TEST_F(PlatformDeathTest, RecursiveSpinlockIsFatal)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(
		{
			SpinLock spin;
			spin.lock();
			spin.lock();
		},
		"recursive locking");
}

TEST_F(PlatformDeathTest, FatalAborts)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_DEATH(dmxx_fatal("broken invariant"), "internal error: broken invariant");
}
