/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Running thin-provisioning-tools (the external oracle) from tests.
 *
 * Tests that need the tools call require_oracle() first: it skips the test,
 * saying why, only when thin_check is not installed (scripts/setup installs
 * thin-provisioning-tools, so on a set-up machine they always run).
 */
#pragma once

#include <string>

#include "../../../dm_thin/persistent/block_device.h"

namespace dmxx::thin::test {

struct CmdResult {
	int status = -1; /* exit status, or -1 if it did not run or was killed */
	std::string output; /* stdout and stderr together */
};

/* Run @cmd through /bin/sh, capturing its output. */
CmdResult run_command(const std::string &cmd);

/* Full path of a thin-provisioning-tools program, or "" if not installed. */
std::string oracle_tool(const char *name);

/* A fresh private directory for images (removed by the caller's TempDir). */
class TempDir {
public:
	TempDir();
	~TempDir();
	const std::string &path() const { return m_path; }
	std::string file(const std::string &name) const { return m_path + "/" + name; }

private:
	std::string m_path;
};

/* Copy a device into an image file. */
bool write_image(pdata::BlockDevice &dev, const std::string &path);

/* thin_check on an image: "" if it passes, else its output. */
std::string thin_check(const std::string &image);

/* thin_dump of an image into @xml; "" or the failure. */
std::string thin_dump(const std::string &image, std::string &xml, bool metadata_snap = false);

} // namespace dmxx::thin::test

/* Skip the current GoogleTest test if the oracle is missing. */
#define REQUIRE_ORACLE()                                                                      \
	do {                                                                                   \
		if (::dmxx::thin::test::oracle_tool("thin_check").empty())                      \
			GTEST_SKIP() << "thin_check (thin-provisioning-tools) is not installed; " \
					"run scripts/setup";                                    \
	} while (0)
