#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tests/vm/run_all.sh: run every guest test in tests/vm/ through scripts/vm (one VM
# boot each), print a summary, exit nonzero on any failure.
#
#   tests/vm/run_all.sh [scripts/vm options, e.g. --timeout 600; default 900 per boot]
#
# selftest_*.sh are the harness's own negative controls: they must make scripts/vm
# FAIL (e.g. a fake kernel WARNING that the log scan has to catch). A selftest that
# passes means the harness would let real problems through, so it counts as a failure.
# The per-boot limit is generous: the slowest test takes ~110 s on a quiet host and 350 s
# was seen on a busy one. A hang still fails (timeout, and the hung-task splat in the log).
# lib.sh and this file are not tests. The benchmark (scripts/bench) is never run here.
set -euo pipefail

# The whole script is one brace group: bash parses it completely before running it, so
# editing this file while a (long) run is in progress cannot derail that run.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VM=$ROOT/scripts/vm

results=()
failed=0
t_all=$SECONDS
# A test may declare extra runs with other guest arguments in a header line
#   # vm-runs: "" "kernel"
# (each word one run; "" = no arguments). snapshot_stress.sh runs once against ours and
# once against the kernel's targets, which shows the test asks only what the kernel does.
runs_of() {
	local line
	line=$(grep -m1 '^# vm-runs:' "$1" | sed 's/^# vm-runs://') || true
	[[ -n $line ]] && eval "printf '%s\n' $line" || printf '\n'
}

for t in "$HERE"/*.sh; do
	base=$(basename "$t")
	case $base in lib.sh | run_all.sh) continue ;; esac
	mapfile -t runs < <(runs_of "$t")
	for arg in "${runs[@]}"; do
		name=$base${arg:+ $arg}
		t0=$SECONDS
		set +e
		# shellcheck disable=SC2086 # arg is one word or empty
		"$VM" --quiet --timeout 900 "$@" "$t" $arg
		rc=$?
		set -e
		dt=$((SECONDS - t0))
		case $name in
		selftest_*)
			if [[ $rc -ne 0 ]]; then
				results+=("PASS  $name (failed as it must, exit $rc, ${dt}s)")
			else
				results+=("FAIL  $name (negative control PASSED: scripts/vm misses what it should catch)")
				failed=$((failed + 1))
			fi
			;;
		*)
			if [[ $rc -eq 0 ]]; then
				results+=("PASS  $name (${dt}s)")
			else
				results+=("FAIL  $name (exit $rc, ${dt}s)")
				failed=$((failed + 1))
			fi
			;;
		esac
	done
done

echo
echo "VM tests (logs in build/vm/logs/):"
printf '  %s\n' "${results[@]}"
echo "VM tests took $((SECONDS - t_all))s"
echo "vm: $((${#results[@]} - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
exit
}
