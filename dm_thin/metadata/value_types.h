/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The btree value types of thin metadata and the references they carry.
 *
 *  - MappingValue: le64 (data block << 24 | time) in the mapping trees'
 *    leaves; each holds one reference to its data block in the DATA space map.
 *  - SubtreeValue: le64 root of a device's mapping tree, in the top level
 *    seen on its own (device id -> subtree). Dropping one deletes a
 *    reference to the whole subtree, which releases its data blocks when no
 *    snapshot shares it any more.
 */
#pragma once

#include "persistent/btree.h"
#include "persistent/space_map.h"

namespace dmxx::thin {

class MappingValue final : public pdata::ValueType {
public:
	MappingValue() : ValueType(8) {}
	/* The data space map is created after the btrees' descriptors. */
	void bind(pdata::SpaceMap *data_sm) { m_data_sm = data_sm; }

	Result<void> inc(const void *values, u32 count) override;
	Result<void> dec(const void *values, u32 count) override;
	/*
	 * Never "equal": ThinMetadata::insert() consumes the caller's reference
	 * even when the key already maps the same data block, so the reference
	 * the old value held must be dropped in that case too. (The kernel
	 * compares blocks here; its callers never remap a block onto itself.)
	 */
	bool equal(const void *, const void *) const override { return false; }

private:
	pdata::SpaceMap *m_data_sm = nullptr;
};

class SubtreeValue final : public pdata::ValueType {
public:
	SubtreeValue(pdata::TransactionManager &tm, pdata::Btree &subtrees)
		: ValueType(8), m_tm(tm), m_subtrees(subtrees)
	{
	}
	Result<void> inc(const void *values, u32 count) override;
	Result<void> dec(const void *values, u32 count) override;

private:
	pdata::TransactionManager &m_tm;
	pdata::Btree &m_subtrees; /* one-level trees of MappingValue */
};

} // namespace dmxx::thin
