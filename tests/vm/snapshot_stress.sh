#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest test (run by scripts/vm): dmxx_snapshot under concurrent I/O and faults.
#
#   scripts/vm tests/vm/snapshot_stress.sh [kernel]
# vm-runs: "" "kernel"
#
# With the argument `kernel` it runs against the kernel's dm-snapshot instead: the same
# script must pass there too, which shows the test asks only what the kernel does.
#   1. fio verify=crc32c on the origin and on two snapshots at once (4k and 64k chunks),
#      with suspend/resume of every device while the I/O runs;
#   2. a snapshot removed while the origin is written;
#   3. the COW fills up under origin I/O: the snapshot goes Invalid, its reads fail,
#      the origin's fio still verifies;
#   4. a PO snapshot filled by writes into itself reports Overflow;
#   5. write errors from the COW device (dm-flakey beneath it): the snapshot goes
#      Invalid, the origin keeps working;
#   6. snapshot-merge: the origin becomes what the snapshot showed, merged in the
#      background to completion, with origin writes during the merge.
# scripts/vm fails the run on any WARNING/BUG/lockup/hung task in the log.
. "$(dirname "$0")/lib.sh"

IMPL=${1:-ours}
ORIG=/dev/ram0
T=/tmp
RAM_KB=32768

section "setup ($IMPL)"
load_module dm_mod || die "insmod dm-mod"
use_impl "$IMPL" dm_snapshot dmxx_snapshot || die "load $IMPL snapshot targets"
load_module dm_flakey || die "insmod dm-flakey"
make_brd 4 $RAM_KB || die "brd ramdisks"
S=$(sectors $ORIG)
zero_cow() { dd if=/dev/zero of="$1" bs=4096 count=1 oflag=direct 2>/dev/null; }

# fio_verify NAME DEV SIZE_MB [extra fio args]: write + crc32c verify, 4 jobs x QD8, each
# job on its own slice so the verify knows what it wrote.
fio_verify() {
	local name=$1 dev=$2 mb=$3
	shift 3
	fio --name="$name" --filename="$dev" --rw=randwrite --bs=4k --iodepth=8 --numjobs=4 \
		--ioengine=libaio --direct=1 --size=$((mb / 4))M --offset_increment=$((mb / 4))M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting "$@" \
		--output=$T/fio-$name.log >$T/fio-$name.err 2>&1 && return 0
	local rc=$?
	echo "fio $name failed (exit $rc):"
	tail -n 15 $T/fio-$name.log $T/fio-$name.err 2>/dev/null | sed 's/^/    /'
	return $rc
}

# check_wait DESC PID: the background job's exit status (wait must run in this shell,
# not in check's subshell).
check_wait() {
	wait "$2"
	check_eq "$1" 0 "$?"
}

# create the stack: origin + 2 snapshots (chunks 8 and 128 sectors) on ram1, ram2.
stack_up() {
	zero_cow /dev/ram1
	zero_cow /dev/ram2
	dm_create st_orig "0 $S snapshot-origin $ORIG" || return 1
	dmsetup suspend st_orig
	dm_create st_snap1 "0 $S snapshot $ORIG /dev/ram1 P 8" || return 1
	dm_create st_snap2 "0 $S snapshot $ORIG /dev/ram2 P 128" || return 1
	dmsetup resume st_orig
}

# ------------------------------------------------------------------ 1. concurrent verify
section "1. fio verify on origin and both snapshots, with suspend/resume"
head -c $((S * 512)) /dev/urandom | dd of=$ORIG bs=1M oflag=direct 2>/dev/null
check "stack up" stack_up
before1=$(sum_range /dev/mapper/st_snap1 16384 16384)
fio_verify orig /dev/mapper/st_orig 8 &
p1=$!
fio_verify snap1 /dev/mapper/st_snap1 8 &
p2=$!
fio_verify snap2 /dev/mapper/st_snap2 8 --offset=16M &
p3=$!
n=0
while [ $n -lt 5 ]; do
	for d in st_snap1 st_orig st_snap2; do
		dmsetup suspend $d && dmsetup resume $d || fail "suspend/resume $d"
	done
	n=$((n + 1))
done
check_wait "fio verify on the origin" $p1
check_wait "fio verify on snapshot 1" $p2
check_wait "fio verify on snapshot 2" $p3
# fio wrote only the first 8 MiB of the origin and snapshot 1: snapshot 1 beyond that
# still shows the original origin data.
check_eq "snapshot 1 beyond its own writes still holds the old origin data" "$before1" \
	"$(sum_range /dev/mapper/st_snap1 16384 16384)"
for d in st_snap1 st_snap2; do
	check "status of $d is a usage line" sh -c "dmsetup status $d | grep -Eq '^0 $S snapshot [0-9]+/[0-9]+ [0-9]+\$'"
done

# ------------------------------------------------------------------ 2. remove under I/O
section "2. remove a snapshot while the origin is written"
fio_verify orig2 /dev/mapper/st_orig 8 --offset=8M &
p1=$!
check "remove snapshot 2 under origin I/O" dm_remove st_snap2
check_wait "fio verify on the origin after the removal" $p1
check "remove snapshot 1" dm_remove st_snap1
check "remove origin" dm_remove st_orig

