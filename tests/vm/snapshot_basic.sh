#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest test (run by scripts/vm): snapshot-origin and snapshot, ours against the
# kernel's, on the same ramdisks with the same writes.
#
#   scripts/vm tests/vm/snapshot_basic.sh
#
# For each implementation (kernel dm-snapshot, then dmxx_snapshot), chunk sizes 4k and
# 64k, and 1 and 4 snapshots: snapshots are taken one after another with origin writes
# in between, so snapshot i must show the origin as it was when i was taken, and the
# origin the latest data (checksums). Then a write into a snapshot lands there and
# nowhere else, and the printed table line loads again. Every status line is recorded
# and must equal, byte for byte, what the kernel's target printed for the same steps
# (LVM parses these). Finally every malformed table line must be rejected by ours
# with the same ti->error the kernel's target logs, and leave nothing behind.
. "$(dirname "$0")/lib.sh"

ORIG=/dev/ram0
RAM_KB=16384 # 16 MiB each: origin ram0, COWs ram1..ram4
T=/tmp

section "setup"
load_module dm_mod || die "insmod dm-mod"
make_brd 5 $RAM_KB || die "brd ramdisks"
S=$(sectors $ORIG)
MM_O=$(printf '%d:%d' "0x$(stat -c %t $ORIG)" "0x$(stat -c %T $ORIG)")
head -c $((S * 512)) /dev/urandom >$T/origin.img || die "random origin image"
# Writes: random data at unaligned offsets, 300 KiB each (crosses 64k chunks).
for i in 1 2 3 4 5; do
	head -c 307200 /dev/urandom >$T/w$i.img
done
head -c 204800 /dev/urandom >$T/snapw.img

# cow N: the COW device of snapshot N.
cow() { echo /dev/ram$1; }

# scenario IMPL CHUNK NSNAP: prints "status: ..." lines on fd 3 (the comparison record).
scenario() {
	local impl=$1 chunk=$2 n=$3 i sum tag
	tag="$impl chunk=$chunk snaps=$n"
	write_range $ORIG 0 $T/origin.img || { fail "$tag: fill origin"; return 1; }
	i=1
	while [ $i -le $n ]; do
		dd if=/dev/zero of="$(cow $i)" bs=4096 count=1 oflag=direct 2>/dev/null
		i=$((i + 1))
	done
	check "$tag: create origin" dm_create s_orig "0 $S snapshot-origin $ORIG" || return 1
	i=1
	while [ $i -le $n ]; do
		# The origin's state at snapshot time is what the snapshot must keep showing.
		eval "want_$i=$(sum_range /dev/mapper/s_orig 0 $S)"
		dmsetup suspend s_orig
		check "$tag: create snapshot $i" dm_create s_snap$i "0 $S snapshot $ORIG $(cow $i) P $chunk"
		dmsetup resume s_orig
		echo "status after create $i: $(dmsetup status s_snap$i)" >&3
		write_range /dev/mapper/s_orig $((1003 + i * 977)) $T/w$i.img
		i=$((i + 1))
	done
	# One more write that hits ground every snapshot shares, including already copied chunks.
	write_range /dev/mapper/s_orig 1500 $T/w5.img
	write_range /dev/mapper/s_orig 1003 $T/w1.img

	sum=$(sum_range $ORIG 0 $S)
	check_eq "$tag: origin device reads what the raw disk holds" "$sum" "$(sum_range /dev/mapper/s_orig 0 $S)"
	check_eq "$tag: last write landed on the origin" "$(file_sum $T/w1.img)" \
		"$(sum_range /dev/mapper/s_orig 1003 600)"
	i=1
	while [ $i -le $n ]; do
		eval "want=\$want_$i"
		check_eq "$tag: snapshot $i shows the origin as it was when taken" "$want" \
			"$(sum_range /dev/mapper/s_snap$i 0 $S)"
		echo "status snap $i: $(dmsetup status s_snap$i)" >&3
		check_eq "$tag: snapshot $i table" "0 $S snapshot $MM_O $(majmin "$(cow $i)") P $chunk" \
			"$(dmsetup table s_snap$i)"
		i=$((i + 1))
	done
	echo "status origin: $(dmsetup status s_orig)" >&3
	check_eq "$tag: origin table" "0 $S snapshot-origin $MM_O" "$(dmsetup table s_orig)"

	# A write into snapshot 1 lands there, and nowhere else.
	dd if=/dev/mapper/s_snap1 of=$T/snap1.img bs=65536 iflag=direct 2>/dev/null
	dd if=$T/snapw.img of=$T/snap1.img bs=512 seek=2222 conv=notrunc 2>/dev/null
	write_range /dev/mapper/s_snap1 2222 $T/snapw.img
	check_eq "$tag: snapshot 1 after a write into it" "$(file_sum $T/snap1.img)" \
		"$(sum_range /dev/mapper/s_snap1 0 $S)"
	check_eq "$tag: origin untouched by the snapshot write" "$sum" "$(sum_range /dev/mapper/s_orig 0 $S)"
	if [ "$n" -gt 1 ]; then
		check_eq "$tag: snapshot 2 untouched by the snapshot-1 write" "$want_2" \
			"$(sum_range /dev/mapper/s_snap2 0 $S)"
	fi
	echo "status snap 1 after its own write: $(dmsetup status s_snap1)" >&3

	# The printed table line loads again (reload + resume), data unchanged.
	check "$tag: reload snapshot 1 from its own table" dmsetup reload s_snap1 --table "$(dmsetup table s_snap1)"
	check "$tag: resume snapshot 1" dmsetup resume s_snap1
	check_eq "$tag: snapshot 1 unchanged by reload" "$(file_sum $T/snap1.img)" \
		"$(sum_range /dev/mapper/s_snap1 0 $S)"

	i=$n
	while [ $i -ge 1 ]; do
		check "$tag: remove snapshot $i" dm_remove s_snap$i
		i=$((i - 1))
	done
	check "$tag: remove origin" dm_remove s_orig
}

