/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Thin-pool metadata as thin-provisioning-tools' XML (the format thin_dump
 * writes and thin_restore reads). Userspace only.
 *
 * We write it (the dump tool; XML for thin_restore in the oracle tests) and
 * read it (thin_dump's output, compared with what a workload made). The
 * writer merges runs the way thin_dump does: consecutive virtual blocks
 * mapped to consecutive data blocks with the same time become one
 * range_mapping, a run of one is a single_mapping. So for the same metadata
 * our dump and thin_dump's are byte-identical.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dmxx::thin::tools {

struct XmlMapping {
	uint64_t vblock;
	uint64_t data_block;
	uint32_t time;
	bool operator==(const XmlMapping &) const = default;
};

struct XmlDevice {
	uint32_t dev_id = 0;
	uint64_t mapped_blocks = 0;
	uint64_t transaction = 0;
	uint32_t creation_time = 0;
	uint32_t snap_time = 0;
	std::vector<XmlMapping> mappings; /* ascending vblock */
	bool operator==(const XmlDevice &) const = default;
};

struct XmlPool {
	std::string uuid;
	uint32_t time = 0;
	uint64_t transaction = 0;
	uint32_t flags = 0;
	uint32_t version = 2;
	uint32_t data_block_size = 0; /* sectors */
	uint64_t nr_data_blocks = 0;
	std::optional<uint64_t> metadata_snap;
	std::vector<XmlDevice> devices; /* ascending dev_id */
	bool operator==(const XmlPool &) const = default;
};

/* thin_dump's XML for @pool. */
std::string write_xml(const XmlPool &pool);

/*
 * Parse thin_dump-style XML (single_mapping and range_mapping; shared
 * def/ref sections are refused). On failure returns false and says why in
 * @error, with the line number.
 */
bool parse_xml(const std::string &text, XmlPool &pool, std::string &error);

} // namespace dmxx::thin::tools
