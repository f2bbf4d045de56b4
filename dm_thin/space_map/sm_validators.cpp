// SPDX-License-Identifier: GPL-2.0
#include "space_map/sm_validators.h"

#include <dmxx/endian.h>

#include "persistent/checksum.h"
#include "space_map/sm_format.h"

namespace dmxx::pdata {

namespace {

/*
 * Both block types start with (le32 csum, le32 unused, le64 blocknr) and
 * differ only in salt and name; the checksum covers the block from the
 * unused word on.
 */
struct SelfDescribingHeader {
	le32 csum;
	le32 unused;
	le64 blocknr;
};
static_assert(sizeof(SelfDescribingHeader) == sizeof(BitmapHeader));

u32 checksum_of(const void *block, u32 salt)
{
	const u8 *p = static_cast<const u8 *>(block) + sizeof(le32);
	return block_checksum(p, METADATA_BLOCK_SIZE - sizeof(le32), salt);
}

class SaltedValidator final : public BlockValidator {
public:
	constexpr SaltedValidator(const char *name, u32 salt) : m_name(name), m_salt(salt) {}

	const char *name() const override { return m_name; }

	void prepare_for_write(void *data, block_t where) const override
	{
		auto *h = static_cast<SelfDescribingHeader *>(data);
		h->blocknr = to_le64(where);
		h->csum = to_le32(checksum_of(data, m_salt));
	}

	Result<void> check(const void *data, block_t where, CheckFailure &why) const override
	{
		auto *h = static_cast<const SelfDescribingHeader *>(data);
		u64 recorded = from_le(h->blocknr);
		if (recorded != where) {
			why.set("%s: block %llu says it is block %llu", m_name,
				(unsigned long long)where, (unsigned long long)recorded);
			return err(EILSEQ);
		}
		u32 sum = checksum_of(data, m_salt);
		if (sum != from_le(h->csum)) {
			why.set("%s: block %llu checksum %08x, expected %08x", m_name,
				(unsigned long long)where, from_le(h->csum), sum);
			return err(EILSEQ);
		}
		return {};
	}

private:
	const char *m_name;
	u32 m_salt;
};

constinit const SaltedValidator bitmap_validator("sm_bitmap", SM_BITMAP_CSUM_XOR);
constinit const SaltedValidator index_validator("sm_index", SM_INDEX_CSUM_XOR);

} // namespace

const BlockValidator &sm_bitmap_validator() { return bitmap_validator; }
const BlockValidator &sm_index_validator() { return index_validator; }

} // namespace dmxx::pdata
