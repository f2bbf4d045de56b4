/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Randomized thin-metadata workloads, applied to ThinMetadata and to the
 * reference model (pool_model.h) in lock step.
 *
 * Every step checks that ThinMetadata agreed with the model about success
 * or failure (e.g. -EEXIST for a taken id); the end state is compared by
 * the caller (our dump, thin_dump). The mix covers what the issue asks:
 * thousands of mappings, snapshots of snapshots, overwrites, shared data
 * blocks, unmapping single blocks and ranges, device deletes, data and
 * metadata resizes, transaction ids, metadata snapshots, and commits.
 */
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../../../dm_thin/metadata/thin_metadata.h"
#include "../../../dm_thin/tools/pool_dump.h"
#include "../../../dm_thin/user/mem_block_device.h"
#include "pool_model.h"

namespace dmxx::thin::test {

struct WorkloadOptions {
	uint64_t seed = 1;
	unsigned steps = 2000;
	uint64_t vspace = 4096;      /* virtual blocks per device */
	unsigned max_devices = 12;
	unsigned commit_every = 150; /* average steps between commits (0: never) */
	bool resizes = true;         /* grow data (and metadata when a MemBlockDevice is given) */
	bool metadata_snaps = false; /* reserve/release the metadata snapshot */
	bool deletes = true;
};

class Workload {
public:
	/* @mem (optional): the device under @md, grown for metadata resizes. */
	Workload(ThinMetadata &md, PoolModel &model, const WorkloadOptions &o,
		 pdata::MemBlockDevice *mem = nullptr)
		: m_md(md), m_model(model), m_o(o), m_mem(mem), m_rng(o.seed)
	{
	}

	/* Run the steps; "" or the first disagreement. */
	std::string run()
	{
		for (unsigned i = 0; i < m_o.steps; i++) {
			std::string e = step();
			if (!e.empty())
				return "seed " + std::to_string(m_o.seed) + " step " + std::to_string(i) +
				       ": " + e;
		}
		return "";
	}

	/* One committed transaction boundary (the model forgets this transaction's frees). */
	std::string commit()
	{
		auto r = m_md.commit();
		if (r.is_error())
			return "commit failed: " + std::to_string(r.error_code());
		m_model.commit();
		return "";
	}

	std::string step()
	{
		unsigned pick = rand(1000);
		if (m_o.commit_every && rand(m_o.commit_every) == 0)
			return commit();
		if (m_model.devices().empty() || pick < 15)
			return create_thin();
		if (pick < 35)
			return create_snap();
		if (pick < 42 && m_o.deletes && m_model.devices().size() > 1)
			return delete_device();
		if (pick < 47)
			return unmap_range();
		if (pick < 120)
			return unmap_one();
		if (pick < 160)
			return share_block();
		if (pick < 165 && m_o.resizes)
			return resize_data();
		if (pick < 167 && m_o.resizes && m_mem)
			return resize_metadata();
		if (pick < 172)
			return set_transaction_id();
		if (pick < 176 && m_o.metadata_snaps)
			return toggle_metadata_snap();
		return map_run();
	}

	std::string create_thin()
	{
		if (m_model.devices().size() >= m_o.max_devices)
			return "";
		uint32_t id = pick_id();
		std::string want = m_model.create_thin(id);
		return agree("create_thin", m_md.create_thin(id), want);
	}

	std::string create_snap()
	{
		if (m_model.devices().size() >= m_o.max_devices)
			return "";
		uint32_t origin = existing_dev();
		uint32_t id = pick_id();
		std::string want = m_model.create_snap(id, origin);
		return agree("create_snap", m_md.create_snap(id, origin), want);
	}

	std::string delete_device()
	{
		uint32_t id = existing_dev();
		std::string want = m_model.delete_device(id);
		return agree("delete", m_md.delete_device(id), want);
	}

