/* SPDX-License-Identifier: GPL-2.0 */
/* dmxx-linear: module entry points (see dm_core/passthrough_target.cpp). */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif
int dmxx_passthrough_init(void);
void dmxx_passthrough_exit(void);
#ifdef __cplusplus
}
#endif
