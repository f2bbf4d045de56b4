// SPDX-License-Identifier: GPL-2.0
#include <dmxx/table_args.h>

#include "helpers.h"

using namespace dmxx;

namespace {

/* A table line split into a mutable argv, as DM passes it. */
struct Argv {
	std::vector<std::string> words;
	std::vector<char *> ptrs;
	explicit Argv(std::vector<std::string> w) : words(std::move(w))
	{
		for (auto &s : words)
			ptrs.push_back(s.data());
		ptrs.push_back(nullptr);
	}
	unsigned argc() const { return unsigned(words.size()); }
	char **argv() { return ptrs.data(); }
};

class TableArgsTest : public dmxx::test::DmxxTest {
protected:
	dm_target ti{};
	const char *error() const { return ti.error; }
};

} // namespace

TEST(ParseU64, AcceptsStrictDecimal)
{
	EXPECT_EQ(parse_u64("0").value(), 0u);
	EXPECT_EQ(parse_u64("42").value(), 42u);
	EXPECT_EQ(parse_u64("007").value(), 7u);
	EXPECT_EQ(parse_u64("18446744073709551615").value(), ~0ull);
}

TEST(ParseU64, RejectsOverflowWithERANGE)
{
	EXPECT_EQ(parse_u64("18446744073709551616").error_code(), -ERANGE);
	EXPECT_EQ(parse_u64("99999999999999999999").error_code(), -ERANGE);
	EXPECT_EQ(parse_u64("100000000000000000000000").error_code(), -ERANGE);
}

TEST(ParseU64, RejectsEverythingElseWithEINVAL)
{
	for (const char *s : {"", "-1", "+1", " 1", "1 ", "1a", "a1", "0x10", "1.0", "１"})
		EXPECT_EQ(parse_u64(s).error_code(), -EINVAL) << "'" << s << "'";
	EXPECT_EQ(parse_u64(nullptr).error_code(), -EINVAL);
}

TEST(StrEq, ExactAndCaseInsensitive)
{
	EXPECT_TRUE(str_eq("abc", "abc"));
	EXPECT_FALSE(str_eq("abc", "abcd"));
	EXPECT_FALSE(str_eq("abcd", "abc"));
	EXPECT_FALSE(str_eq("abc", "ABC"));
	EXPECT_TRUE(str_eq("", ""));
	EXPECT_TRUE(str_eq_nocase("Discard_Passdown", "discard_passdown"));
	EXPECT_FALSE(str_eq_nocase("abc", "abd"));
	EXPECT_FALSE(str_eq_nocase("ab", "abc"));
}

TEST_F(TableArgsTest, ExpectCount)
{
	Argv a({"x", "1"});
	TableArgs args(&ti, a.argc(), a.argv());
	EXPECT_TRUE(args.expect_count(2, "Invalid argument count").is_ok());
	EXPECT_EQ(error(), nullptr);
	EXPECT_EQ(args.expect_count(3, "Invalid argument count").error_code(), -EINVAL);
	EXPECT_STREQ(error(), "Invalid argument count");
}

TEST_F(TableArgsTest, ExpectCountBetween)
{
	Argv a({"a", "b", "c"});
	TableArgs args(&ti, a.argc(), a.argv());
	EXPECT_TRUE(args.expect_count_between(1, 3, "count").is_ok());
	EXPECT_TRUE(args.expect_count_between(3, 3, "count").is_ok());
	EXPECT_EQ(args.expect_count_between(4, 9, "too few").error_code(), -EINVAL);
	EXPECT_STREQ(error(), "too few");
	EXPECT_EQ(args.expect_count_between(0, 2, "too many").error_code(), -EINVAL);
	EXPECT_STREQ(error(), "too many");
}

TEST_F(TableArgsTest, NextStringConsumesInOrder)
{
	Argv a({"first", "second"});
	TableArgs args(&ti, a.argc(), a.argv());
	EXPECT_EQ(args.total(), 2u);
	EXPECT_STREQ(args.peek(), "first");
	EXPECT_STREQ(args.next_string("m1").value(), "first");
	EXPECT_EQ(args.remaining(), 1u);
	EXPECT_STREQ(args.next_string("m2").value(), "second");
	EXPECT_EQ(args.remaining(), 0u);
	EXPECT_EQ(args.peek(), nullptr);
	EXPECT_EQ(error(), nullptr);
	EXPECT_EQ(args.next_string("Missing device path").error_code(), -EINVAL);
	EXPECT_STREQ(error(), "Missing device path");
}

