/* SPDX-License-Identifier: GPL-2.0 */
/*
 * In-core details of the thin devices touched in this transaction.
 *
 * Why: every new mapping changes its device's mapped_blocks. Writing the
 * details btree each time would shadow a details leaf per insert; like the
 * kernel we keep changed details in memory and write them at commit.
 *
 * A sorted array: pools have few devices (the thin target allows 2^24 ids,
 * real pools hold tens to thousands), lookups are a binary search, and
 * growth is one allocation that may fail (-ENOMEM, table unchanged).
 * Not thread-safe: ThinMetadata guards it.
 */
#pragma once

#include <dmxx/result.h>

#include "format.h"

namespace dmxx::thin {

struct DeviceEntry {
	thin_id id;
	u64 mapped_blocks;
	u64 transaction_id;
	u32 creation_time;
	u32 snapshotted_time;
	bool changed; /* differs from the details btree: write at commit */
};

class DeviceTable {
public:
	DeviceTable() = default;
	~DeviceTable();
	DeviceTable(const DeviceTable &) = delete;
	DeviceTable &operator=(const DeviceTable &) = delete;

	/* The entry for @id, or nullptr. Valid until the next add()/erase()/clear(). */
	DeviceEntry *find(thin_id id);
	/* Add (or replace) an entry; returns where it now lives. */
	Result<DeviceEntry *> add(const DeviceEntry &e);
	void erase(thin_id id);
	void clear() { m_nr = 0; }

	u32 size() const { return m_nr; }
	DeviceEntry &at(u32 i) { return m_entries[i]; }

private:
	u32 position(thin_id id) const; /* first index with entries[i].id >= id */

	DeviceEntry *m_entries = nullptr;
	u32 m_nr = 0;
	u32 m_capacity = 0;
};

/* On-disk <-> in-core. */
DiskDeviceDetails to_disk(const DeviceEntry &e);
DeviceEntry from_disk(thin_id id, const DiskDeviceDetails &d);

} // namespace dmxx::thin
