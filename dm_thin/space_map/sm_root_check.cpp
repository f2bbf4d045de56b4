// SPDX-License-Identifier: GPL-2.0
#include "space_map/sm_root_check.h"

#include <dmxx/mem.h>
#include <dmxx/platform.h>

#include "space_map/ref_counts.h"

namespace dmxx::pdata {

Result<SmRoot> parse_sm_root(TransactionManager &tm, const void *root, usize len, u64 max_blocks)
{
	if (len < sizeof(SmRoot))
		return err(EINVAL);
	SmRoot r;
	mem_copy(&r, root, sizeof(r));

	block_t device_blocks = TRY(tm.cache().nr_blocks());
	u64 nr_blocks = from_le(r.nr_blocks);
	const char *why = nullptr;
	if (from_le(r.nr_allocated) > nr_blocks)
		why = "more blocks allocated than exist";
	else if (nr_blocks > max_blocks)
		why = "too many blocks for this kind of space map";
	else if (from_le(r.bitmap_root) >= device_blocks ||
		 from_le(r.ref_count_root) >= device_blocks)
		why = "root block beyond the metadata device";
	if (why) {
		dmxx_log(DMXX_LOG_ERR, "space map root refused: %s", why);
		return err(EILSEQ);
	}
	return r;
}

Result<void> check_index_entry(TransactionManager &tm, const IndexEntry &ie)
{
	block_t device_blocks = TRY(tm.cache().nr_blocks());
	if (from_le(ie.blocknr) >= device_blocks ||
	    from_le(ie.nr_free) > RefCounts::entries_per_bitmap ||
	    from_le(ie.none_free_before) > RefCounts::entries_per_bitmap) {
		dmxx_log(DMXX_LOG_ERR, "space map index entry refused: bitmap %llu, %u free",
			 (unsigned long long)from_le(ie.blocknr), from_le(ie.nr_free));
		return err(EILSEQ);
	}
	return {};
}

} // namespace dmxx::pdata
