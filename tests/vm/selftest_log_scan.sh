#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Negative control for scripts/vm's console scan: this guest test PASSES by its own
# account, but puts a fake kernel WARNING into the kernel log. scripts/vm must still
# exit nonzero. tests/vm/run_all.sh runs it and requires that failure (any selftest_*
# script is expected to fail); if it ever "passes", the splat scanner is broken.
. "$(dirname "$0")/lib.sh"

# Written at the kernel's default level (4, warning), i.e. exactly how a real
# WARN_ON() reaches the console.
echo 'WARNING: CPU: 0 PID: 1 at dmxx selftest: scripts/vm must reject this run' >/dev/kmsg
pass "fake WARNING written to /dev/kmsg"
finish
