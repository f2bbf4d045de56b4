// SPDX-License-Identifier: GPL-2.0
#include <dmxx/result.h>

#include "helpers.h"

using namespace dmxx;

namespace {

struct Tracked {
	static inline int live = 0;
	int v;
	explicit Tracked(int x) : v(x) { live++; }
	Tracked(Tracked &&o) : v(o.v) { live++; }
	~Tracked() { live--; }
};

Result<int> half(int x)
{
	if (x % 2)
		return err(EINVAL);
	return x / 2;
}

int g_after_try = 0;

Result<int> quarter(int x)
{
	int h = TRY(half(x));
	g_after_try++;
	return TRY(half(h));
}

Result<void> check_positive(int x)
{
	if (x <= 0)
		return err(ERANGE);
	return {};
}

Result<void> both(int a, int b)
{
	TRY(check_positive(a));
	TRY(check_positive(b));
	return {};
}

Result<Tracked> make_tracked(int x)
{
	if (x < 0)
		return err(ENOMEM);
	return Tracked(x);
}

Result<int> use_tracked(int x)
{
	Tracked t = TRY(make_tracked(x));
	return t.v * 10;
}

} // namespace

TEST(Result, ValueAndError)
{
	auto ok = half(4);
	ASSERT_TRUE(ok.is_ok());
	EXPECT_FALSE(ok.is_error());
	EXPECT_EQ(ok.value(), 2);
	EXPECT_EQ(ok.error_code(), 0);

	auto bad = half(3);
	ASSERT_TRUE(bad.is_error());
	EXPECT_EQ(bad.error_code(), -EINVAL);
	EXPECT_EQ(bad.error().code(), -EINVAL);
}

TEST(Result, ErrorIsAlwaysNegative)
{
	EXPECT_EQ(err(ENOMEM).code(), -ENOMEM);
	EXPECT_EQ(err(-ENOMEM).code(), -ENOMEM);
	EXPECT_EQ(Error::from_errno(5).code(), -5);
	EXPECT_TRUE(err(EIO) == err(-EIO));
}

TEST(Result, TryPropagatesFirstErrorAndStops)
{
	g_after_try = 0;
	EXPECT_EQ(quarter(8).value(), 2);
	EXPECT_EQ(g_after_try, 1);

	auto r = quarter(3); /* fails at the first TRY */
	EXPECT_EQ(r.error_code(), -EINVAL);
	EXPECT_EQ(g_after_try, 1);

	auto r2 = quarter(6); /* 6 -> 3 -> fails at the second */
	EXPECT_EQ(r2.error_code(), -EINVAL);
	EXPECT_EQ(g_after_try, 2);
}

TEST(Result, VoidResult)
{
	EXPECT_TRUE(both(1, 2).is_ok());
	EXPECT_EQ(both(0, 2).error_code(), -ERANGE);
	EXPECT_EQ(both(1, -1).error_code(), -ERANGE);
	Result<void> ok;
	EXPECT_EQ(ok.error_code(), 0);
}

TEST(Result, FromErrnoInt)
{
	EXPECT_TRUE(from_errno_int(0).is_ok());
	EXPECT_TRUE(from_errno_int(3).is_ok()); /* positive counts are not errors */
	EXPECT_EQ(from_errno_int(-EIO).error_code(), -EIO);
}

TEST(Result, ValueLifetimeIsExact)
{
	ASSERT_EQ(Tracked::live, 0);
	{
		auto r = make_tracked(4);
		EXPECT_EQ(Tracked::live, 1);
		auto moved = Result<Tracked>(static_cast<Result<Tracked> &&>(r));
		EXPECT_EQ(moved.value().v, 4);
		EXPECT_EQ(Tracked::live, 2);
	}
	EXPECT_EQ(Tracked::live, 0);
	{
		auto e = make_tracked(-1); /* an error constructs no value... */
		EXPECT_EQ(Tracked::live, 0);
	} /* ...and destroys none */
	EXPECT_EQ(Tracked::live, 0);
	EXPECT_EQ(use_tracked(3).value(), 30);
	EXPECT_EQ(use_tracked(-3).error_code(), -ENOMEM);
	EXPECT_EQ(Tracked::live, 0);
}

TEST(Result, MoveOfErrorKeepsCode)
{
	auto r = make_tracked(-1);
	Result<Tracked> moved(static_cast<Result<Tracked> &&>(r));
	EXPECT_EQ(moved.error_code(), -ENOMEM);
}
