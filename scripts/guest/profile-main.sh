# SPDX-License-Identifier: GPL-2.0
# Guest side of scripts/profile, after bench-cases.sh: each fio job on each variant with
# a system-wide `perf record` running alongside (cpu-clock: TCG has no PMU), then the
# report as text. Args after the bench ones (and an empty JOB_FILTER): VARIANTS PERF_ARGS REPORT_LINES.
VARIANTS=$8 PERF_ARGS=$9 REPORT_LINES=${10:-60}

load_module dm_mod || die "dm-mod"
for m in /dmxx/*.ko; do load_module "$(basename "$m" .ko)" || die "insmod $m"; done
make_brd 5 $((SIZE_MB * 1024)) || die "brd"
zero_fill $RAM || die "zero-fill"
echo 0 >/proc/sys/kernel/kptr_restrict
echo -1 >/proc/sys/kernel/perf_event_paranoid

for c in $CASES; do
	eval "targets=\$CASE_${c}_TARGETS"
	for j in $JOBS; do
		for v in $VARIANTS; do
			case $v in raw) t=brd ;; kernel) t=${targets% *} ;; ours) t=${targets#* } ;; esac
			dev=$(case_${c}_setup $v "$j") || die "setup $c $v"
			# shellcheck disable=SC2086 # PERF_ARGS is a word list
			perf record -q -a $PERF_ARGS -o /tmp/perf.data >/dev/null 2>&1 &
			perf_pid=$!
			sleep 1
			run_job "$c" "$v" "$t" 1 "$dev" "$j"
			kill -INT $perf_pid
			wait $perf_pid
			echo "DMXX-PROFILE-BEGIN case=$c variant=$v target=$t job=${j%%:*}"
			perf report -i /tmp/perf.data --stdio --no-children --percent-limit 0.5 \
				--sort dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n "$REPORT_LINES"
			echo "---- by command"
			perf report -i /tmp/perf.data --stdio --no-children --sort comm 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -n 25
			echo "DMXX-PROFILE-END"
			rm -f /tmp/perf.data
			case_${c}_teardown $v || die "teardown $c $v"
		done
	done
done
echo "DMXX-PROFILE-DONE"
