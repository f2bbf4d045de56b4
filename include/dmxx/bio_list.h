/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Singly linked bio lists through bi_next (the kernel's struct bio_list):
 * the submission lists, rescue lists and deferred lists all use these.
 */
#pragma once

#include <dmxx/bio.h>
#include <dmxx/platform.h>

namespace dmxx {

inline void bio_list_add(dmxx_bio_list &l, bio *b)
{
	pf::bio_set_next(b, nullptr);
	if (l.tail)
		pf::bio_set_next(l.tail, b);
	else
		l.head = b;
	l.tail = b;
}

inline bio *bio_list_pop(dmxx_bio_list &l)
{
	bio *b = l.head;
	if (b) {
		l.head = pf::bio_next(b);
		if (!l.head)
			l.tail = nullptr;
		pf::bio_set_next(b, nullptr);
	}
	return b;
}

/* Append all of @src to @dst; @src ends empty. */
inline void bio_list_merge(dmxx_bio_list &dst, dmxx_bio_list &src)
{
	if (!src.head)
		return;
	if (dst.tail)
		pf::bio_set_next(dst.tail, src.head);
	else
		dst.head = src.head;
	dst.tail = src.tail;
	src = {};
}

} // namespace dmxx
