#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest test (run by scripts/vm): dmxx-linear end to end, and side by side with the
# kernel's own `linear` target on the same ramdisk.
#
#   scripts/vm tests/vm/passthrough_smoke.sh
. "$(dirname "$0")/lib.sh"

RAM=/dev/ram0
RAM_KB=24576            # 24 MiB ramdisk = 49152 sectors (small: TCG is slow)
OFF=2056                # nonzero, not MiB-aligned: catches a missing/double offset
LEN=32768               # 16 MiB mapped
OURS=dmxx_lin
KERN=kern_lin
T=/tmp

# ------------------------------------------------------------------ setup
section "setup"
load_module dm_mod || die "insmod dm-mod"
load_module dmxx_linear || die "insmod dmxx_linear"
check "dmxx-linear is registered" sh -c 'dmsetup targets | grep -q "^dmxx-linear "'
make_brd 1 "$RAM_KB" || die "brd ramdisk"
RAMSECT=$(sectors "$RAM")
check_eq "ramdisk size" $((RAM_KB * 2)) "$RAMSECT"
MAJMIN=$(printf '%d:%d' "0x$(stat -c %t "$RAM")" "0x$(stat -c %T "$RAM")")

# Random content on the whole ramdisk, so any mis-mapping shows up as a wrong sum.
head -c $((RAMSECT * 512)) /dev/urandom >$T/ram.img
write_range $RAM 0 $T/ram.img || die "fill ramdisk"

# ------------------------------------------------------------------ create, table, status
section "create, table, status"
TABLE="0 $LEN dmxx-linear $RAM $OFF"
check "create $OURS: $TABLE" dm_create $OURS "$TABLE"
[ -b /dev/mapper/$OURS ] || die "/dev/mapper/$OURS missing"
check_eq "device size" "$LEN" "$(sectors /dev/mapper/$OURS)"
check_eq "dmsetup table" "0 $LEN dmxx-linear $MAJMIN $OFF" "$(dmsetup table $OURS)"
check_eq "dmsetup status" "0 $LEN dmxx-linear " "$(dmsetup status $OURS)"
# The table line dmsetup prints must load again, unchanged.
check "table output loads again" dm_create ${OURS}_again "$(dmsetup table $OURS)"
check_eq "reloaded table identical" "$(dmsetup table $OURS)" "$(dmsetup table ${OURS}_again)"
dm_remove ${OURS}_again

check "create kernel linear: 0 $LEN linear $RAM $OFF" dm_create $KERN "0 $LEN linear $RAM $OFF"
check_eq "table matches kernel linear's (but the name)" \
	"$(dmsetup table $KERN | sed 's/ linear / T /')" "$(dmsetup table $OURS | sed 's/ dmxx-linear / T /')"
check_eq "status matches kernel linear's (but the name)" \
	"$(dmsetup status $KERN | sed 's/ linear / T /')" "$(dmsetup status $OURS | sed 's/ dmxx-linear / T /')"

# ------------------------------------------------------------------ mapping
section "mapping"
check_eq "whole device via dmxx-linear == raw at offset" \
	"$(sum_range $RAM $OFF $LEN)" "$(sum_range /dev/mapper/$OURS 0 $LEN)"
check_eq "whole device via dmxx-linear == via kernel linear" \
	"$(sum_range /dev/mapper/$KERN 0 $LEN)" "$(sum_range /dev/mapper/$OURS 0 $LEN)"

# Writes through dm land at offset (start, middle, last 256 KiB), and back.
head -c 262144 /dev/urandom >$T/w1
head -c 262144 /dev/urandom >$T/w2
W1=$(file_sum $T/w1)
W2=$(file_sum $T/w2)
for at in 0 12345 $((LEN - 512)); do
	check "O_DIRECT write 256 KiB via dmxx-linear at sector $at" write_range /dev/mapper/$OURS $at $T/w1
	check_eq "  raw device at $OFF+$at holds it" "$W1" "$(sum_range $RAM $((OFF + at)) 512)"
	check_eq "  kernel linear reads the same" "$W1" "$(sum_range /dev/mapper/$KERN $at 512)"
	check "O_DIRECT write 256 KiB to raw device at $OFF+$at" write_range $RAM $((OFF + at)) $T/w2
	check_eq "  dmxx-linear reads it at $at" "$W2" "$(sum_range /dev/mapper/$OURS $at 512)"
done
check_eq "sector before the mapping untouched" \
	"$(dd if=$T/ram.img bs=512 skip=$((OFF - 8)) count=8 2>/dev/null | md5sum | cut -d' ' -f1)" \
	"$(sum_range $RAM $((OFF - 8)) 8)"
check_eq "sector after the mapping untouched" \
	"$(dd if=$T/ram.img bs=512 skip=$((OFF + LEN)) count=8 2>/dev/null | md5sum | cut -d' ' -f1)" \
	"$(sum_range $RAM $((OFF + LEN)) 8)"
head -c 4096 /dev/urandom >$T/w4k
check_not "write past the end of dmxx-linear fails" write_range /dev/mapper/$OURS $LEN $T/w4k

# ------------------------------------------------------------------ fio verify
section "fio verify"
FIO="fio --output-format=normal --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1"
check "fio randwrite+verify crc32c via dmxx-linear (libaio, QD16, 4k..64k)" \
	$FIO --name=v1 --filename=/dev/mapper/$OURS --rw=randwrite --bsrange=4k-64k \
	--iodepth=16 --size=8M --offset=2M
# Same job, verify only, through the kernel's linear: same data at the same places.
check "kernel linear verifies what dmxx-linear wrote" \
	$FIO --name=v1 --filename=/dev/mapper/$KERN --rw=randwrite --bsrange=4k-64k \
	--iodepth=16 --size=8M --offset=2M --verify_only
