// SPDX-License-Identifier: GPL-2.0
#include <dmxx/target.h>

namespace dmxx {

Result<void> register_targets(const dmxx_target_desc *const *descs, dmxx_target_reg **regs,
			      unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int r = dmxx_register_target(descs[i], &regs[i]);
		if (r < 0) {
			dmxx_log(DMXX_LOG_ERR, "register target %s failed: %d", descs[i]->name, r);
			unregister_targets(regs, i);
			return err(r);
		}
	}
	return {};
}

void unregister_targets(dmxx_target_reg **regs, unsigned n)
{
	while (n--) {
		dmxx_unregister_target(regs[n]);
		regs[n] = nullptr;
	}
}

} // namespace dmxx
