# SPDX-License-Identifier: GPL-2.0
# Guest side of scripts/bench, after bench-cases.sh: the rounds.
load_module dm_mod || die "dm-mod"
for m in /dmxx/*.ko; do load_module "$(basename "$m" .ko)" || die "insmod $m"; done
# ram0 for every case; ram1..ram4 hold the snapshot cases' COWs. brd allocates a page on
# its first write, so every page a measurement writes is written once here: otherwise
# whichever variant first filled a COW paid for its pages (round 1 of o_first at QD16
# was 15% slower for that variant, even instruction-counted).
make_brd 5 $((SIZE_MB * 1024)) || die "brd"
zero_fill $RAM || die "zero-fill"
case " $CASES " in
*" snap_"*)
	for i in 1 2 3 4; do
		dd if=/dev/zero of=/dev/ram$i bs=1M count=$((SNAP_MB + 4)) oflag=direct 2>/dev/null || die "zero-fill ram$i"
	done ;;
esac
echo "DMXX-BENCH-META fio=$(fio --version) cpus=$(nproc) ram_sectors=$(sectors $RAM)"

errors=0
for c in $CASES; do
	eval "targets=\$CASE_${c}_TARGETS"
	ktarget=${targets% *}
	otarget=${targets#* }
	eval "jobs=\${CASE_${c}_JOBS:-\$JOBS}"
	if [ -n "$JOB_FILTER" ]; then
		kept=
		for j in $jobs; do
			case " $JOB_FILTER " in *" ${j%%:*} "*) kept="$kept $j" ;; esac
		done
		jobs=$kept
	fi
	eval "variants=\${CASE_${c}_VARIANTS:-raw kernel ours}"
	# Warm-up, not measured: every variant runs the case's first job for 2 s, so
	# the first measured run of a variant does not also pay for loading its
	# module, first touches of the ramdisks and emulating its code for the first
	# time (round 1's first variant was up to 2x slower without this).
	for v in $variants; do
		j=${jobs# }
		j=${j%% *}
		dev=$(case_${c}_setup $v "$j") || { echo "DMXX-BENCH-ERROR case=$c variant=$v warm-up setup"; errors=$((errors + 1)); continue; }
		warm_up "$dev" "$j"
		case_${c}_teardown $v || errors=$((errors + 1))
	done
	r=1
	while [ $r -le "$ROUNDS" ]; do
		# Interleave per job, and rotate which variant goes first, second and
		# third (round + job index), so over rounds that are a multiple of 3
		# every variant runs every job in every position equally often: slow
		# drift within the boot and after-effects of the previous run cancel.
		ji=0
		for j in $jobs; do
			if [ "$variants" = "kernel ours" ]; then
				case $(((r + ji) % 2)) in 0) order="kernel ours" ;; *) order="ours kernel" ;; esac
			else
				case $(((r + ji) % 3)) in
				0) order="raw kernel ours" ;;
				1) order="kernel ours raw" ;;
				*) order="ours raw kernel" ;;
				esac
			fi
			for v in $order; do
				case $v in raw) t=brd ;; kernel) t=$ktarget ;; ours) t=$otarget ;; esac
				dev=$(case_${c}_setup $v "$j") || { echo "DMXX-BENCH-ERROR case=$c variant=$v setup"; errors=$((errors + 1)); continue; }
				run_job "$c" "$v" "$t" "$r" "$dev" "$j" || errors=$((errors + 1))
				case_${c}_teardown $v || errors=$((errors + 1))
			done
			ji=$((ji + 1))
		done
		r=$((r + 1))
	done
done
echo "DMXX-BENCH-DONE errors=$errors"
[ $errors -eq 0 ]
