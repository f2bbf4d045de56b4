/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copy-on-write B+trees of u64 keys in the kernel's on-disk format (dm-btree).
 *
 * Why copy-on-write: every change shadows the nodes from the root down to
 * the leaf it touches (TransactionManager::shadow_block), so the tree that
 * the last commit points to is never modified, and a tree can be shared by
 * raising its root's count (a thin snapshot) and changed independently on
 * both sides afterwards. Sharing is broken lazily, one node at a time: when
 * a shared node is copied its children gain a parent, so their counts are
 * raised (the ValueType's inc for leaf values).
 *
 * A Btree object is a stateless descriptor (the kernel's dm_btree_info): the
 * tree is named by its root block, every update returns the new root, which
 * the caller stores in its parent structure (superblock, upper tree).
 *
 * Multi-level trees: with `levels` = N, a key is N u64s; the leaves of level
 * i < N-1 hold le64 roots of level i+1 trees, and only the last level holds
 * the caller's values. Thin's mapping tree is (device, virtual block) ->
 * data block. An upper-level value carries one reference to its subtree's
 * root block. Whole-subtree operations (thin's create, snapshot, delete of a
 * device) go through a one-level Btree over the same root whose ValueType
 * inc()s the subtree root and whose dec() deletes the subtree with del(), as
 * the kernel's dm-thin-metadata does (tests: ThinStyleSnapshotsOfSnapshots).
 *
 * Balance: remove keeps every node except the root at least a third full
 * (max_entries / 3), merging with or borrowing from a sibling on the way
 * back up; splits always produce nodes at least half full. The newer Rust
 * thin_check rejects nodes below a third, so this is a format requirement.
 *
 * Errors: -ENODATA for an absent key; -EILSEQ for a corrupt node (bad
 * checksum, wrong value size, unsorted keys met while searching, depth beyond
 * BTREE_MAX_DEPTH: a cycle); the space map's and device's errors. After an
 * error from an update the open transaction is inconsistent; the caller must
 * abort it (the pool drops to read-only or fail mode in the kernel).
 *
 * Concurrency: no locking of its own. Updates are serialised by the caller;
 * lookups may run concurrently with each other (and, through a read-only
 * clone of the manager, alongside an update to another root).
 */
#pragma once

#include <dmxx/mem.h>
#include <dmxx/result.h>
#include <dmxx/types.h>

#include "persistent/btree_node.h"
#include "persistent/transaction.h"

namespace dmxx::pdata {

constexpr unsigned BTREE_MAX_LEVELS = 4;
constexpr unsigned BTREE_MAX_DEPTH = 16; /* nodes from a (sub)tree's root to a leaf */

/*
 * What the last level's values are. Values are opaque little-endian blobs
 * of size() bytes. If they refer to things with reference counts (data
 * blocks, subtrees), inc/dec keep those counts right when nodes are copied
 * and entries are overwritten or removed.
 */
class ValueType {
public:
	explicit constexpr ValueType(u32 size) : m_size(size) {}
	u32 size() const { return m_size; }

	/*
	 * @values are @count consecutive values that gained a reference (a
	 * shared leaf was copied: both copies now refer to them).
	 */
	virtual Result<void> inc(const void * /*values*/, u32 /*count*/) { return {}; }
	/* @count consecutive values lost a reference (removed, overwritten, deleted). */
	virtual Result<void> dec(const void * /*values*/, u32 /*count*/) { return {}; }
	/*
	 * Overwriting a value with an equal one must not dec it (the caller's new
	 * value is the same reference). Default: bytewise.
	 */
	virtual bool equal(const void *a, const void *b) const { return mem_equal(a, b, m_size); }

protected:
	/*
	 * Every member is inline on purpose: with no out-of-line key function
	 * the vtable and typeinfo are emitted where a subclass is defined, so
	 * RTTI-enabled test code can derive from it though the core has no RTTI.
	 */
	~ValueType() = default;

private:
	u32 m_size;
};

/* Plain values (no references): le64 payloads, device details, etc. */
class PlainValue final : public ValueType {
public:
	explicit constexpr PlainValue(u32 size) : ValueType(size) {}
};

/*
 * le64 block numbers counted in @tm's space map: the values of upper levels,
 * and any tree of pointers to metadata blocks.
 */
class BlockRefValue final : public ValueType {
public:
	explicit BlockRefValue(TransactionManager &tm) : ValueType(8), m_tm(tm) {}
	Result<void> inc(const void *values, u32 count) override;
	Result<void> dec(const void *values, u32 count) override;

private:
	TransactionManager &m_tm;
};

/* Called for each entry of a walk, in key order: keys[0..levels-1], the value. */
using BtreeWalkFn = Result<void> (*)(void *ctx, const u64 *keys, const void *value);

class Btree {
public:
	/* @levels in 1..BTREE_MAX_LEVELS; @vt->size() <= BTREE_MAX_VALUE_SIZE. */
	Btree(TransactionManager &tm, unsigned levels, ValueType &vt);

	TransactionManager &tm() const { return m_tm; }
	unsigned levels() const { return m_levels; }
	ValueType &value_type() const { return m_vt; }

	/* A new empty tree (one empty leaf); returns its root. */
	Result<block_t> create_empty();

	/*
	 * Drop one reference to the tree at @root. Nodes whose count falls to
	 * zero release their children (subtrees, and the values via dec); shared
	 * nodes are only dec'd, their contents stay.
	 */
	Result<void> del(block_t root);

	/* The value at @keys (levels() keys) into @value_out (size() bytes); -ENODATA. */
	Result<void> lookup(block_t root, const u64 *keys, void *value_out);

	/*
	 * The entry with the smallest last-level key >= keys[levels-1] under the
	 * exact prefix keys[0..levels-2]; its key into *@key_out, value into
	 * @value_out. -ENODATA if there is none.
	 */
	Result<void> lookup_next(block_t root, const u64 *keys, u64 *key_out, void *value_out);

	/*
	 * Insert or overwrite. The tree takes over the caller's reference in
	 * @value; an overwritten value is dec'd unless equal to the new one.
	 * *@inserted (if given) says whether the key is new. Returns the new root.
	 */
	Result<block_t> insert(block_t root, const u64 *keys, const void *value,
			       bool *inserted = nullptr);

	/* Remove @keys (its value is dec'd). Returns the new root; -ENODATA if absent. */
	Result<block_t> remove(block_t root, const u64 *keys);

	/*
	 * Remove every entry whose last-level key is in [keys[levels-1], @end_key)
	 * under the prefix keys[0..levels-2] (values dec'd; a missing prefix is not
	 * an error). *@nr_removed (if given) counts them. Returns the new root.
	 */
	Result<block_t> remove_range(block_t root, const u64 *keys, u64 end_key,
				     u64 *nr_removed = nullptr);

	/*
	 * The smallest / largest key of each level along the leftmost / rightmost
	 * path into @keys_out (levels() keys). -ENODATA if the tree is empty.
	 */
	Result<void> find_lowest_key(block_t root, u64 *keys_out);
	Result<void> find_highest_key(block_t root, u64 *keys_out);

	/* Every entry in key order. Stops at, and returns, the first error of @fn. */
	Result<void> walk(block_t root, BtreeWalkFn fn, void *ctx);

	/*
	 * Entries under the prefix keys[0..levels-2] whose last key is in
	 * [@begin, @end), in order. A missing prefix walks nothing.
	 */
	Result<void> walk_range(block_t root, const u64 *prefix, u64 begin, u64 end,
				BtreeWalkFn fn, void *ctx);

	/* Lambdas: f(const u64 *keys, const void *value) -> Result<void>. */
	template <typename F> Result<void> walk(block_t root, F &&f)
	{
		return walk(root, &call_walker<F>, &f);
	}
	template <typename F>
	Result<void> walk_range(block_t root, const u64 *prefix, u64 begin, u64 end, F &&f)
	{
		return walk_range(root, prefix, begin, end, &call_walker<F>, &f);
	}

private:
	template <typename F> static Result<void> call_walker(void *ctx, const u64 *k, const void *v)
	{
		return (*static_cast<remove_reference_t<F> *>(ctx))(k, v);
	}

	TransactionManager &m_tm;
	unsigned m_levels;
	ValueType &m_vt;
	BlockRefValue m_subtree_vt; /* the values of levels 0..levels-2 */

	friend struct BtreeOps; /* btree.cpp's implementation helpers */
};

} // namespace dmxx::pdata
