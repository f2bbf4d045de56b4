#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of scripts/bench and scripts/profile: the cases (setup/teardown of each
# variant) and run_job. The host concatenates this with bench-main.sh or profile-main.sh.
# Args (both scripts): ROUNDS RUNTIME RAMP SIZE_MB "CASES" "JOBS" ["JOB_FILTER": names]
. "$(dirname "$0")/lib.sh"
ROUNDS=$1 RUNTIME=$2 RAMP=$3 SIZE_MB=$4 CASES=$5 JOBS=$6 JOB_FILTER=${7:-}
RAM=/dev/ram0

# swap_module OUT IN: for cases whose kernel target and ours share a name.
swap_module() {
	unload_module "$1" && load_module "$2"
}

# ---- case: linear (kernel `linear` vs our `dmxx-linear`, same table)
CASE_linear_TARGETS="linear dmxx-linear"
case_linear_setup() {
	local target
	case $1 in
	raw) echo $RAM; return 0 ;;
	kernel) target=linear ;;
	ours) target=dmxx-linear ;;
	esac
	dm_create bench_lin "0 $(sectors $RAM) $target $RAM 0" >&2 || return 1
	echo /dev/mapper/bench_lin
}
case_linear_teardown() {
	[ "$1" = raw ] || dm_remove bench_lin
}

# ---- case: clone (plain pass-through vs one bio set clone per bio, same module)
# Not kernel vs ours: the "kernel" variant is our `dmxx-linear` (DM remaps the bio it
# owns), the "ours" variant is `dmxx-clone` without split_sectors (every bio cloned
# from the target's BioSet, rescuer armed, default reserve): ours/kernel = clone/plain.
CASE_clone_TARGETS="dmxx-linear dmxx-clone"
case_clone_setup() {
	local target
	case $1 in
	raw) echo $RAM; return 0 ;;
	kernel) target=dmxx-linear ;;
	ours) target=dmxx-clone ;;
	esac
	dm_create bench_clone "0 $(sectors $RAM) $target $RAM 0" >&2 || return 1
	echo /dev/mapper/bench_clone
}
case_clone_teardown() {
	[ "$1" = raw ] || dm_remove bench_clone
}

# set_clone_params RESERVE FORCE RESCUER: dmxx-clone reads them at table load.
set_clone_params() {
	local p=/sys/module/dmxx_linear/parameters
	echo "$1" >$p/bioset_reserve && echo "$2" >$p/bioset_force_reserve && echo "$3" >$p/bioset_rescuer
}

# clone_variant_setup VARIANT NAME "KERNEL PARAMS" "OURS PARAMS": a dmxx-clone device
# over $RAM built with the variant's set_clone_params (pool force rescuer), which go
# back to the defaults afterwards; raw is $RAM itself.
clone_variant_setup() {
	case $1 in
	raw) echo $RAM; return 0 ;;
	kernel) set_clone_params $3 ;;
	ours) set_clone_params $4 ;;
	esac
	dm_create "$2" "0 $(sectors $RAM) dmxx-clone $RAM 0" >&2 || return 1
	set_clone_params 16 0 1
	echo "/dev/mapper/$2"
}

# ---- case: rescuer (dmxx-clone with its bio set's rescuer disarmed vs armed)
# Both variants are dmxx-clone; "kernel" = bioset_rescuer=0 (RescuePolicy::None), "ours" =
# the default, armed rescuer. ours/kernel = what arming the rescuer costs on the fast path.
CASE_rescuer_TARGETS="dmxx-clone:norescuer dmxx-clone:rescuer"
case_rescuer_setup() { clone_variant_setup "$1" bench_resc "16 0 0" "16 0 1"; }
case_rescuer_teardown() { [ "$1" = raw ] || dm_remove bench_resc; }

# ---- case: reserve (dmxx-clone allocating from the slab vs only from its mempool reserve)
# "kernel" = the default (allocator first, reserve when it fails), "ours" =
# bioset_force_reserve=1 with a 256-bio reserve: every clone comes from the reserve.
# ours/kernel = reserve path / slab path.
CASE_reserve_TARGETS="dmxx-clone:slab dmxx-clone:reserve"
case_reserve_setup() { clone_variant_setup "$1" bench_resv "256 0 1" "256 1 1"; }
case_reserve_teardown() { [ "$1" = raw ] || dm_remove bench_resv; }

