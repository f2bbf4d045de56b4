#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest test (run by scripts/vm): a persistent COW device moves between the kernel's
# dm-snapshot and dmxx_snapshot, both ways.
#
#   scripts/vm tests/vm/snapshot_compat.sh
#
# One implementation writes a snapshot (origin writes that copy chunks, writes into the
# snapshot itself), the devices are removed, the other implementation is loaded (same
# target names: rmmod one, insmod the other) and opens the COW with chunk size 0 (the
# on-disk size wins): it must read identical data, report the same status, and keep
# working (further origin writes preserve the snapshot). An invalidated COW (overflowed)
# must stay invalid when the other implementation loads it.
. "$(dirname "$0")/lib.sh"

ORIG=/dev/ram0
COW=/dev/ram1
T=/tmp

section "setup"
load_module dm_mod || die "insmod dm-mod"
make_brd 2 16384 || die "brd ramdisks"
S=$(sectors $ORIG)
head -c $((S * 512)) /dev/urandom >$T/origin.img || die "random origin image"
for i in 1 2 3 4; do
	head -c 262144 /dev/urandom >$T/w$i.img
done
other() { [ "$1" = kernel ] && echo ours || echo kernel; }
# add_snapshot DESC NAME TABLE: create a snapshot of c_orig as LVM does, with the origin
# suspended around it. The kernel's origin learns its snapshots' chunk size (where it
# splits writes) only on resume; without this it copies one chunk per origin bio.
add_snapshot() {
	dmsetup suspend c_orig
	check "$1" dm_create "$2" "$3"
	dmsetup resume c_orig
}

# ------------------------------------------------------------------ data moves across
for writer in ours kernel; do
	reader=$(other $writer)
	for chunk in 16 128; do
		tag="$writer -> $reader, chunk $chunk"
		section "$tag"
		use_impl $writer dm_snapshot dmxx_snapshot || die "load $writer"
		write_range $ORIG 0 $T/origin.img
		dd if=/dev/zero of=$COW bs=4096 count=1 oflag=direct 2>/dev/null
		check "$tag: $writer creates origin" dm_create c_orig "0 $S snapshot-origin $ORIG"
		add_snapshot "$tag: $writer creates snapshot" c_snap "0 $S snapshot $ORIG $COW P $chunk"
		write_range /dev/mapper/c_orig 777 $T/w1.img
		write_range /dev/mapper/c_orig 9000 $T/w2.img
		write_range /dev/mapper/c_snap 5000 $T/w3.img
		dd if=/dev/mapper/c_snap of=$T/snap.img bs=65536 iflag=direct 2>/dev/null
		snap_sum=$(file_sum $T/snap.img)
		status_w=$(dmsetup status c_snap)
		check "$tag: remove snapshot" dm_remove c_snap
		check "$tag: remove origin" dm_remove c_orig

		use_impl $reader dm_snapshot dmxx_snapshot || die "load $reader"
		check "$tag: $reader opens the origin" dm_create c_orig "0 $S snapshot-origin $ORIG"
		add_snapshot "$tag: $reader opens the COW (chunk 0: on-disk size)" c_snap "0 $S snapshot $ORIG $COW P 0"
		check_eq "$tag: on-disk chunk size wins" "0 $S snapshot $(majmin $ORIG) $(majmin $COW) P $chunk" \
			"$(dmsetup table c_snap)"
		check_eq "$tag: $reader reads what $writer wrote" "$snap_sum" "$(sum_range /dev/mapper/c_snap 0 $S)"
		check_eq "$tag: same status as $writer printed" "$status_w" "$(dmsetup status c_snap)"
		write_range /dev/mapper/c_orig 20000 $T/w4.img
		check_eq "$tag: $reader keeps the snapshot intact on new origin writes" "$snap_sum" \
			"$(sum_range /dev/mapper/c_snap 0 $S)"
		check_eq "$tag: origin has the new write" "$(file_sum $T/w4.img)" "$(sum_range /dev/mapper/c_orig 20000 512)"
		check "$tag: remove snapshot" dm_remove c_snap
		check "$tag: remove origin" dm_remove c_orig
	done
done

# ------------------------------------------------------------------ invalid stays invalid
# A 256 KiB COW (a linear slice of ram1) with 4k chunks: header + metadata + data
# chunks fill up after a few dozen copies; writing 1 MiB to the origin overflows it.
for writer in ours kernel; do
	reader=$(other $writer)
	tag="invalid: $writer -> $reader"
	section "$tag"
	use_impl $writer dm_snapshot dmxx_snapshot || die "load $writer"
	write_range $ORIG 0 $T/origin.img
	dd if=/dev/zero of=$COW bs=4096 count=1 oflag=direct 2>/dev/null
	check "$tag: small COW" dm_create c_small "0 512 linear $COW 0"
	check "$tag: origin" dm_create c_orig "0 $S snapshot-origin $ORIG"
	add_snapshot "$tag: snapshot" c_snap "0 $S snapshot $ORIG /dev/mapper/c_small P 8"
	head -c 1048576 /dev/urandom >$T/big.img
	check "$tag: origin write that overflows the COW succeeds" write_range /dev/mapper/c_orig 0 $T/big.img
	check_eq "$tag: $writer reports Invalid" "0 $S snapshot Invalid" "$(dmsetup status c_snap)"
	check_not "$tag: $writer fails reads of the invalid snapshot" sum_range_strict /dev/mapper/c_snap 0 8
	check_eq "$tag: origin still reads the new data" "$(file_sum $T/big.img)" "$(sum_range /dev/mapper/c_orig 0 2048)"
	check "$tag: remove snapshot" dm_remove c_snap
	check "$tag: remove origin" dm_remove c_orig

	use_impl $reader dm_snapshot dmxx_snapshot || die "load $reader"
	add_snapshot "$tag: $reader loads the invalid COW" c_snap "0 $S snapshot $ORIG /dev/mapper/c_small P 8"
	check_eq "$tag: $reader reports Invalid too" "0 $S snapshot Invalid" "$(dmsetup status c_snap)"
	check_not "$tag: $reader fails reads too" sum_range_strict /dev/mapper/c_snap 0 8
	check "$tag: remove snapshot" dm_remove c_snap
	check "$tag: remove small COW" dm_remove c_small
done

section "unload"
check "rmmod" unload_module dmxx_snapshot
finish
