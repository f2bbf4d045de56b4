/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a bio-prison cell locks: a range of blocks in one address space of
 * one thin device.
 *
 * Two keys conflict when they name the same space and device and their
 * block ranges overlap. A key's range may not cross a region boundary
 * (kCellRegionBlocks): that is what lets the prison shard by region, since
 * two conflicting keys then always fall in the same region. Callers with a
 * longer range (a large discard) split it with cell_range_piece_end().
 */
#pragma once

#include <dmxx/types.h>

namespace dmxx::thin {

/* The address space a key's blocks live in. */
enum class CellSpace : u8 {
	Virtual = 0, /* a thin device's logical blocks */
	Data = 1,    /* the pool's data device blocks */
};

/*
 * Regions of 1024 blocks: big enough that a discard needs few cells (64 MiB
 * at the smallest thin block size), small enough that unrelated I/O spreads
 * over many shards.
 */
inline constexpr unsigned kCellRegionShift = 10;
inline constexpr u64 kCellRegionBlocks = u64(1) << kCellRegionShift;

struct CellKey {
	u64 begin; /* first block */
	u64 end;   /* one past the last block */
	u32 dev;   /* thin device id (24 bits in thin metadata) */
	CellSpace space;

	constexpr u64 region() const { return begin >> kCellRegionShift; }

	/* Non-empty, and inside one region. */
	constexpr bool valid() const
	{
		return begin < end &&
		       (begin >> kCellRegionShift) == ((end - 1) >> kCellRegionShift);
	}

	/* Same space and device, overlapping ranges. */
	constexpr bool conflicts_with(const CellKey &o) const
	{
		return space == o.space && dev == o.dev && begin < o.end && o.begin < end;
	}
};

constexpr CellKey virtual_block_key(u32 dev, u64 block)
{
	return {block, block + 1, dev, CellSpace::Virtual};
}

/*
 * Data blocks belong to the pool, not to one thin device: callers that want
 * two devices sharing a block to meet in one cell pass the same @dev for
 * both (e.g. 0).
 */
constexpr CellKey data_block_key(u32 dev, u64 block)
{
	return {block, block + 1, dev, CellSpace::Data};
}

constexpr CellKey range_key(CellSpace space, u32 dev, u64 begin, u64 end)
{
	return {begin, end, dev, space};
}

/*
 * Where the first key-sized piece of [begin, end) stops: at @end or at the
 * next region boundary, whichever comes first. begin < end.
 */
constexpr u64 cell_range_piece_end(u64 begin, u64 end)
{
	u64 boundary = (begin | (kCellRegionBlocks - 1)) + 1;
	/* boundary wraps to 0 only in the last region of the u64 space. */
	return boundary != 0 && boundary < end ? boundary : end;
}

/*
 * Orders keys of disjoint ranges, and calls overlapping ones equal: < 0 if
 * @a lies wholly before @b, > 0 if wholly after, 0 if they conflict.
 */
constexpr int cell_key_compare(const CellKey &a, const CellKey &b)
{
	if (a.space != b.space)
		return a.space < b.space ? -1 : 1;
	if (a.dev != b.dev)
		return a.dev < b.dev ? -1 : 1;
	if (a.end <= b.begin)
		return -1;
	if (a.begin >= b.end)
		return 1;
	return 0;
}

} // namespace dmxx::thin