# ---- cases: snap_c<CHUNK>_n<N> (kernel dm-snapshot vs dmxx_snapshot, same names)
# An origin of SNAP_MB on ram0 with N persistent snapshots (chunk CHUNK sectors) on
# ram1..ramN; rmmod/insmod between variants. No raw variant: a COW has no raw twin.
# Jobs (o_* on the origin, s_* on snapshot 1; ":once" = write the device once,
# size-based, instead of time-based):
#   o_first_*   every chunk's first write copies it to all N COWs (fresh snapshots)
#   o_second_*  the origin was written once at setup: no copies left to make
#   o_seq1m_*   sequential 1M writes on fresh snapshots
#   s_randread_* reads of snapshot 1, half of whose chunks are in its COW
SNAP_MB=32
SNAP_JOBS="o_first_4k_qd16:randwrite:4k:16:once o_first_4k_qd1:randwrite:4k:1:once o_second_4k_qd16:randwrite:4k:16 o_seq1m_qd4:write:1M:4:once s_randread_4k_qd16:randread:4k:16"
snap_case() { # CASE -> "CHUNK N"
	echo "$1" | sed 's/^snap_c\([0-9]*\)_n\([0-9]*\)$/\1 \2/'
}
snap_setup() { # VARIANT JOBSPEC CASE
	local chunk n i len name
	set -- "$1" "$2" $(snap_case "$3")
	chunk=$3 n=$4 len=$((SNAP_MB * 2048)) name=${2%%:*}
	use_impl "$1" dm_snapshot dmxx_snapshot || return 1
	dm_create bsnap_orig "0 $len snapshot-origin $RAM" || return 1
	dmsetup suspend bsnap_orig
	i=1
	while [ $i -le "$n" ]; do
		dd if=/dev/zero of=/dev/ram$i bs=4096 count=1 oflag=direct 2>/dev/null
		dm_create bsnap_$i "0 $len snapshot $RAM /dev/ram$i P $chunk" || return 1
		i=$((i + 1))
	done
	dmsetup resume bsnap_orig
	case $name in
	o_second_*) dd if=/dev/zero of=/dev/mapper/bsnap_orig bs=1M count=$SNAP_MB oflag=direct 2>/dev/null ;;
	s_*) dd if=/dev/zero of=/dev/mapper/bsnap_orig bs=1M count=$((SNAP_MB / 2)) oflag=direct 2>/dev/null ;;
	esac
	case $name in
	s_*) echo /dev/mapper/bsnap_1 ;;
	*) echo /dev/mapper/bsnap_orig ;;
	esac
}
snap_teardown() { # CASE
	local i n
	n=$(snap_case "$1" | cut -d' ' -f2)
	i=$n
	while [ $i -ge 1 ]; do
		dm_remove bsnap_$i || return 1
		i=$((i - 1))
	done
	dm_remove bsnap_orig
}
for c in snap_c8_n1 snap_c8_n4 snap_c128_n1 snap_c128_n4; do
	eval "CASE_${c}_TARGETS='snapshot dmxx:snapshot'"
	eval "CASE_${c}_VARIANTS='kernel ours'"
	eval "CASE_${c}_JOBS='$SNAP_JOBS'"
	eval "case_${c}_setup() { snap_setup \"\$1\" \"\$2\" $c; }"
	eval "case_${c}_teardown() { snap_teardown $c; }"
done

# warm_up DEV JOBSPEC: the job's I/O pattern for 2 s, nothing reported.
warm_up() {
	fio --name=warmup --filename="$1" --rw="$(echo "$2" | cut -d: -f2)" --bs="$(echo "$2" | cut -d: -f3)" \
		--iodepth="$(echo "$2" | cut -d: -f4)" --ioengine=libaio --direct=1 --time_based --runtime=2 \
		--norandommap --randrepeat=0 >/dev/null 2>&1 || true
}

# run_job CASE VARIANT TARGET ROUND DEV JOBSPEC: one fio run, one DMXX-BENCH line.
run_job() {
	local name rw bs qd line iops bw lat timing
	name=${6%%:*}
	rw=$(echo "$6" | cut -d: -f2)
	bs=$(echo "$6" | cut -d: -f3)
	qd=$(echo "$6" | cut -d: -f4)
	if [ "$(echo "$6" | cut -d: -f5)" = once ]; then
		# Every block exactly once (fio's random map), the whole device, no ramp.
		timing="--randrepeat=0"
	else
		timing="--time_based --runtime=$RUNTIME --ramp_time=$RAMP --norandommap --randrepeat=0"
	fi
	# shellcheck disable=SC2086 # $timing is a word list
	line=$(fio --output-format=terse --terse-version=3 --name="$name" --filename="$5" \
		--rw="$rw" --bs="$bs" --iodepth="$qd" --ioengine=libaio --direct=1 $timing \
		2>&1 | grep "^3;") || { echo "DMXX-BENCH-ERROR case=$1 variant=$2 job=$name"; return 1; }
	# terse v3: read iops/bw(KiB/s)/mean lat(us) = 8/7/40, write = 49/48/81
	case $rw in
	*read*) iops=$(echo "$line" | cut -d';' -f8); bw=$(echo "$line" | cut -d';' -f7); lat=$(echo "$line" | cut -d';' -f40) ;;
	*) iops=$(echo "$line" | cut -d';' -f49); bw=$(echo "$line" | cut -d';' -f48); lat=$(echo "$line" | cut -d';' -f81) ;;
	esac
	echo "DMXX-BENCH case=$1 variant=$2 target=$3 round=$4 job=$name iops=$iops mbps=$(awk -v b="$bw" 'BEGIN { printf "%.1f", b * 1024 / 1e6 }') lat_us=$lat"
}

