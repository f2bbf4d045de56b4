// SPDX-License-Identifier: GPL-2.0
/*
 * Btree node layout helpers and the node validator.
 */
#include "persistent/btree_node.h"

#include <dmxx/mem.h>

#include "persistent/checksum.h"

namespace dmxx::pdata {

int ConstNode::lower_bound(u64 key) const
{
	/* Invariant: keys[lo] <= key < keys[hi], with virtual keys[-1] = -inf, keys[n] = +inf. */
	int lo = -1, hi = int(nr_entries());
	while (hi - lo > 1) {
		int mid = lo + (hi - lo) / 2;
		if (this->key(u32(mid)) <= key)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

u32 ConstNode::upper_index(u64 key) const
{
	int i = lower_bound(key);
	if (i >= 0 && this->key(u32(i)) == key)
		return u32(i);
	return u32(i + 1);
}

void Node::format(u32 flags, u32 value_size)
{
	mem_zero(raw(), METADATA_BLOCK_SIZE);
	header().flags = to_le32(flags);
	header().nr_entries = to_le32(0);
	header().max_entries = to_le32(btree_max_entries(value_size));
	header().value_size = to_le32(value_size);
}

static inline u8 *key_addr(const Node &n, u32 i) { return n.raw() + sizeof(NodeHeader) + 8 * usize(i); }

void Node::insert_gap(u32 i) const
{
	u32 n = nr_entries();
	usize vs = value_size();
	mem_move(key_addr(*this, i + 1), key_addr(*this, i), 8 * usize(n - i));
	mem_move(value(i + 1), value(i), vs * (n - i));
	set_nr_entries(n + 1);
}

void Node::erase(u32 i, u32 count) const
{
	u32 n = nr_entries();
	usize vs = value_size();
	mem_move(key_addr(*this, i), key_addr(*this, i + count), 8 * usize(n - i - count));
	mem_move(value(i), value(i + count), vs * (n - i - count));
	set_nr_entries(n - count);
}

void Node::append_from(const ConstNode &src, u32 from, u32 count) const
{
	u32 n = nr_entries();
	mem_move(key_addr(*this, n), src.key_bytes(from),
		 8 * usize(count));
	mem_move(value(n), src.value(from), usize(value_size()) * count);
	set_nr_entries(n + count);
}

void Node::prepend_from(const ConstNode &src, u32 from, u32 count) const
{
	u32 n = nr_entries();
	usize vs = value_size();
	mem_move(key_addr(*this, count), key_addr(*this, 0), 8 * usize(n));
	mem_move(value(count), value(0), vs * n);
	mem_move(key_addr(*this, 0), src.key_bytes(from),
		 8 * usize(count));
	mem_move(value(0), src.value(from), vs * count);
	set_nr_entries(n + count);
}

namespace {

class NodeValidator final : public BlockValidator {
public:
	constexpr NodeValidator() = default;

	const char *name() const override { return "btree_node"; }

	void prepare_for_write(void *data, block_t where) const override
	{
		auto *h = static_cast<NodeHeader *>(data);
		h->blocknr = to_le64(where);
		h->csum = to_le32(block_checksum(&h->flags, METADATA_BLOCK_SIZE - sizeof(le32),
						 BTREE_NODE_CSUM_XOR));
	}

	Result<void> check(const void *data, block_t where, CheckFailure &why) const override
	{
		ConstNode n(data);
		const NodeHeader &h = n.header();
		if (n.blocknr() != where) {
			why.set("btree node at block %llu records location %llu",
				(unsigned long long)where, (unsigned long long)n.blocknr());
			return err(EILSEQ);
		}
		u32 sum = block_checksum(&h.flags, METADATA_BLOCK_SIZE - sizeof(le32),
					 BTREE_NODE_CSUM_XOR);
		if (sum != from_le(h.csum)) {
			why.set("btree node at block %llu: checksum %08x, computed %08x",
				(unsigned long long)where, from_le(h.csum), sum);
			return err(EILSEQ);
		}
		u64 room = u64(n.max_entries()) * (8 + u64(n.value_size()));
		if (sizeof(NodeHeader) + room > METADATA_BLOCK_SIZE) {
			why.set("btree node at block %llu: max_entries %u of %u-byte values overflow the block",
				(unsigned long long)where, n.max_entries(), n.value_size());
			return err(EILSEQ);
		}
		if (n.nr_entries() > n.max_entries()) {
			why.set("btree node at block %llu: nr_entries %u > max_entries %u",
				(unsigned long long)where, n.nr_entries(), n.max_entries());
			return err(EILSEQ);
		}
		u32 f = n.flags();
		if (f != NODE_INTERNAL && f != NODE_LEAF) {
			why.set("btree node at block %llu: flags %#x are neither internal nor leaf",
				(unsigned long long)where, f);
			return err(EILSEQ);
		}
		return {};
	}
};

constinit const NodeValidator g_node_validator;

} // namespace

const BlockValidator &btree_node_validator() { return g_node_validator; }

} // namespace dmxx::pdata
