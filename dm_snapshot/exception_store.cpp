// SPDX-License-Identifier: GPL-2.0
#include "exception_store.h"

#include <dmxx/new.h>
#include <dmxx/platform.h>
#include <dmxx/table_args.h>

#include "persistent_store.h"
#include "transient_store.h"

namespace dmxx::snap {

static char upper(char c) { return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c; }

Result<ExceptionStore *> create_exception_store(const char *type, const char *chunk_arg,
						 block_device *origin, block_device *cow,
						 const char **why)
{
	char kind = upper(type[0]);
	if (kind != 'P' && kind != 'N') {
		*why = "Exception store type is not P or N";
		return err(EINVAL);
	}

	auto parsed = parse_u64(chunk_arg);
	if (parsed.is_error() || parsed.value() > 0xffffffffu) {
		*why = "Invalid chunk size";
		return err(EINVAL);
	}
	u32 chunk = u32(parsed.value());
	if (chunk) {
		const char *problem = chunk_size_problem(chunk, dmxx_bdev_logical_block_size(origin),
							 dmxx_bdev_logical_block_size(cow));
		if (problem) {
			*why = problem;
			return err(EINVAL);
		}
	}

	if (kind == 'N') {
		/* Option letters after N are ignored, as the kernel ignores them. */
		auto *ts = new (AllocMode::Sleep) TransientStore(cow, chunk);
		if (!ts) {
			*why = "Exception store type constructor failed";
			return err(ENOMEM);
		}
		return static_cast<ExceptionStore *>(ts);
	}

	bool overflow = false;
	if (type[1]) {
		/* The kernel looks at the first option letter only. */
		if (upper(type[1]) != 'O') {
			dmxx_log(DMXX_LOG_ERR, "persistent snapshot: Unsupported persistent store option: %s",
				 type + 1);
			*why = "Exception store type constructor failed";
			return err(EINVAL);
		}
		overflow = true;
	}
	auto ps = PersistentStore::create(origin, cow, chunk, overflow);
	if (ps.is_error()) {
		*why = "Exception store type constructor failed";
		return ps.error();
	}
	return static_cast<ExceptionStore *>(ps.value());
}

} // namespace dmxx::snap