check "fio seq write+verify via dmxx-linear (1M, QD4)" \
	$FIO --name=v2 --filename=/dev/mapper/$OURS --rw=write --bs=1M --iodepth=4 --size=4M --offset=11M

# ------------------------------------------------------------------ suspend / resume under I/O
section "suspend/resume"
# fio keeps writing and verifying (crc32c, every loop) while the device is suspended
# and resumed: suspend must drain in-flight I/O, hold new I/O, and lose nothing.
# --runtime ends the looping job cleanly (exit 0) after 3 s, longer than the cycles.
$FIO --name=sr --filename=/dev/mapper/$OURS --rw=randwrite --bs=4k --iodepth=16 \
	--size=4M --loops=100000 --runtime=3 >$T/fio_sr.log 2>&1 &
FIO_PID=$!
sleep 0.5
i=0
while [ $i -lt 3 ]; do
	check "suspend #$i with I/O in flight" dmsetup suspend $OURS
	state=$(dmsetup info -c --noheadings -o attr $OURS)
	case $state in *s*) pass "  state '$state' shows suspended" ;; *) fail "  state '$state' not suspended" ;; esac
	sleep 0.1
	check "resume #$i" dmsetup resume $OURS
	sleep 0.1
	i=$((i + 1))
done
check "fio was still running through the suspends" kill -0 $FIO_PID
if wait $FIO_PID; then
	pass "fio write+verify across suspend/resume"
else
	fail "fio write+verify across suspend/resume"
	sed 's/^/    /' $T/fio_sr.log
fi

# Reload a different offset while suspended: the new mapping takes effect on resume.
OFF2=$((OFF + 4096))
check "reload with offset $OFF2" dmsetup reload $OURS --table "0 $LEN dmxx-linear $RAM $OFF2"
check_eq "old table still live before resume" "0 $LEN dmxx-linear $MAJMIN $OFF" "$(dmsetup table $OURS)"
check "resume with new table" dmsetup resume $OURS
check_eq "new table live" "0 $LEN dmxx-linear $MAJMIN $OFF2" "$(dmsetup table $OURS)"
check_eq "new mapping reads raw at $OFF2" "$(sum_range $RAM $OFF2 4096)" "$(sum_range /dev/mapper/$OURS 0 4096)"

# ------------------------------------------------------------------ malformed tables
section "malformed tables"
# Every constructor error must reach dmesg as "dmxx-linear: <ti->error>".
bad() { expect_table_fail "$1" "$2" "dmxx-linear: $3"; }
bad "no arguments"            "0 8 dmxx-linear"                                  "Invalid argument count"
bad "one argument"            "0 8 dmxx-linear $RAM"                             "Invalid argument count"
bad "three arguments"         "0 8 dmxx-linear $RAM 0 0"                         "Invalid argument count"
bad "non-numeric offset"      "0 8 dmxx-linear $RAM abc"                         "Invalid device sector"
bad "trailing junk in offset" "0 8 dmxx-linear $RAM 12x"                         "Invalid device sector"
bad "negative offset"         "0 8 dmxx-linear $RAM -8"                          "Invalid device sector"
bad "overflowing offset"      "0 8 dmxx-linear $RAM 99999999999999999999999"     "Invalid device sector"
bad "missing device"          "0 8 dmxx-linear /dev/nonexistent 0"               "Device lookup failed"
bad "offset at end of device" "0 8 dmxx-linear $RAM $RAMSECT"                    "Device too small for offset and length"
bad "offset past end"         "0 8 dmxx-linear $RAM $((RAMSECT + 100))"          "Device too small for offset and length"
bad "offset 2^64-1"           "0 8 dmxx-linear $RAM 18446744073709551615"        "Device too small for offset and length"
bad "length past end"         "0 $((RAMSECT + 8)) dmxx-linear $RAM 0"            "Device too small for offset and length"
bad "offset+length past end"  "0 $LEN dmxx-linear $RAM $((RAMSECT - LEN + 8))"   "Device too small for offset and length"
check "exact fit (offset+length == device size) accepted" \
	dm_create dmxx_fit "0 $LEN dmxx-linear $RAM $((RAMSECT - LEN))"
dm_remove dmxx_fit 2>/dev/null

# The kernel's linear on the same lines: same ti->error strings where dm-linear has
# them. (Sizes are checked by dm core for linear, and its sscanf does not catch
# overflow, so those lines are only required to be rejected.)
kbad() { expect_table_fail "kernel linear, $1" "$2" "linear: $3"; }
kbad "one argument"       "0 8 linear $RAM"                   "Invalid argument count"
kbad "three arguments"    "0 8 linear $RAM 0 0"               "Invalid argument count"
kbad "non-numeric offset" "0 8 linear $RAM abc"               "Invalid device sector"
kbad "missing device"     "0 8 linear /dev/nonexistent 0"     "Device lookup failed"
expect_table_fail "kernel linear, length past end" "0 $((RAMSECT + 8)) linear $RAM 0" "too small for target"

# ------------------------------------------------------------------ teardown
section "teardown"
check_not "rmmod refused while a dmxx-linear device exists" rmmod dmxx_linear
check "remove $OURS" dm_remove $OURS
check "remove $KERN" dm_remove $KERN
check_not "$OURS gone" dm_exists $OURS
check "rmmod dmxx_linear" rmmod dmxx_linear
check_not "dmxx-linear unregistered" sh -c 'dmsetup targets | grep -q "^dmxx-linear "'
# Load again: module init after exit must work (no stale registration).
check "insmod dmxx_linear again" load_module dmxx_linear
check "rmmod dmxx_linear again" rmmod dmxx_linear

finish
