/* SPDX-License-Identifier: GPL-2.0 */
/* dmxx-clone: module entry points (see dm_core/clone_target.cpp). */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif
int dmxx_clone_init(void);
void dmxx_clone_exit(void);
#ifdef __cplusplus
}
#endif
