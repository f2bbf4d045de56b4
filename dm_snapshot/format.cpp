// SPDX-License-Identifier: GPL-2.0
#include "format.h"

#include <dmxx/mem.h>
#include <dmxx/utility.h>

namespace dmxx::snap {

void encode_header(void *buf, const Header &h)
{
	DiskHeader d{to_le32(h.magic), to_le32(h.valid), to_le32(h.version), to_le32(h.chunk_size)};
	mem_copy(buf, &d, sizeof(d));
}

Header decode_header(const void *buf)
{
	DiskHeader d;
	mem_copy(&d, buf, sizeof(d));
	return {from_le(d.magic), from_le(d.valid), from_le(d.version), from_le(d.chunk_size)};
}

void encode_exception(void *area, u32 index, const CoreException &e)
{
	u8 *p = static_cast<u8 *>(area) + usize(index) * disk_exception_bytes;
	store_le64(p, e.old_chunk);
	store_le64(p + 8, e.new_chunk);
}

CoreException decode_exception(const void *area, u32 index)
{
	const u8 *p = static_cast<const u8 *>(area) + usize(index) * disk_exception_bytes;
	return {load_le64(p), load_le64(p + 8)};
}

const char *chunk_size_problem(u32 chunk_sectors, unsigned origin_lbs, unsigned cow_lbs)
{
	if (!is_power_of_2(chunk_sectors))
		return "Chunk size is not a power of 2";
	unsigned cow_min = cow_lbs >> 9 ? cow_lbs >> 9 : 1;
	unsigned origin_min = origin_lbs >> 9 ? origin_lbs >> 9 : 1;
	if (chunk_sectors % cow_min || chunk_sectors % origin_min)
		return "Chunk size is not a multiple of device blocksize";
	if (chunk_sectors > (0x7fffffffu >> 9))
		return "Chunk size is too high";
	return nullptr;
}

} // namespace dmxx::snap
