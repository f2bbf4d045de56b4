// SPDX-License-Identifier: GPL-2.0
#include "value_types.h"

#include <dmxx/endian.h>

#include "format.h"

namespace dmxx::thin {

/*
 * Consecutive data blocks are common (sequential writes, provisioning in
 * order); a range call per run would be cheaper, but the SpaceMap interface
 * counts one block at a time, so the run detection would buy nothing yet.
 */
Result<void> MappingValue::inc(const void *values, u32 count)
{
	const u8 *p = static_cast<const u8 *>(values);
	for (u32 i = 0; i < count; i++)
		TRY(m_data_sm->inc(unpack_block(load_le64(p + 8 * usize(i)))));
	return {};
}

Result<void> MappingValue::dec(const void *values, u32 count)
{
	const u8 *p = static_cast<const u8 *>(values);
	for (u32 i = 0; i < count; i++)
		TRY(m_data_sm->dec(unpack_block(load_le64(p + 8 * usize(i)))));
	return {};
}

Result<void> SubtreeValue::inc(const void *values, u32 count)
{
	const u8 *p = static_cast<const u8 *>(values);
	for (u32 i = 0; i < count; i++)
		TRY(m_tm.inc(load_le64(p + 8 * usize(i))));
	return {};
}

Result<void> SubtreeValue::dec(const void *values, u32 count)
{
	const u8 *p = static_cast<const u8 *>(values);
	for (u32 i = 0; i < count; i++)
		TRY(m_subtrees.del(load_le64(p + 8 * usize(i))));
	return {};
}

} // namespace dmxx::thin
