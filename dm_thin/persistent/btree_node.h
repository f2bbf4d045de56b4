/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A btree node as it sits in a 4 KiB metadata block (the kernel's format).
 *
 *   le32 csum        checksum of the rest of the block, salt BTREE_NODE_CSUM_XOR
 *   le32 flags       NODE_INTERNAL or NODE_LEAF
 *   le64 blocknr     the node's own location (catches misdirected I/O)
 *   le32 nr_entries
 *   le32 max_entries the capacity, fixed when the node is formatted
 *   le32 value_size  8 in internal nodes (child block numbers)
 *   le32 padding
 *   le64 keys[max_entries]
 *   u8   values[max_entries][value_size]
 *
 * Values start after max_entries keys, not nr_entries, so a node's layout
 * never changes as it fills. Internal nodes store in key[i] a lower bound of
 * the keys under child i (it may lag behind after removals; lookups pick the
 * last key <= the one searched). max_entries is a multiple of three so that
 * a node can always be split in two or three pieces of at least a third.
 *
 * This header is shared by the btree, its checker and tests; these views do
 * no bounds checking beyond what the validator guarantees (max_entries fits
 * the block), so validate a node before trusting it.
 */
#pragma once

#include <dmxx/endian.h>
#include <dmxx/types.h>

#include "persistent/block_cache.h"

namespace dmxx::pdata {

enum : u32 {
	NODE_INTERNAL = 1,
	NODE_LEAF = 1 << 1,
};

struct NodeHeader {
	le32 csum;
	le32 flags;
	le64 blocknr;
	le32 nr_entries;
	le32 max_entries;
	le32 value_size;
	le32 padding;
};
static_assert(sizeof(NodeHeader) == 32, "kernel node_header is 32 bytes");

/* The kernel's calc_max_entries(): as many (key, value) pairs as fit, rounded down to 3k. */
constexpr u32 btree_max_entries(u32 value_size)
{
	return u32((METADATA_BLOCK_SIZE - sizeof(NodeHeader)) / (8 + value_size) / 3 * 3);
}

/* The largest value a btree accepts: at least 3 entries per node. */
constexpr u32 BTREE_MAX_VALUE_SIZE = u32((METADATA_BLOCK_SIZE - sizeof(NodeHeader)) / 3 - 8);

/* Read-only view of a node in a block buffer. */
class ConstNode {
public:
	explicit ConstNode(const void *block) : m_b(static_cast<const u8 *>(block)) {}

	const NodeHeader &header() const { return *reinterpret_cast<const NodeHeader *>(m_b); }
	u32 flags() const { return from_le(header().flags); }
	bool is_leaf() const { return flags() & NODE_LEAF; }
	bool is_internal() const { return flags() & NODE_INTERNAL; }
	u32 nr_entries() const { return from_le(header().nr_entries); }
	u32 max_entries() const { return from_le(header().max_entries); }
	u32 value_size() const { return from_le(header().value_size); }
	u64 blocknr() const { return from_le(header().blocknr); }

	u64 key(u32 i) const { return load_le64(key_bytes(i)); }
	const u8 *key_bytes(u32 i) const { return m_b + sizeof(NodeHeader) + 8 * usize(i); }
	const u8 *value(u32 i) const { return values_base() + usize(value_size()) * i; }
	/* Internal nodes (and upper levels' leaves): the child/subtree block. */
	u64 value64(u32 i) const { return load_le64(value(i)); }
	const u8 *values_base() const
	{
		return m_b + sizeof(NodeHeader) + 8 * usize(max_entries());
	}

	/* Index of the last key <= @key, or -1 if every key is greater. */
	int lower_bound(u64 key) const;
	/* Index of the first key >= @key, or nr_entries() if none. */
	u32 upper_index(u64 key) const;

protected:
	const u8 *m_b;
};

/* Writable view. */
class Node : public ConstNode {
public:
	explicit Node(void *block) : ConstNode(block) {}

	NodeHeader &header() const { return *reinterpret_cast<NodeHeader *>(raw()); }
	u8 *raw() const { return const_cast<u8 *>(m_b); }

	/* Format an empty node (the whole block is zeroed first). */
	void format(u32 flags, u32 value_size);

	void set_flags(u32 f) const { header().flags = to_le32(f); }
	void set_nr_entries(u32 n) const { header().nr_entries = to_le32(n); }
	void set_key(u32 i, u64 k) const { store_le64(raw() + sizeof(NodeHeader) + 8 * usize(i), k); }
	u8 *value(u32 i) const { return const_cast<u8 *>(ConstNode::value(i)); }
	void set_value64(u32 i, u64 v) const { store_le64(value(i), v); }

	/* Open a gap of one entry at @i (entries @i.. move right). Needs room. */
	void insert_gap(u32 i) const;
	/* Close @count entries at @i. */
	void erase(u32 i, u32 count) const;
	/* Append @count entries of @src starting at @from (same value size). */
	void append_from(const ConstNode &src, u32 from, u32 count) const;
	/* Prepend @count entries of @src starting at @from. */
	void prepend_from(const ConstNode &src, u32 from, u32 count) const;
};

/* The btree node validator (checksum, location, sane header). */
const BlockValidator &btree_node_validator();

} // namespace dmxx::pdata
