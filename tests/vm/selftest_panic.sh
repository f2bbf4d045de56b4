#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Negative control for scripts/vm: the guest crashes (sysrq 'c': a deliberate NULL
# dereference, so Oops -> panic -> QEMU exits) before the test can print its exit
# marker. scripts/vm must fail the run: no DMXX-TEST-EXIT marker, and "Oops"/"Kernel
# panic" in the console log. tests/vm/run_all.sh expects selftest_* to fail.
. "$(dirname "$0")/lib.sh"

pass "about to crash the guest on purpose"
echo c >/proc/sysrq-trigger
# Not reached.
finish
