/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace platform: the model's struct bio and struct dm_target, and the
 * inline accessors the core uses (the same names as the kernel's
 * dm_core/kernel/include/dmxx/impl/bio_access.h, over plain fields here).
 *
 * struct block_device and struct dm_dev are defined by the model
 * (<dmxx/user/block.h>, dm_core/user/dm.cpp): the core only holds pointers.
 * No system includes: the portable core is built with -nostdinc.
 */
#pragma once

#include <dmxx/impl/platform_config.h>
#include <dmxx/types.h>

struct bio;
struct block_device;
struct dm_target;
struct dmxx_target_desc;

typedef void (*dmxx_bio_end_io_t)(struct bio *bio);

/*
 * The model's bio: one contiguous data buffer instead of a bvec array.
 * Fields named as in the kernel where one exists.
 */
struct bio {
	struct bio *bi_next;          /* submission and deferred lists */
	struct block_device *bi_bdev;
	u32 bi_opf;                   /* DMXX_REQ_OP_* | DMXX_REQ_* flags */
	u16 bi_flags;                 /* 1 << DMXX_BIO_FLAG_* */
	u8 bi_status;                 /* DMXX_BLK_STS_* */
	sector_t bi_sector;           /* bi_iter.bi_sector */
	u32 bi_size;                  /* bi_iter.bi_size, bytes */
	dmxx_bio_end_io_t bi_end_io;
	void *bi_private;
	u8 *bi_data;                  /* bi_size bytes; NULL if the op carries no data */
	/* ---- model-private ---- */
	u32 bi_pbd_size;              /* per-bio data bytes in front of this bio */
	void *bi_dm_tio;              /* DM clone: the model's target io */
};

/* Bio memory as bio sets lay it out; the model's bios carry no vec array. */
#define DMXX_BIO_STRUCT_SIZE sizeof(struct bio)
#define DMXX_BVEC_SIZE 16

/* DM's struct dm_target, reduced to what targets and the model use. */
struct dm_target {
	sector_t begin;
	sector_t len;
	void *priv;                   /* the kernel's ti->private */
	const char *error;
	unsigned max_io_len;
	unsigned num_flush_bios;
	unsigned num_discard_bios;
	unsigned num_secure_erase_bios;
	unsigned num_write_zeroes_bios;
	unsigned per_io_data_size;
	bool flush_supported;
	bool discards_supported;
	const struct dmxx_target_desc *type;
	void *table;                  /* the model's table */
};

extern "C" {
/* dm_accept_partial_bio() of the model (dm_core/user/dm.cpp). */
void dmxx_user_accept_partial_bio(struct bio *bio, unsigned n_sectors) noexcept;
void dmxx_fatal(const char *why) noexcept;
}

namespace dmxx::pf {

inline sector_t bio_sector(const bio *b) { return b->bi_sector; }
inline void bio_set_sector(bio *b, sector_t s) { b->bi_sector = s; }
inline u32 bio_size(const bio *b) { return b->bi_size; }
inline u32 bio_opf(const bio *b) { return b->bi_opf; }
inline block_device *bio_bdev(const bio *b) { return b->bi_bdev; }
inline u8 bio_status(const bio *b) { return b->bi_status; }
inline void bio_set_status(bio *b, u8 s) { b->bi_status = s; }
inline bio *bio_next(const bio *b) { return b->bi_next; }
inline void bio_set_next(bio *b, bio *n) { b->bi_next = n; }
using bio_end_io_fn = void (*)(bio *);
inline bio_end_io_fn bio_end_io(const bio *b) { return b->bi_end_io; }
inline void bio_set_end_io(bio *b, bio_end_io_fn fn) { b->bi_end_io = fn; }
inline void *bio_private(const bio *b) { return b->bi_private; }
inline void bio_set_private(bio *b, void *p) { b->bi_private = p; }

inline void bio_set_dev(bio *b, block_device *bdev)
{
	b->bi_flags &= u16(~(1u << DMXX_BIO_FLAG_REMAPPED));
	if (b->bi_bdev != bdev)
		b->bi_flags &= u16(~(1u << DMXX_BIO_FLAG_BPS_THROTTLED));
	b->bi_bdev = bdev;
}

/* Per-bio data sits right in front of the clone, as DM's front_pad does. */
inline void *per_bio_data(bio *b, usize size)
{
	if (size > b->bi_pbd_size)
		dmxx_fatal("per_bio_data larger than the target's per_io_data_size");
	return reinterpret_cast<u8 *>(b) - size;
}

inline bio *bio_from_per_bio_data(void *data, usize size)
{
	return reinterpret_cast<bio *>(static_cast<u8 *>(data) + size);
}

inline void accept_partial_bio(bio *b, unsigned sectors) { dmxx_user_accept_partial_bio(b, sectors); }

inline sector_t ti_begin(const dm_target *ti) { return ti->begin; }
inline sector_t ti_len(const dm_target *ti) { return ti->len; }
inline void *ti_private(const dm_target *ti) { return ti->priv; }
inline void ti_set_private(dm_target *ti, void *p) { ti->priv = p; }

} // namespace dmxx::pf
