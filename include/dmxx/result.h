/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Errors as values: Result<T> holds either a T or a negative errno.
 *
 * There is no unwinding in the kernel build (-fno-exceptions), so every
 * fallible function returns a Result and every caller decides. [[nodiscard]]
 * makes a dropped error a compile-time warning (an error with -Werror).
 *
 *   Result<Foo *> make_foo();
 *   Foo *foo = TRY(make_foo());       // returns the error to our caller
 *   TRY(do_something(foo));           // same, for Result<void>
 */
#pragma once

#include <dmxx/errno.h>
#include <dmxx/placement.h>
#include <dmxx/types.h>
#include <dmxx/utility.h>

namespace dmxx {

/* A negative errno, made explicit so it cannot be confused with a count. */
class [[nodiscard]] Error {
public:
	static constexpr Error from_errno(int e) { return Error(e < 0 ? e : -e); }
	constexpr int code() const { return m_code; } /* negative */
	constexpr bool operator==(const Error &o) const { return m_code == o.m_code; }

private:
	explicit constexpr Error(int negative) : m_code(negative) {}
	int m_code;
};

constexpr Error err(int e) { return Error::from_errno(e); }

template <typename T> class [[nodiscard]] Result {
public:
	constexpr Result(const T &v) : m_ok(true) { new (in_place, &m_value) T(v); }
	constexpr Result(T &&v) : m_ok(true) { new (in_place, &m_value) T(dmxx::move(v)); }
	constexpr Result(Error e) : m_error(e.code()), m_ok(false) {}
	Result(const Result &) = delete;
	Result &operator=(const Result &) = delete;
	Result(Result &&o) : m_ok(o.m_ok)
	{
		if (m_ok)
			new (in_place, &m_value) T(dmxx::move(o.m_value));
		else
			m_error = o.m_error;
	}
	~Result()
	{
		if (m_ok)
			m_value.~T();
	}

	constexpr bool is_ok() const { return m_ok; }
	constexpr bool is_error() const { return !m_ok; }
	constexpr Error error() const { return Error::from_errno(m_error); }
	constexpr int error_code() const { return m_ok ? 0 : m_error; }
	T &value() { return m_value; }
	const T &value() const { return m_value; }
	T release_value() { return dmxx::move(m_value); }

private:
	union {
		T m_value;
		int m_error;
	};
	bool m_ok;
};

template <> class [[nodiscard]] Result<void> {
public:
	constexpr Result() : m_error(0) {}
	constexpr Result(Error e) : m_error(e.code()) {}
	constexpr bool is_ok() const { return m_error == 0; }
	constexpr bool is_error() const { return m_error != 0; }
	constexpr Error error() const { return Error::from_errno(m_error); }
	constexpr int error_code() const { return m_error; }
	void release_value() {}

private:
	int m_error;
};

/* Turn a kernel-style "0 or negative errno" int into a Result<void>. */
constexpr Result<void> from_errno_int(int r)
{
	if (r < 0)
		return err(r);
	return {};
}

} // namespace dmxx

#define TRY(expr)                                                                     \
	({                                                                            \
		auto _dmxx_r = (expr);                                                \
		if (_dmxx_r.is_error())                                               \
			return _dmxx_r.error();                                       \
		_dmxx_r.release_value();                                              \
	})