	/* Map a short run of virtual blocks to fresh data blocks (sequential runs make ranges). */
	std::string map_run()
	{
		uint32_t id = existing_dev();
		uint64_t v = rand(m_o.vspace);
		unsigned len = 1 + rand(rand(4) == 0 ? 16 : 3);
		for (unsigned i = 0; i < len && v + i < m_o.vspace; i++) {
			auto b = m_md.alloc_data_block();
			if (b.is_error()) {
				if (b.error_code() != -ENOSPC)
					return "alloc_data_block: " + std::to_string(b.error_code());
				/* A held metadata snapshot keeps blocks the model sees as free. */
				if (m_model.nr_usable() > 0 && !m_snap_held)
					return "alloc_data_block: -ENOSPC with " +
					       std::to_string(m_model.nr_usable()) + " usable blocks";
				return "";
			}
			std::string e = m_model.note_allocated(b.value());
			if (!e.empty())
				return e;
			m_model.insert(id, v + i, b.value());
			auto r = m_md.insert(id, v + i, b.value());
			if (r.is_error())
				return "insert: " + std::to_string(r.error_code());
		}
		return "";
	}

	/* Map a block to a data block some mapping already uses (explicit sharing). */
	std::string share_block()
	{
		if (m_model.refs().empty())
			return map_run();
		auto it = m_model.refs().begin();
		std::advance(it, rand(std::min<uint64_t>(m_model.refs().size(), 64)));
		uint64_t b = it->first;
		uint32_t id = existing_dev();
		uint64_t v = rand(m_o.vspace);
		auto r = m_md.inc_data_block(b);
		if (r.is_error())
			return "inc_data_block: " + std::to_string(r.error_code());
		m_model.inc(b);
		m_model.insert(id, v, b);
		auto ins = m_md.insert(id, v, b);
		return ins.is_error() ? "insert(shared): " + std::to_string(ins.error_code()) : "";
	}

	std::string unmap_one()
	{
		uint32_t id = existing_dev();
		const auto &map = m_model.devices().at(id).map;
		uint64_t v;
		if (!map.empty() && rand(4) != 0) {
			auto it = map.begin();
			std::advance(it, rand(std::min<uint64_t>(map.size(), 256)));
			v = it->first;
		} else {
			v = rand(m_o.vspace);
		}
		bool mapped = map.count(v) != 0;
		m_model.remove_range(id, v, v + 1);
		auto r = m_md.remove(id, v);
		if (mapped && r.is_error())
			return "remove: " + std::to_string(r.error_code());
		if (!mapped && r.error_code() != -ENODATA)
			return "remove of an unmapped block: " + std::to_string(r.error_code());
		return "";
	}

	std::string unmap_range()
	{
		uint32_t id = existing_dev();
		uint64_t b = rand(m_o.vspace);
		uint64_t e = b + 1 + rand(rand(3) == 0 ? m_o.vspace : 64);
		uint64_t want = m_model.remove_range(id, b, e);
		auto r = m_md.remove_range(id, b, e);
		if (r.is_error())
			return "remove_range: " + std::to_string(r.error_code());
		if (r.value() != want)
			return "remove_range removed " + std::to_string(r.value()) + ", model " +
			       std::to_string(want);
		return "";
	}

	std::string resize_data()
	{
		uint64_t nr = m_model.nr_data_blocks() + 1 + rand(5000);
		m_model.resize_data(nr);
		auto r = m_md.resize_data(nr);
		return r.is_error() ? "resize_data: " + std::to_string(r.error_code()) : "";
	}

	std::string resize_metadata()
	{
		auto cur = m_md.nr_metadata_blocks();
		if (cur.is_error())
			return "nr_metadata_blocks";
		uint64_t nr = cur.value() + 1 + rand(3000);
		m_mem->resize(nr);
		auto r = m_md.resize_metadata(nr);
		return r.is_error() ? "resize_metadata: " + std::to_string(r.error_code()) : "";
	}

	std::string set_transaction_id()
	{
		uint64_t next = m_model.transaction() + 1 + rand(3);
		if (!m_md.set_transaction_id(m_model.transaction() + 1, next).is_error())
			return "set_transaction_id accepted a stale current id";
		auto r = m_md.set_transaction_id(m_model.transaction(), next);
		if (r.is_error())
			return "set_transaction_id: " + std::to_string(r.error_code());
		m_model.set_transaction_id(next);
		return "";
	}

