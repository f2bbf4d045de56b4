/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared test helpers. include/dmxx/errno.h steps aside when <cerrno> came
 * first (same Linux values), so include order does not matter.
 */
#pragma once

#include <dmxx/passthrough_target.h>
#include <dmxx/target.h>
#include <dmxx/user/dm.h>
#include <dmxx/user/testing.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace dmxx::test {

/* A repeatable pattern for @bytes at @sector, tagged by @seed. */
inline std::vector<u8> pattern(sector_t sector, size_t bytes, unsigned seed = 1)
{
	std::vector<u8> v(bytes);
	for (size_t i = 0; i < bytes; i++)
		v[i] = u8((sector * 131 + i * 7 + seed * 29 + (i >> 9)) & 0xff);
	return v;
}

/*
 * Every test starts with no fault rules and a clean log, and must leave the
 * dmxx_alloc live count as it found it (ASan checks operator new leaks).
 */
class DmxxTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		user::clear_alloc_faults();
		user::log_clear();
		user::set_violation_mode(user::ViolationMode::Abort);
		m_live = user::alloc_stats().live;
	}
	void TearDown() override
	{
		user::clear_alloc_faults();
		EXPECT_EQ(user::alloc_stats().live, m_live) << "dmxx_alloc without dmxx_free";
		user::set_violation_mode(user::ViolationMode::Abort);
	}

private:
	uint64_t m_live = 0;
};

} // namespace dmxx::test
