// SPDX-License-Identifier: GPL-2.0
#include "pool_dump.h"

#include <cstring>
#include <vector>

namespace dmxx::thin::tools {

namespace {

int on_device(void *ctx, const DeviceInfo &d)
{
	auto *out = static_cast<XmlPool *>(ctx);
	XmlDevice x;
	x.dev_id = d.id;
	x.mapped_blocks = d.mapped_blocks;
	x.transaction = d.transaction_id;
	x.creation_time = d.creation_time;
	x.snap_time = d.snapshotted_time;
	out->devices.push_back(std::move(x));
	return 0;
}

int on_mapping(void *ctx, block_t vblock, block_t data_block, u32 time)
{
	auto *dev = static_cast<XmlDevice *>(ctx);
	dev->mappings.push_back(XmlMapping{vblock, data_block, time});
	return 0;
}

/* uuid bytes as thin_dump prints them: the bytes up to the first NUL. */
std::string uuid_text(const u8 *uuid)
{
	size_t n = 0;
	while (n < 16 && uuid[n])
		n++;
	return std::string(reinterpret_cast<const char *>(uuid), n);
}

} // namespace

int dump_pool(ThinMetadata &md, pdata::BlockDevice &dev, XmlPool &out)
{
	out = XmlPool{};
	std::vector<u8> raw(METADATA_BLOCK_BYTES);
	if (auto r = dev.read(SUPERBLOCK_LOCATION, raw.data()); r.is_error())
		return r.error_code();
	DiskSuperblock sb;
	std::memcpy(&sb, raw.data(), sizeof(sb));
	out.uuid = uuid_text(sb.uuid);
	out.version = from_le(sb.version);
	out.flags = md.needs_check() ? SB_FLAG_NEEDS_CHECK : 0;
	out.time = md.time();
	out.data_block_size = md.data_block_size();

	auto trans = md.transaction_id();
	if (trans.is_error())
		return trans.error_code();
	out.transaction = trans.value();
	auto nr = md.nr_data_blocks();
	if (nr.is_error())
		return nr.error_code();
	out.nr_data_blocks = nr.value();
	/*
	 * A held metadata snapshot is not shown: thin_dump (0.9) does not show it
	 * either, and the dumps must be identical. `dmxx-thin info` reports it.
	 */

	if (auto r = md.for_each_device(on_device, &out); r.is_error())
		return r.error_code();
	for (XmlDevice &d : out.devices)
		if (auto r = md.for_each_mapping(d.dev_id, on_mapping, &d); r.is_error())
			return r.error_code();
	return 0;
}

} // namespace dmxx::thin::tools
