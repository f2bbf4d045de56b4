/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading a target's table line, DM style.
 *
 * Each read names the ti->error string to report if it fails, so every
 * failure site gives the user its own precise reason, as the kernel's
 * targets do. Errors are string literals (ti->error must outlive the load).
 *
 *   TableArgs args(ti, argc, argv);
 *   TRY(args.expect_count(2, "Invalid argument count"));
 *   const char *path = TRY(args.next_string("Missing device path"));
 *   u64 start = TRY(args.next_u64("Invalid device sector"));
 */
#pragma once

#include <dmxx/platform.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

namespace dmxx {

/* Strict unsigned decimal: no sign, no spaces, no trailing bytes, no overflow. */
Result<u64> parse_u64(const char *s);
bool str_eq(const char *a, const char *b);
bool str_eq_nocase(const char *a, const char *b);

class TableArgs {
public:
	/*
	 * Table: failures set ti->error (dmsetup create/reload reports it).
	 * Message: failures are logged, since ti->error is only read at load.
	 */
	enum class Mode { Table, Message };

	TableArgs(dm_target *ti, unsigned argc, char **argv, Mode mode = Mode::Table)
		: m_ti(ti), m_argc(argc), m_argv(argv), m_mode(mode)
	{
	}

	unsigned remaining() const { return m_argc - m_pos; }
	unsigned total() const { return m_argc; }
	dm_target *target() const { return m_ti; }

	/* Record @msg as ti->error and return the error for propagation. */
	Error fail(const char *msg, int errnum = EINVAL);

	Result<void> expect_count(unsigned n, const char *msg);
	Result<void> expect_count_between(unsigned lo, unsigned hi, const char *msg);
	Result<const char *> next_string(const char *msg);
	Result<u64> next_u64(const char *msg, u64 lo = 0, u64 hi = ~0ull);
	Result<u32> next_u32(const char *msg, u32 lo = 0, u32 hi = ~0u);
	/* A counted group ("<#features> f1 f2 ..."): returns the count. */
	Result<unsigned> next_group(unsigned max, const char *msg);
	const char *peek() const { return m_pos < m_argc ? m_argv[m_pos] : nullptr; }

private:
	dm_target *m_ti;
	unsigned m_argc;
	char **m_argv;
	Mode m_mode;
	unsigned m_pos = 0;
};

} // namespace dmxx
