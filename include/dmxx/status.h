/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Writing a status line into DM's result buffer (the kernel's DMEMIT):
 * appends while there is room and silently truncates, as DM expects.
 */
#pragma once

#include <dmxx/platform.h>

namespace dmxx {

enum class StatusType : int {
	Info = DMXX_STATUSTYPE_INFO,
	Table = DMXX_STATUSTYPE_TABLE,
	Ima = DMXX_STATUSTYPE_IMA,
};

/* status_flags bit: the caller asked not to flush (DM_STATUS_NOFLUSH_FLAG, private to DM). */
constexpr unsigned status_noflush = 1u << 0;

class StatusWriter {
public:
	StatusWriter(char *buf, unsigned maxlen) : m_buf(buf), m_max(maxlen)
	{
		if (m_max)
			m_buf[0] = '\0';
	}

	__attribute__((format(printf, 2, 3))) void emit(const char *fmt, ...)
	{
		if (m_len >= m_max)
			return;
		__builtin_va_list args;
		__builtin_va_start(args, fmt);
		int n = dmxx_vsnprintf(m_buf + m_len, m_max - m_len, fmt, args);
		__builtin_va_end(args);
		if (n > 0)
			m_len = (m_len + unsigned(n) < m_max) ? m_len + unsigned(n) : m_max;
	}

	unsigned length() const { return m_len; }
	bool truncated() const { return m_len >= m_max; }

private:
	char *m_buf;
	unsigned m_max;
	unsigned m_len = 0;
};

} // namespace dmxx