for impl in kernel ours; do
	section "data: $impl"
	use_impl $impl dm_snapshot dmxx_snapshot || die "load $impl snapshot targets"
	for chunk in 8 128; do
		for n in 1 4; do
			scenario $impl $chunk $n 3>>$T/status.$impl
		done
	done
done

section "status lines: ours vs kernel"
check_eq "status lines recorded" "yes" "$([ -s $T/status.kernel ] && echo yes)"
if cmp -s $T/status.kernel $T/status.ours; then
	pass "every status line equals the kernel's ($(wc -l <$T/status.ours) lines)"
else
	fail "status lines differ from the kernel's"
	diff $T/status.kernel $T/status.ours | sed 's/^/    /'
fi

# ------------------------------------------------------------------ bad table lines
section "bad table lines: ours vs kernel"
C1=$(cow 1)
dd if=/dev/zero of=$C1 bs=4096 count=1 oflag=direct 2>/dev/null
BAD_TABLES="
0 $S snapshot
0 $S snapshot $ORIG
0 $S snapshot $ORIG $C1 P
0 $S snapshot $ORIG $C1 X 8
0 $S snapshot $ORIG $C1 PX 8
0 $S snapshot $ORIG $C1 P 7
0 $S snapshot $ORIG $C1 P abc
0 $S snapshot $ORIG $C1 P -8
0 $S snapshot $ORIG $C1 P 0
0 $S snapshot $ORIG $C1 P 4294967296
0 $S snapshot $ORIG $C1 P 1073741824
0 $S snapshot $ORIG $ORIG P 8
0 $S snapshot /dev/nonexistent $C1 P 8
0 $S snapshot $ORIG /dev/nonexistent P 8
0 $S snapshot $ORIG $C1 P 8 1
0 $S snapshot $ORIG $C1 P 8 1 bogus
0 $S snapshot $ORIG $C1 P 8 x discard_zeroes_cow
0 $S snapshot $ORIG $C1 P 8 1 discard_passdown_origin
0 $S snapshot $ORIG $C1 P 8 3 discard_zeroes_cow discard_passdown_origin
0 $S snapshot $ORIG $C1 P 8 2 discard_zeroes_cow
0 $S snapshot-origin
0 $S snapshot-origin $ORIG extra
0 $S snapshot-origin /dev/nonexistent
0 $S snapshot-merge $ORIG $C1 N 8
0 $S snapshot-merge $ORIG $C1
"
for impl in kernel ours; do
	use_impl $impl dm_snapshot dmxx_snapshot || die "load $impl snapshot targets"
	echo "$BAD_TABLES" | while read -r line; do
		[ -n "$line" ] || continue
		echo "$line => $(table_error "$line")"
	done >$T/errors.$impl
done
# The kernel's target rejects every line with a logged reason, except "P 0" on a fresh
# COW, which it accepts (0 = default chunk size); anything else means the list is wrong ...
check_eq "the kernel's target accepts only 'P 0'" "0 $S snapshot $ORIG $C1 P 0 => ACCEPTED" \
	"$(grep '=> \(ACCEPTED\|NO-ERROR-LOGGED\|LEFT-BEHIND\)' $T/errors.kernel)"
# ... and ours must answer each line with the same words (or accept it too).
while read -r kline; do
	table=${kline%% => *}
	oline=$(grep -F -x -- "$table => $(echo "$kline" | sed 's/.* => //')" $T/errors.ours)
	if [ -n "$oline" ]; then
		pass "same error as the kernel: $kline"
	else
		fail "different error: kernel '$kline', ours '$(grep -F -- "$table => " $T/errors.ours | head -n 1)'"
	fi
done <$T/errors.kernel

section "module parameter"
P=/sys/module/dmxx_snapshot/parameters/snapshot_cow_threshold
check_eq "snapshot_cow_threshold defaults to 2048" 2048 "$(cat $P 2>/dev/null)"
check "snapshot_cow_threshold is writable at runtime" sh -c "echo 64 >$P"
check_eq "snapshot_cow_threshold reads back" 64 "$(cat $P 2>/dev/null)"
echo 2048 >$P

section "unload"
check "rmmod dmxx_snapshot" unload_module dmxx_snapshot
finish
