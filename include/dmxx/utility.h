/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few pieces of <utility> and <type_traits> the core needs.
 *
 * libstdc++'s freestanding headers pull in glibc configuration headers that
 * the kernel build cannot see, so we keep our own, built on compiler
 * builtins. Keep this file small: add only what code actually uses.
 */
#pragma once

#include <dmxx/types.h>

namespace dmxx {

template <typename T> struct remove_reference { using type = T; };
template <typename T> struct remove_reference<T &> { using type = T; };
template <typename T> struct remove_reference<T &&> { using type = T; };
template <typename T> using remove_reference_t = typename remove_reference<T>::type;

template <typename T> constexpr remove_reference_t<T> &&move(T &&t) noexcept
{
	return static_cast<remove_reference_t<T> &&>(t);
}

template <typename T> constexpr T &&forward(remove_reference_t<T> &t) noexcept
{
	return static_cast<T &&>(t);
}

template <typename T> constexpr T &&forward(remove_reference_t<T> &&t) noexcept
{
	return static_cast<T &&>(t);
}

template <typename T, typename U = T> constexpr T exchange(T &obj, U &&new_value)
{
	T old = move(obj);
	obj = forward<U>(new_value);
	return old;
}

template <typename T> constexpr const T &min(const T &a, const T &b) { return b < a ? b : a; }
template <typename T> constexpr const T &max(const T &a, const T &b) { return a < b ? b : a; }

template <typename T, typename U> inline constexpr bool is_same_v = __is_same(T, U);
template <typename T> inline constexpr bool is_trivially_destructible_v =
	__has_trivial_destructor(T);

template <typename T> constexpr bool is_power_of_2(T v) { return v != 0 && (v & (v - 1)) == 0; }

} // namespace dmxx
