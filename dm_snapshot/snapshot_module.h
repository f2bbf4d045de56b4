/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dmxx_snapshot: module entry points (dm_snapshot/targets.cpp). They register
 * snapshot-origin, snapshot and snapshot-merge, all or none, after creating
 * the origin registry; exit undoes both. The module's C file declares the
 * module parameter snapshot_cow_threshold (uint, 0644, default 2048) and
 * serves it through dmxx_param_read_uint().
 */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif
int dmxx_snapshot_init(void);
void dmxx_snapshot_exit(void);
#ifdef __cplusplus
}
#endif