	std::string toggle_metadata_snap()
	{
		auto held = m_md.metadata_snap();
		if (held.is_error())
			return "metadata_snap";
		if (held.value()) {
			auto r = m_md.release_metadata_snap();
			if (r.is_error())
				return "release_metadata_snap: " + std::to_string(r.error_code());
			/* Its blocks are free only after the next commit; stay lenient until then. */
			return "";
		}
		auto r = m_md.reserve_metadata_snap();
		if (r.is_error())
			return "reserve_metadata_snap: " + std::to_string(r.error_code());
		m_snap_held = true;
		m_model.commit(); /* reserving commits */
		return "";
	}

	uint64_t rand(uint64_t n) { return n ? m_rng() % n : 0; }

private:
	uint32_t pick_id()
	{
		/* Mostly small ids, sometimes large ones (the top-level tree's keys spread out). */
		return rand(8) == 0 ? uint32_t(rand(1u << 24)) : uint32_t(rand(64));
	}

	uint32_t existing_dev()
	{
		auto it = m_model.devices().begin();
		std::advance(it, rand(m_model.devices().size()));
		return it->first;
	}

	/* ThinMetadata's outcome must match the model's ("" = success). */
	static std::string agree(const char *what, const Result<void> &r, const std::string &want)
	{
		if (want.empty() && r.is_error())
			return std::string(what) + " failed: " + std::to_string(r.error_code());
		if (!want.empty() && r.is_ok())
			return std::string(what) + " succeeded, model says: " + want;
		return "";
	}

	ThinMetadata &m_md;
	PoolModel &m_model;
	bool m_snap_held = false; /* a metadata snapshot was held at some point */
	WorkloadOptions m_o;
	pdata::MemBlockDevice *m_mem;
	std::mt19937_64 m_rng;
};

/* ---- comparisons -------------------------------------------------------------------- */

/* "" if our own reading of @md equals the model (devices, mappings, times, counts). */
inline std::string compare_with_model(ThinMetadata &md, pdata::BlockDevice &dev,
				      const PoolModel &model)
{
	tools::XmlPool ours;
	int r = tools::dump_pool(md, dev, ours);
	if (r < 0)
		return "dump_pool: " + std::to_string(r);
	tools::XmlPool want = model.to_xml();
	ours.metadata_snap.reset();
	if (!(ours == want))
		return "metadata differs from the model:\n--- ours\n" + tools::write_xml(ours) +
		       "--- model\n" + tools::write_xml(want);
	/*
	 * Data block reference counts. On disk a count is the number of distinct
	 * mapping LEAVES holding the block (a snapshot shares leaves until btree
	 * shadowing copies them), so it lies between 1 and the number of mappings
	 * of the block; exact counts are thin_check's to judge (oracle tests). A
	 * held metadata snapshot keeps its own leaves alive: then only "mapped
	 * implies counted" holds.
	 */
	auto nr = md.nr_data_blocks();
	if (nr.is_error() || nr.value() != model.nr_data_blocks())
		return "nr_data_blocks differs";
	auto held = md.metadata_snap();
	if (held.is_error())
		return "metadata_snap";
	for (uint64_t b = 0; b < nr.value(); b++) {
		auto c = md.data_block_count(b);
		if (c.is_error())
			return "data_block_count(" + std::to_string(b) + "): " + std::to_string(c.error_code());
		uint32_t m = model.ref(b);
		bool ok = held.value() ? (m == 0 || c.value() > 0) : (m == 0 ? c.value() == 0
										: c.value() >= 1 && c.value() <= m);
		if (!ok)
			return "data block " + std::to_string(b) + " count " + std::to_string(c.value()) +
			       ", mapped " + std::to_string(m) + " times" +
			       (held.value() ? " (metadata snapshot held)" : "");
	}
	return "";
}

} // namespace dmxx::thin::test
