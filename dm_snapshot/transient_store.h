/* SPDX-License-Identifier: GPL-2.0 */
/* The N (transient) exception store; see exception_store.h. */
#pragma once

#include "exception_store.h"

namespace dmxx::snap {

class TransientStore final : public ExceptionStore {
public:
	TransientStore(block_device *cow, u32 chunk_sectors);

	Result<bool> read_metadata(AddFn add, void *ctx) override;
	Result<chunk_t> prepare_exception() override;
	/* Calls back at once, in the caller's context. */
	void commit_exception(CommitRequest *req) override;
	void drop_snapshot(DropDoneFn done, void *ctx) override;
	Usage usage() override;
	void emit_table(StatusWriter &out) const override;

private:
	block_device *m_cow;
	sector_t m_next_free = 0; /* sectors; guarded by alloc_lock */
};

} // namespace dmxx::snap
