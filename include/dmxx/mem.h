/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Byte-level memory operations for the core, which includes no libc headers.
 * The builtins inline small constant sizes and otherwise call memcpy/memset/
 * memcmp, which both platforms provide (the kernel exports them).
 */
#pragma once

#include <dmxx/types.h>

namespace dmxx {

inline void mem_copy(void *dst, const void *src, size_t n) { __builtin_memcpy(dst, src, n); }
inline void mem_move(void *dst, const void *src, size_t n) { __builtin_memmove(dst, src, n); }
inline void mem_set(void *dst, int byte, size_t n) { __builtin_memset(dst, byte, n); }
inline void mem_zero(void *dst, size_t n) { __builtin_memset(dst, 0, n); }
inline int mem_compare(const void *a, const void *b, size_t n) { return __builtin_memcmp(a, b, n); }
inline bool mem_equal(const void *a, const void *b, size_t n) { return __builtin_memcmp(a, b, n) == 0; }
inline size_t str_length(const char *s) { return __builtin_strlen(s); }

} // namespace dmxx
