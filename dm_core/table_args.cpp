// SPDX-License-Identifier: GPL-2.0
#include <dmxx/table_args.h>

namespace dmxx {

Result<u64> parse_u64(const char *s)
{
	if (!s || !*s)
		return err(EINVAL);
	u64 v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return err(EINVAL);
		u64 digit = u64(*s - '0');
		if (v > (~0ull - digit) / 10)
			return err(ERANGE);
		v = v * 10 + digit;
	}
	return v;
}

bool str_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool str_eq_nocase(const char *a, const char *b)
{
	while (*a && lower(*a) == lower(*b)) {
		a++;
		b++;
	}
	return lower(*a) == lower(*b);
}

Error TableArgs::fail(const char *msg, int errnum)
{
	if (m_mode == Mode::Table)
		dmxx_ti_set_error(m_ti, msg);
	else
		dmxx_log(DMXX_LOG_WARN, "message rejected: %s", msg);
	return err(errnum);
}

Result<void> TableArgs::expect_count(unsigned n, const char *msg)
{
	if (m_argc != n)
		return fail(msg);
	return {};
}

Result<void> TableArgs::expect_count_between(unsigned lo, unsigned hi, const char *msg)
{
	if (m_argc < lo || m_argc > hi)
		return fail(msg);
	return {};
}

Result<const char *> TableArgs::next_string(const char *msg)
{
	if (m_pos >= m_argc)
		return fail(msg);
	return static_cast<const char *>(m_argv[m_pos++]);
}

Result<u64> TableArgs::next_u64(const char *msg, u64 lo, u64 hi)
{
	if (m_pos >= m_argc)
		return fail(msg);
	auto v = parse_u64(m_argv[m_pos]);
	if (v.is_error() || v.value() < lo || v.value() > hi)
		return fail(msg);
	m_pos++;
	return v.value();
}

Result<u32> TableArgs::next_u32(const char *msg, u32 lo, u32 hi)
{
	u64 v = TRY(next_u64(msg, lo, hi));
	return u32(v);
}

Result<unsigned> TableArgs::next_group(unsigned max, const char *msg)
{
	u32 n = TRY(next_u32(msg, 0, max));
	if (n > remaining())
		return fail(msg);
	return unsigned(n);
}

} // namespace dmxx
