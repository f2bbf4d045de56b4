/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bio access for the portable core.
 *
 * The accessors themselves are platform inlines (<dmxx/impl/bio_access.h>):
 * generated-offset loads in the kernel, plain fields in userspace. This
 * header adds the operation predicates targets use, in one place.
 */
#pragma once

#include <dmxx/impl/bio_access.h>
#include <dmxx/platform.h>
#include <dmxx/types.h>

namespace dmxx {

using pf::bio_bdev;
using pf::bio_next;
using pf::bio_opf;
using pf::bio_sector;
using pf::bio_set_dev;
using pf::bio_set_next;
using pf::bio_set_sector;
using pf::bio_set_status;
using pf::bio_size;
using pf::bio_status;

inline u32 bio_op(const bio *b) { return bio_opf(b) & DMXX_REQ_OP_MASK; }
inline bool bio_is_write(const bio *b) { return (bio_op(b) & 1) != 0; } /* odd ops write */
inline bool bio_is_flush(const bio *b) { return (bio_opf(b) & DMXX_REQ_PREFLUSH) != 0; }
inline bool bio_is_fua(const bio *b) { return (bio_opf(b) & DMXX_REQ_FUA) != 0; }
inline bool bio_is_discard(const bio *b) { return bio_op(b) == DMXX_REQ_OP_DISCARD; }
inline u32 bio_sectors(const bio *b) { return bio_size(b) >> 9; }
inline sector_t bio_end_sector(const bio *b) { return bio_sector(b) + bio_sectors(b); }

/* Complete @b with @status (a DMXX_BLK_STS_* code). */
inline void bio_complete(bio *b, u8 status)
{
	bio_set_status(b, status);
	dmxx_bio_endio(b);
}

} // namespace dmxx