TEST_F(TableArgsTest, NextU64EachFailureSetsItsMessageAndDoesNotConsume)
{
	Argv a({"abc", "18446744073709551616", "5", "100", "7"});
	TableArgs args(&ti, a.argc(), a.argv());
	EXPECT_EQ(args.next_u64("Invalid sector").error_code(), -EINVAL);
	EXPECT_STREQ(error(), "Invalid sector");
	EXPECT_STREQ(args.peek(), "abc"); /* not consumed */
	EXPECT_TRUE(args.next_string("skip").is_ok());

	ti.error = nullptr;
	EXPECT_EQ(args.next_u64("Invalid size").error_code(), -EINVAL); /* overflow maps to EINVAL */
	EXPECT_STREQ(error(), "Invalid size");
	EXPECT_TRUE(args.next_string("skip").is_ok());

	EXPECT_EQ(args.next_u64("Below range", 6, 10).error_code(), -EINVAL);
	EXPECT_STREQ(error(), "Below range");
	EXPECT_EQ(args.next_u64("In range", 5, 5).value(), 5u);

	EXPECT_EQ(args.next_u64("Above range", 0, 99).error_code(), -EINVAL);
	EXPECT_STREQ(error(), "Above range");
	EXPECT_EQ(args.next_u64("ok", 0, 100).value(), 100u);

	EXPECT_EQ(args.next_u64("ok").value(), 7u);
	EXPECT_EQ(args.next_u64("Missing number").error_code(), -EINVAL);
	EXPECT_STREQ(error(), "Missing number");
}

TEST_F(TableArgsTest, NextU32RejectsValuesAboveU32)
{
	Argv a({"4294967296", "4294967295"});
	TableArgs args(&ti, a.argc(), a.argv());
	EXPECT_EQ(args.next_u32("Invalid block size").error_code(), -EINVAL);
	EXPECT_STREQ(error(), "Invalid block size");
	EXPECT_TRUE(args.next_string("skip").is_ok());
	EXPECT_EQ(args.next_u32("x").value(), 4294967295u);
}

TEST_F(TableArgsTest, GroupsAreBoundedByMaxAndByWhatRemains)
{
	{
		Argv a({"2", "skip_block_zeroing", "ignore_discard", "tail"});
		TableArgs args(&ti, a.argc(), a.argv());
		EXPECT_EQ(args.next_group(4, "Invalid number of feature args").value(), 2u);
		EXPECT_STREQ(args.next_string("f").value(), "skip_block_zeroing");
		EXPECT_STREQ(args.next_string("f").value(), "ignore_discard");
		EXPECT_EQ(args.remaining(), 1u);
	}
	{
		Argv a({"5", "a", "b", "c", "d", "e"});
		TableArgs args(&ti, a.argc(), a.argv());
		EXPECT_EQ(args.next_group(4, "Too many features").error_code(), -EINVAL);
		EXPECT_STREQ(error(), "Too many features");
	}
	{
		Argv a({"3", "a", "b"});
		TableArgs args(&ti, a.argc(), a.argv());
		EXPECT_EQ(args.next_group(4, "Feature count exceeds arguments").error_code(), -EINVAL);
		EXPECT_STREQ(error(), "Feature count exceeds arguments");
	}
	{
		Argv a({"0"});
		TableArgs args(&ti, a.argc(), a.argv());
		EXPECT_EQ(args.next_group(4, "x").value(), 0u);
		EXPECT_EQ(args.remaining(), 0u);
	}
	{
		Argv a({"x1"});
		TableArgs args(&ti, a.argc(), a.argv());
		EXPECT_EQ(args.next_group(4, "Bad feature count").error_code(), -EINVAL);
		EXPECT_STREQ(error(), "Bad feature count");
	}
}

TEST_F(TableArgsTest, FailUsesGivenErrno)
{
	TableArgs args(&ti, 0, nullptr);
	EXPECT_EQ(args.fail("Cannot allocate context", ENOMEM).code(), -ENOMEM);
	EXPECT_STREQ(error(), "Cannot allocate context");
	EXPECT_EQ(args.fail("lookup", -ENODEV).code(), -ENODEV);
}

TEST_F(TableArgsTest, MessageModeLogsInsteadOfSettingTiError)
{
	Argv a({"set_option"});
	TableArgs args(&ti, a.argc(), a.argv(), TableArgs::Mode::Message);
	EXPECT_EQ(args.expect_count(2, "Invalid message argument count").error_code(), -EINVAL);
	EXPECT_EQ(error(), nullptr);
	EXPECT_TRUE(user::log_contains("message rejected: Invalid message argument count"));
}
