// SPDX-License-Identifier: GPL-2.0
#include <dmxx/status.h>

#include "helpers.h"

using dmxx::StatusWriter;

TEST(StatusWriter, AppendsAndTerminates)
{
	char buf[64];
	memset(buf, 'x', sizeof(buf));
	StatusWriter w(buf, sizeof(buf));
	EXPECT_STREQ(buf, "");
	w.emit("%s %llu", "7:0", 100ull);
	w.emit(" %u", 5u);
	EXPECT_STREQ(buf, "7:0 100 5");
	EXPECT_EQ(w.length(), 9u);
	EXPECT_FALSE(w.truncated());
}

TEST(StatusWriter, TruncatesSilentlyAndStaysTruncated)
{
	char buf[8];
	StatusWriter w(buf, sizeof(buf));
	w.emit("0123456789");
	EXPECT_STREQ(buf, "0123456"); /* vsnprintf keeps room for the NUL */
	EXPECT_EQ(w.length(), 8u);
	EXPECT_TRUE(w.truncated());
	w.emit("more");
	EXPECT_STREQ(buf, "0123456");
	EXPECT_EQ(w.length(), 8u);
}

TEST(StatusWriter, ExactFitIsNotTruncatedOneMoreIs)
{
	char buf[5];
	StatusWriter a(buf, sizeof(buf));
	a.emit("abcd");
	EXPECT_STREQ(buf, "abcd");
	EXPECT_FALSE(a.truncated());

	StatusWriter b(buf, sizeof(buf));
	b.emit("abcde");
	EXPECT_STREQ(buf, "abcd");
	EXPECT_TRUE(b.truncated());
}

TEST(StatusWriter, TruncationAcrossEmits)
{
	char buf[6];
	StatusWriter w(buf, sizeof(buf));
	w.emit("abc");
	w.emit("def");
	EXPECT_STREQ(buf, "abcde");
	EXPECT_TRUE(w.truncated());
}

TEST(StatusWriter, ZeroLengthBufferIsNeverWritten)
{
	char buf[4] = {'z', 'z', 'z', '\0'};
	StatusWriter w(buf, 0);
	w.emit("abc");
	EXPECT_STREQ(buf, "zzz");
	EXPECT_TRUE(w.truncated());
	EXPECT_EQ(w.length(), 0u);
}

TEST(StatusWriter, EmptyEmitChangesNothing)
{
	char buf[4];
	StatusWriter w(buf, sizeof(buf));
	w.emit("%s", "");
	EXPECT_EQ(w.length(), 0u);
	EXPECT_STREQ(buf, "");
}
