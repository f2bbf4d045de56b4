// SPDX-License-Identifier: GPL-2.0
#include "sb_validator.h"

#include <dmxx/mem.h>

#include "format.h"

namespace dmxx::thin {

namespace {

class SuperblockValidator final : public pdata::BlockValidator {
public:
	constexpr SuperblockValidator() = default;

	const char *name() const override { return "thin_superblock"; }

	void prepare_for_write(void *data, pdata::block_t where) const override
	{
		seal_superblock(data, where);
	}

	Result<void> check(const void *data, pdata::block_t where,
			   pdata::CheckFailure &why) const override
	{
		DiskSuperblock sb;
		mem_copy(&sb, data, sizeof(sb));
		if (from_le(sb.blocknr) != where) {
			why.set("superblock records location %llu, read from %llu",
				(unsigned long long)from_le(sb.blocknr), (unsigned long long)where);
			return err(EILSEQ);
		}
		if (from_le(sb.magic) != SUPERBLOCK_MAGIC) {
			why.set("superblock magic %llu, expected %llu",
				(unsigned long long)from_le(sb.magic),
				(unsigned long long)SUPERBLOCK_MAGIC);
			return err(EILSEQ);
		}
		u32 want = superblock_checksum(data);
		if (from_le(sb.csum) != want) {
			why.set("superblock checksum %08x, computed %08x", from_le(sb.csum), want);
			return err(EILSEQ);
		}
		return {};
	}
};

constinit const SuperblockValidator g_superblock_validator;

} // namespace

const pdata::BlockValidator &superblock_validator() { return g_superblock_validator; }

} // namespace dmxx::thin