# ------------------------------------------------------------------ 3. COW full
section "3. COW fills up under origin I/O"
zero_cow /dev/ram1
check "small COW (1 MiB)" dm_create st_small "0 2048 linear /dev/ram1 0"
check "origin" dm_create st_orig "0 $S snapshot-origin $ORIG"
dmsetup suspend st_orig
check "snapshot on the small COW" dm_create st_snap1 "0 $S snapshot $ORIG /dev/mapper/st_small P 8"
dmsetup resume st_orig
check "origin fio verify while the COW overflows" fio_verify full /dev/mapper/st_orig 16
check_eq "snapshot reports Invalid" "0 $S snapshot Invalid" "$(dmsetup status st_snap1)"
check_not "reads of the invalid snapshot fail" sum_range_strict /dev/mapper/st_snap1 0 8
check "origin still verifies after the snapshot died" fio_verify full2 /dev/mapper/st_orig 4 --offset=20M
check "remove invalid snapshot" dm_remove st_snap1
check "remove origin" dm_remove st_orig

# ------------------------------------------------------------------ 4. PO overflow
section "4. PO snapshot overflowed by writes into it"
zero_cow /dev/ram1
check "origin" dm_create st_orig "0 $S snapshot-origin $ORIG"
dmsetup suspend st_orig
check "PO snapshot on the small COW" dm_create st_snap1 "0 $S snapshot $ORIG /dev/mapper/st_small PO 8"
dmsetup resume st_orig
head -c 2097152 /dev/urandom >$T/two.img
write_range /dev/mapper/st_snap1 0 $T/two.img
check_eq "PO snapshot reports Overflow" "0 $S snapshot Overflow" "$(dmsetup status st_snap1)"
check "origin writes still work" write_range /dev/mapper/st_orig 30000 $T/two.img
check "remove overflowed snapshot" dm_remove st_snap1
check "remove origin" dm_remove st_orig
check "remove small COW" dm_remove st_small

# ------------------------------------------------------------------ 5. COW write errors
section "5. write errors on the COW device (dm-flakey)"
zero_cow /dev/ram1
# Up 4 s, then down 60 s: the snapshot is created while up, the fio below hits the
# down interval, where every COW I/O fails.
check "flakey COW" dm_create st_flaky "0 $S flakey /dev/ram1 0 4 60"
check "origin" dm_create st_orig "0 $S snapshot-origin $ORIG"
dmsetup suspend st_orig
check "snapshot on the flakey COW" dm_create st_snap1 "0 $S snapshot $ORIG /dev/mapper/st_flaky P 8"
dmsetup resume st_orig
sleep 5
check "origin fio verify with a failing COW" fio_verify flaky /dev/mapper/st_orig 4
check_eq "snapshot reports Invalid after COW errors" "0 $S snapshot Invalid" "$(dmsetup status st_snap1)"
check "remove snapshot" dm_remove st_snap1
check "remove origin" dm_remove st_orig
check "remove flakey" dm_remove st_flaky

# ------------------------------------------------------------------ 6. merge
section "6. snapshot-merge to completion"
head -c $((S * 512)) /dev/urandom | dd of=$ORIG bs=1M oflag=direct 2>/dev/null
zero_cow /dev/ram1
check "origin" dm_create st_orig "0 $S snapshot-origin $ORIG"
dmsetup suspend st_orig
check "snapshot" dm_create st_snap1 "0 $S snapshot $ORIG /dev/ram1 P 16"
dmsetup resume st_orig
head -c 1048576 /dev/urandom >$T/o1.img
head -c 1048576 /dev/urandom >$T/s1.img
write_range /dev/mapper/st_orig 100 $T/o1.img
write_range /dev/mapper/st_snap1 5000 $T/s1.img
dd if=/dev/mapper/st_snap1 of=$T/snapview.img bs=65536 iflag=direct 2>/dev/null
# LVM's merge: the origin's table becomes snapshot-merge over the same COW, the
# snapshot device goes away.
check "remove snapshot device" dm_remove st_snap1
dmsetup suspend st_orig
check "reload origin as snapshot-merge" dmsetup reload st_orig --table "0 $S snapshot-merge $ORIG /dev/ram1 P 16"
check "resume: merge starts" dmsetup resume st_orig
# Origin writes during the merge: they must win over the merged chunks.
head -c 65536 /dev/urandom >$T/during.img
write_range /dev/mapper/st_orig 40000 $T/during.img
dd if=$T/during.img of=$T/snapview.img bs=512 seek=40000 conv=notrunc 2>/dev/null
# Suspend/resume while merging, then deactivate and reactivate the device (what LVM
# does on reboot): the merge stops and restarts from the COW where it was; chunks
# already merged are not merged again over the newer write made during the merge.
# (A reload while merging is refused, by the kernel too: "A snapshot is already merging.")
check "suspend during the merge" dmsetup suspend st_orig
check "resume: merge continues" dmsetup resume st_orig
check "remove the merging device" dm_remove st_orig
check "create it again: merge restarts" dm_create st_orig "0 $S snapshot-merge $ORIG /dev/ram1 P 16"
# Wait (bounded) for "<allocated>/<total> <metadata>" with allocated == metadata.
done_merge=0
n=0
while [ $n -lt 120 ]; do
	st=$(dmsetup status st_orig)
	a=$(echo "$st" | awk '{ split($4, x, "/"); print x[1] }')
	m=$(echo "$st" | awk '{ print $5 }')
	if [ -n "$a" ] && [ "$a" = "$m" ]; then
		done_merge=1
		break
	fi
	sleep 1
	n=$((n + 1))
done
check_eq "merge completed (status allocated == metadata)" 1 "$done_merge"
check_eq "origin equals the snapshot's view plus the writes made during the merge" \
	"$(file_sum $T/snapview.img)" "$(sum_range /dev/mapper/st_orig 0 $S)"
check "remove merged origin" dm_remove st_orig
check_eq "raw origin holds the merged data" "$(file_sum $T/snapview.img)" "$(sum_range $ORIG 0 $S)"

section "unload"
if [ "$IMPL" = ours ]; then
	check "rmmod dmxx_snapshot" unload_module dmxx_snapshot
fi
finish
