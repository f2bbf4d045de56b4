/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The persistent exception store's on-disk format (Linux's "P" store), as
 * small pure functions that tests drive with byte fixtures.
 *
 * The COW device is a sequence of chunks (chunk_size sectors each):
 *
 *   chunk 0          header: le32 magic "SnAp" (0x70416e53), le32 valid,
 *                    le32 version (1), le32 chunk_size in sectors; the rest
 *                    of the chunk is zero
 *   chunk 1          metadata area 0
 *   chunks 2..E+1    data chunks described by area 0
 *   chunk E+2        metadata area 1, and so on, with E exceptions per area
 *
 * An area is an array of little-endian (le64 old_chunk, le64 new_chunk)
 * pairs, E = chunk bytes / 16 of them. new_chunk 0 cannot be a data chunk
 * (it is the header), so an entry with new_chunk 0 ends the list; an area
 * without one is full and the list continues in the next area. Areas are
 * written whole, after the data they describe is durable.
 */
#pragma once

#include <dmxx/endian.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

namespace dmxx::snap {

using chunk_t = u64;

constexpr u32 disk_magic = 0x70416e53; /* "SnAp" read as a little-endian u32 */
constexpr u32 disk_version = 1;
constexpr chunk_t header_chunks = 1;
constexpr u32 disk_exception_bytes = 16;
constexpr u32 default_chunk_sectors = 32; /* 16 KiB, when the table says 0 */

struct DiskHeader {
	le32 magic;
	le32 valid;
	le32 version;
	le32 chunk_size;
};
static_assert(sizeof(DiskHeader) == 16);

struct DiskException {
	le64 old_chunk;
	le64 new_chunk;
};
static_assert(sizeof(DiskException) == disk_exception_bytes);

struct Header {
	u32 magic;
	u32 valid;
	u32 version;
	u32 chunk_size;
};

/* Writes the 16 header bytes at @buf (the caller zeroes the rest of the chunk). */
void encode_header(void *buf, const Header &h);
Header decode_header(const void *buf);

struct CoreException {
	chunk_t old_chunk;
	chunk_t new_chunk;
};

void encode_exception(void *area, u32 index, const CoreException &e);
CoreException decode_exception(const void *area, u32 index);

/* Where things are on a COW device of a given chunk size. */
class AreaLayout {
public:
	constexpr AreaLayout() = default;
	constexpr explicit AreaLayout(u32 chunk_sectors)
		: m_per_area(chunk_sectors * (512 / disk_exception_bytes))
	{
	}

	constexpr u32 exceptions_per_area() const { return m_per_area; }
	/* The chunk holding metadata area @area. */
	constexpr chunk_t area_location(u64 area) const
	{
		return header_chunks + (chunk_t(m_per_area) + 1) * area;
	}
	constexpr bool is_area(chunk_t c) const
	{
		return c >= header_chunks && (c - header_chunks) % (chunk_t(m_per_area) + 1) == 0;
	}
	/* Header or area: never a place for copied data. */
	constexpr bool is_metadata(chunk_t c) const { return c < header_chunks || is_area(c); }
	/* The first data chunk a fresh store hands out. */
	static constexpr chunk_t first_free() { return header_chunks + 1; }
	/* The next free chunk must not be an area: step over it. */
	constexpr chunk_t skip_metadata(chunk_t next_free) const
	{
		return is_area(next_free) ? next_free + 1 : next_free;
	}

private:
	u32 m_per_area = 0;
};

/* What scanning one metadata area found. */
struct AreaScan {
	u32 count;         /* entries before the terminator (exceptions_per_area if full) */
	bool full;         /* no terminator: the list continues in the next area */
	chunk_t max_new;   /* largest new_chunk seen (0 if none) */
};

/*
 * Decode the entries of @area in order, calling @fn(CoreException) for each
 * until the terminator; stops early with @fn's error.
 */
template <typename Fn> Result<AreaScan> scan_area(const void *area, const AreaLayout &layout, Fn fn)
{
	AreaScan scan{0, true, 0};
	for (u32 i = 0; i < layout.exceptions_per_area(); i++) {
		CoreException e = decode_exception(area, i);
		if (e.new_chunk == 0) {
			scan.count = i;
			scan.full = false;
			return scan;
		}
		if (e.new_chunk > scan.max_new)
			scan.max_new = e.new_chunk;
		TRY(fn(e));
	}
	scan.count = layout.exceptions_per_area();
	return scan;
}

/*
 * Can @e come from a well-formed store on a device of @cow_chunks chunks?
 * Its new chunk must be a data chunk inside the device. (The kernel does not
 * check; we refuse such metadata rather than send I/O beyond the device.)
 */
constexpr bool exception_plausible(const AreaLayout &layout, chunk_t cow_chunks, const CoreException &e)
{
	return e.new_chunk < cow_chunks && !layout.is_metadata(e.new_chunk);
}

/* status: sectors in use by a P store, as the kernel reports them. */
struct Usage {
	sector_t total;
	sector_t allocated;
	sector_t metadata;
};
constexpr Usage persistent_usage(sector_t cow_sectors, u32 chunk_sectors, chunk_t next_free,
				 u64 current_area)
{
	return {cow_sectors, sector_t(next_free) * chunk_sectors,
		sector_t(current_area + 1 + header_chunks) * chunk_sectors};
}

/*
 * Table-line chunk size checks (power of two, a multiple of both devices'
 * logical block size, below 2^31 bytes): nullptr if fine, else the reason,
 * worded as the kernel's.
 */
const char *chunk_size_problem(u32 chunk_sectors, unsigned origin_lbs, unsigned cow_lbs);

} // namespace dmxx::snap
