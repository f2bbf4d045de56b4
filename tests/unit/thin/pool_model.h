/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A reference model of thin-pool metadata: plain std::map state that says
 * what the metadata must contain after any sequence of operations. The
 * oracle tests drive the model and ThinMetadata with the same operations
 * and compare both our own reading and thin_dump's with model.to_xml().
 *
 * The model does not predict which data block the space map allocates; it
 * is told (note_allocated) and checks the allocator's promises instead: the
 * block is free, inside the device, and was not in use at the last commit
 * (the committed mappings may still point at it, so a crash would expose
 * new data through an old mapping).
 */
#pragma once

#include "../../../dm_thin/tools/xml.h"

#include <cstdint>
#include <map>
#include <set>
#include <string>

namespace dmxx::thin::test {

struct ModelMapping {
	uint64_t data_block;
	uint32_t time;
	bool operator==(const ModelMapping &) const = default;
};

struct ModelDevice {
	uint64_t transaction = 0;
	uint32_t creation_time = 0;
	uint32_t snap_time = 0;
	std::map<uint64_t, ModelMapping> map; /* vblock -> mapping */
	bool operator==(const ModelDevice &) const = default;
};

class PoolModel {
public:
	PoolModel(uint32_t data_block_size, uint64_t nr_data_blocks)
		: m_data_block_size(data_block_size), m_nr_data_blocks(nr_data_blocks)
	{
	}

	/* ---- operations; each returns "" or why the operation must fail ---- */

	std::string create_thin(uint32_t id)
	{
		if (m_devs.count(id))
			return "exists";
		ModelDevice d;
		d.transaction = m_trans;
		d.creation_time = d.snap_time = m_time;
		m_devs[id] = d;
		return "";
	}

	std::string create_snap(uint32_t id, uint32_t origin)
	{
		if (m_devs.count(id))
			return "exists";
		auto it = m_devs.find(origin);
		if (it == m_devs.end())
			return "no origin";
		/* The pool's time moves on first: both sides record the new time. */
		m_time++;
		ModelDevice d;
		d.transaction = m_trans;
		d.creation_time = d.snap_time = m_time;
		d.map = it->second.map;
		it->second.snap_time = m_time;
		for (auto &[v, m] : d.map)
			m_refs[m.data_block]++;
		m_devs[id] = std::move(d);
		return "";
	}

	std::string delete_device(uint32_t id)
	{
		auto it = m_devs.find(id);
		if (it == m_devs.end())
			return "no device";
		for (auto &[v, m] : it->second.map)
			drop_ref(m.data_block);
		m_devs.erase(it);
		return "";
	}

	/* A block the pool's allocator just returned: checks its promises. */
	std::string note_allocated(uint64_t b)
	{
		if (b >= m_nr_data_blocks)
			return "allocated block " + std::to_string(b) + " beyond the device";
		if (ref(b))
			return "allocated block " + std::to_string(b) + " is in use";
		if (m_committed_in_use.count(b))
			return "allocated block " + std::to_string(b) +
			       " was in use at the last commit (freed in this transaction)";
		m_refs[b] = 1;
		return "";
	}

	/* Take another reference to an in-use block (sharing data between mappings). */
	void inc(uint64_t b) { m_refs[b]++; }

	/* Map @v of @id to @b, consuming one reference the caller holds on @b. */
	std::string insert(uint32_t id, uint64_t v, uint64_t b)
	{
		auto it = m_devs.find(id);
		if (it == m_devs.end())
			return "no device";
		auto old = it->second.map.find(v);
		if (old != it->second.map.end())
			drop_ref(old->second.data_block);
		it->second.map[v] = ModelMapping{b, m_time};
		return "";
	}

	/* Unmap [begin, end) of @id; returns how many mappings went. */
	uint64_t remove_range(uint32_t id, uint64_t begin, uint64_t end)
	{
		auto it = m_devs.find(id);
		if (it == m_devs.end())
			return 0;
		uint64_t n = 0;
		auto &map = it->second.map;
		for (auto m = map.lower_bound(begin); m != map.end() && m->first < end;) {
			drop_ref(m->second.data_block);
			m = map.erase(m);
			n++;
		}
		return n;
	}

	std::string resize_data(uint64_t nr)
	{
		if (nr < m_nr_data_blocks)
			return "shrink";
		m_nr_data_blocks = nr;
		return "";
	}

	void set_transaction_id(uint64_t t) { m_trans = t; }

	void commit()
	{
		m_committed_in_use.clear();
		for (auto &[b, n] : m_refs)
			m_committed_in_use.insert(b);
	}

	/* ---- state ---- */

	uint32_t time() const { return m_time; }
	uint64_t transaction() const { return m_trans; }
	uint64_t nr_data_blocks() const { return m_nr_data_blocks; }
	uint32_t ref(uint64_t b) const
	{
		auto it = m_refs.find(b);
		return it == m_refs.end() ? 0 : it->second;
	}
	uint64_t nr_allocated() const { return m_refs.size(); }
	/* Blocks the allocator may hand out now: free, and not freed in this transaction. */
	uint64_t nr_usable() const
	{
		uint64_t busy = m_refs.size();
		for (uint64_t b : m_committed_in_use)
			busy += m_refs.count(b) ? 0 : 1;
		return m_nr_data_blocks - busy;
	}
	const std::map<uint32_t, ModelDevice> &devices() const { return m_devs; }
	const std::map<uint64_t, uint32_t> &refs() const { return m_refs; }

	tools::XmlPool to_xml() const
	{
		tools::XmlPool p;
		p.time = m_time;
		p.transaction = m_trans;
		p.data_block_size = m_data_block_size;
		p.nr_data_blocks = m_nr_data_blocks;
		for (auto &[id, d] : m_devs) {
			tools::XmlDevice x;
			x.dev_id = id;
			x.mapped_blocks = d.map.size();
			x.transaction = d.transaction;
			x.creation_time = d.creation_time;
			x.snap_time = d.snap_time;
			for (auto &[v, m] : d.map)
				x.mappings.push_back(tools::XmlMapping{v, m.data_block, m.time});
			p.devices.push_back(std::move(x));
		}
		return p;
	}

	bool operator==(const PoolModel &) const = default;

private:
	void drop_ref(uint64_t b)
	{
		auto it = m_refs.find(b);
		if (it == m_refs.end())
			return;
		if (--it->second == 0)
			m_refs.erase(it);
	}

	uint32_t m_data_block_size;
	uint64_t m_nr_data_blocks;
	uint32_t m_time = 0;
	uint64_t m_trans = 0;
	std::map<uint32_t, ModelDevice> m_devs;
	std::map<uint64_t, uint32_t> m_refs;
	std::set<uint64_t> m_committed_in_use; /* blocks with a count at the last commit */
};

} // namespace dmxx::thin::test
