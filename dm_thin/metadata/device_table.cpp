// SPDX-License-Identifier: GPL-2.0
#include "device_table.h"

#include <dmxx/mem.h>
#include <dmxx/platform.h>

namespace dmxx::thin {

DeviceTable::~DeviceTable() { dmxx_free(m_entries); }

u32 DeviceTable::position(thin_id id) const
{
	u32 lo = 0, hi = m_nr;
	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;
		if (m_entries[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

DeviceEntry *DeviceTable::find(thin_id id)
{
	u32 i = position(id);
	return (i < m_nr && m_entries[i].id == id) ? &m_entries[i] : nullptr;
}

Result<DeviceEntry *> DeviceTable::add(const DeviceEntry &e)
{
	u32 i = position(e.id);
	if (i < m_nr && m_entries[i].id == e.id) {
		m_entries[i] = e;
		return &m_entries[i];
	}
	if (m_nr == m_capacity) {
		u32 cap = m_capacity ? m_capacity * 2 : 16;
		auto *n = static_cast<DeviceEntry *>(
			dmxx_alloc(sizeof(DeviceEntry) * usize(cap), DMXX_ALLOC_NOIO));
		if (!n)
			return err(ENOMEM);
		if (m_nr)
			mem_copy(n, m_entries, sizeof(DeviceEntry) * usize(m_nr));
		dmxx_free(m_entries);
		m_entries = n;
		m_capacity = cap;
	}
	mem_move(&m_entries[i + 1], &m_entries[i], sizeof(DeviceEntry) * usize(m_nr - i));
	m_entries[i] = e;
	m_nr++;
	return &m_entries[i];
}

void DeviceTable::erase(thin_id id)
{
	u32 i = position(id);
	if (i >= m_nr || m_entries[i].id != id)
		return;
	mem_move(&m_entries[i], &m_entries[i + 1], sizeof(DeviceEntry) * usize(m_nr - i - 1));
	m_nr--;
}

DiskDeviceDetails to_disk(const DeviceEntry &e)
{
	DiskDeviceDetails d;
	d.mapped_blocks = to_le64(e.mapped_blocks);
	d.transaction_id = to_le64(e.transaction_id);
	d.creation_time = to_le32(e.creation_time);
	d.snapshotted_time = to_le32(e.snapshotted_time);
	return d;
}

DeviceEntry from_disk(thin_id id, const DiskDeviceDetails &d)
{
	DeviceEntry e;
	e.id = id;
	e.mapped_blocks = from_le(d.mapped_blocks);
	e.transaction_id = from_le(d.transaction_id);
	e.creation_time = from_le(d.creation_time);
	e.snapshotted_time = from_le(d.snapshotted_time);
	e.changed = false;
	return e;
}

} // namespace dmxx::thin
