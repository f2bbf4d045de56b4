/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel platform: inline access to struct bio and struct dm_target.
 *
 * The C++ core cannot include kernel headers, and an out-of-line C call per
 * field would cost a call and a return thunk on every bio. Instead we read
 * fields at offsets generated from this kernel's headers at build time
 * (dmxx_kernel_offsets.h), so each access compiles to one load or store.
 * Only functions that are out-of-line in the kernel too are declared here.
 */
#pragma once

#include <dmxx/types.h>
#include <dmxx_kernel_offsets.h>

struct bio;
struct block_device;
struct dm_target;

extern "C" {
/* Exported kernel functions, called directly (same ABI, no glue). */
void bio_associate_blkg(struct bio *bio);
void *dm_per_bio_data(struct bio *bio, usize data_size);
struct bio *dm_bio_from_per_bio_data(void *data, usize data_size);
void dm_accept_partial_bio(struct bio *bio, unsigned n_sectors);
}

namespace dmxx::pf {

template <typename T> inline T &field(const void *obj, usize off)
{
	return *reinterpret_cast<T *>(reinterpret_cast<uptr>(obj) + off);
}

inline sector_t bio_sector(const bio *b) { return field<sector_t>(b, DMXX_BIO_SECTOR); }
inline void bio_set_sector(bio *b, sector_t s) { field<sector_t>(b, DMXX_BIO_SECTOR) = s; }
inline u32 bio_size(const bio *b) { return field<u32>(b, DMXX_BIO_SIZE); }
inline u32 bio_opf(const bio *b) { return field<u32>(b, DMXX_BIO_OPF); }
inline block_device *bio_bdev(const bio *b) { return field<block_device *>(b, DMXX_BIO_BDEV); }
inline u8 bio_status(const bio *b) { return field<u8>(b, DMXX_BIO_STATUS); }
inline void bio_set_status(bio *b, u8 s) { field<u8>(b, DMXX_BIO_STATUS) = s; }
inline bio *bio_next(const bio *b) { return field<bio *>(b, DMXX_BIO_NEXT); }
using bio_end_io_fn = void (*)(bio *);
inline bio_end_io_fn bio_end_io(const bio *b) { return field<bio_end_io_fn>(b, DMXX_BIO_END_IO); }
inline void bio_set_end_io(bio *b, bio_end_io_fn fn) { field<bio_end_io_fn>(b, DMXX_BIO_END_IO) = fn; }
inline void *bio_private(const bio *b) { return field<void *>(b, DMXX_BIO_PRIVATE); }
inline void bio_set_private(bio *b, void *p) { field<void *>(b, DMXX_BIO_PRIVATE) = p; }
inline void bio_set_next(bio *b, bio *n) { field<bio *>(b, DMXX_BIO_NEXT) = n; }

/* bio_set_dev(): the kernel's inline, over generated offsets. */
inline void bio_set_dev(bio *b, block_device *bdev)
{
	u16 &flags = field<u16>(b, DMXX_BIO_FLAGS);
	flags &= u16(~(1u << DMXX_BIO_FLAG_REMAPPED));
	if (bio_bdev(b) != bdev)
		flags &= u16(~(1u << DMXX_BIO_FLAG_BPS_THROTTLED));
	field<block_device *>(b, DMXX_BIO_BDEV) = bdev;
	bio_associate_blkg(b);
}

inline void *per_bio_data(bio *b, usize size) { return dm_per_bio_data(b, size); }
inline bio *bio_from_per_bio_data(void *data, usize size)
{
	return dm_bio_from_per_bio_data(data, size);
}
inline void accept_partial_bio(bio *b, unsigned sectors) { dm_accept_partial_bio(b, sectors); }

inline sector_t ti_begin(const dm_target *ti) { return field<sector_t>(ti, DMXX_TI_BEGIN); }
inline sector_t ti_len(const dm_target *ti) { return field<sector_t>(ti, DMXX_TI_LEN); }
inline void *ti_private(const dm_target *ti) { return field<void *>(ti, DMXX_TI_PRIVATE); }
inline void ti_set_private(dm_target *ti, void *p) { field<void *>(ti, DMXX_TI_PRIVATE) = p; }

} // namespace dmxx::pf
