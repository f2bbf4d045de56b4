#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest test (run by scripts/vm): bio sets with rescuers, in the kernel.
#
# dmxx-clone (split) stacked over dmxx-clone (split) over brd: two targets, two
# BioSets. With the reserve forced tiny (bioset_reserve=1, bioset_force_reserve=1)
# every bio that splits into two pieces finds its set's reserve empty on the
# second allocation while the first piece still waits on current->bio_list: the
# set must punt its bios to its rescuer, or the submitter blocks forever (seed
# 002's deadlock; the guest's 15 s hung-task detector and scripts/vm's timeout
# catch that). Then a control run with the normal reserve, table syntax,
# malformed tables.
#
#   scripts/vm tests/vm/bioset_rescue.sh
. "$(dirname "$0")/lib.sh"

RAM=/dev/ram0
RAM_KB=49152            # 48 MiB = 98304 sectors
OFF1=2056               # bottom over brd: nonzero, not MiB-aligned
BLEN=65536              # bottom maps 32 MiB
OFF2=1032               # top over bottom
TLEN=32768              # top maps 16 MiB: fio's 8 jobs x 2 MiB
BSPLIT=8                # bottom: 4 KiB pieces
TSPLIT=16               # top: 8 KiB pieces (so the bottom splits them again)
BOT=dmxx_bot
TOP=dmxx_top
P=/sys/module/dmxx_linear/parameters
T=/tmp

FIO="fio --output-format=normal --ioengine=libaio --direct=1"

# stat_field DEV KEY: the value of KEY=<n> in DEV's INFO status line.
stat_field() {
	dmsetup status "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

# set_params RESERVE FORCE: module parameters for the next table load.
set_params() {
	echo "$1" >$P/bioset_reserve && echo "$2" >$P/bioset_force_reserve
}

# make_stack: bottom over brd, top over bottom (tables read the parameters now).
make_stack() {
	dm_create $BOT "0 $BLEN dmxx-clone $RAM $OFF1 2 split_sectors $BSPLIT" || return 1
	dm_create $TOP "0 $TLEN dmxx-clone /dev/mapper/$BOT $OFF2 2 split_sectors $TSPLIT"
}

remove_stack() {
	dm_remove $TOP && dm_remove $BOT
}

# stress NAME SECONDS: 8 jobs x QD32 x 64 KiB on the top device, each job on its own
# 2 MiB: randwrite with crc32c verify (every loop writes, then reads back and checks;
# loops until SECONDS), then SECONDS/3 of randread.
stress() {
	local name=$1 secs=$2 out=$T/fio_$1.log
	if $FIO --name="$name" --filename=/dev/mapper/$TOP --rw=randwrite --bs=64k \
		--iodepth=32 --numjobs=8 --size=2M --offset_increment=2M \
		--verify=crc32c --verify_fatal=1 --loops=100000 --runtime="$secs" >"$out" 2>&1; then
		pass "$name: fio randwrite + crc32c verify, 8 jobs x QD32 x 64k, ${secs}s"
	else
		fail "$name: fio randwrite + crc32c verify"
		tail -n 30 "$out" | sed 's/^/    /'
	fi
	if $FIO --name="${name}_rd" --filename=/dev/mapper/$TOP --rw=randread --bs=64k \
		--iodepth=32 --numjobs=8 --size=2M --offset_increment=2M \
		--time_based --runtime=$((secs / 3)) >"$out" 2>&1; then
		pass "$name: fio randread, 8 jobs x QD32 x 64k, $((secs / 3))s"
	else
		fail "$name: fio randread"
		tail -n 30 "$out" | sed 's/^/    /'
	fi
}

# same_data NAME: the top device, the bottom at OFF2 and the raw ramdisk at OFF1+OFF2
# hold the same bytes.
same_data() {
	local top
	top=$(sum_range /dev/mapper/$TOP 0 $TLEN)
	check_eq "$1: top == raw at $OFF1+$OFF2" "$(sum_range $RAM $((OFF1 + OFF2)) $TLEN)" "$top"
	check_eq "$1: top == bottom at $OFF2" "$(sum_range /dev/mapper/$BOT $OFF2 $TLEN)" "$top"
}

# ------------------------------------------------------------------ setup
section "setup"
load_module dm_mod || die "insmod dm-mod"
load_module dmxx_linear || die "insmod dmxx_linear"
check "dmxx-clone is registered" sh -c 'dmsetup targets | grep -q "^dmxx-clone "'
check "dmxx-linear is still registered" sh -c 'dmsetup targets | grep -q "^dmxx-linear "'
check_eq "bioset_reserve defaults to 16" 16 "$(cat $P/bioset_reserve)"
check_eq "bioset_force_reserve defaults to N" N "$(cat $P/bioset_force_reserve)"
make_brd 1 "$RAM_KB" || die "brd ramdisk"
RAMSECT=$(sectors $RAM)
MAJMIN=$(printf '%d:%d' "0x$(stat -c %t "$RAM")" "0x$(stat -c %T "$RAM")")
head -c $((RAMSECT * 512)) /dev/urandom >$T/ram.img
write_range $RAM 0 $T/ram.img || die "fill ramdisk"
rm -f $T/ram.img

# ------------------------------------------------------------------ table and status
section "table and status"
set_params 16 0 || die "set module parameters"
check "create unsplit dmxx-clone" dm_create dmxx_one "0 $TLEN dmxx-clone $RAM $OFF1"
check_eq "unsplit table" "0 $TLEN dmxx-clone $MAJMIN $OFF1" "$(dmsetup table dmxx_one)"
check_eq "fresh status" "0 $TLEN dmxx-clone allocs=0 rescues=0 rescued_bios=0 pool_waits=0 reserve=16 forced=0 rescuer=1" \
	"$(dmsetup status dmxx_one)"
check_eq "unsplit dmxx-clone reads raw at $OFF1" "$(sum_range $RAM $OFF1 $TLEN)" "$(sum_range /dev/mapper/dmxx_one 0 $TLEN)"
A=$(stat_field dmxx_one allocs)
check "reads allocated clones (allocs=$A)" test "$A" -gt 0
check "create dmxx-clone with '0' features" dm_create dmxx_zero "0 $TLEN dmxx-clone $RAM $OFF1 0"
check_eq "'0' features reprints without them" "0 $TLEN dmxx-clone $MAJMIN $OFF1" "$(dmsetup table dmxx_zero)"
dm_remove dmxx_zero
dm_remove dmxx_one

check "create stack (normal reserve)" make_stack
check_eq "bottom table" "0 $BLEN dmxx-clone $MAJMIN $OFF1 2 split_sectors $BSPLIT" "$(dmsetup table $BOT)"
check "bottom table output loads again" dm_create ${BOT}_again "$(dmsetup table $BOT)"
check_eq "reloaded table identical" "$(dmsetup table $BOT)" "$(dmsetup table ${BOT}_again)"
dm_remove ${BOT}_again

# Writes through the stack land at OFF1+OFF2 of the ramdisk; raw writes read back.
head -c 262144 /dev/urandom >$T/w1
head -c 262144 /dev/urandom >$T/w2
W1=$(file_sum $T/w1)
W2=$(file_sum $T/w2)
for at in 0 12345 $((TLEN - 512)); do
	check "write 256 KiB via the stack at $at" write_range /dev/mapper/$TOP $at $T/w1
	check_eq "  raw at $OFF1+$OFF2+$at holds it" "$W1" "$(sum_range $RAM $((OFF1 + OFF2 + at)) 512)"
	check "write 256 KiB to raw at $OFF1+$OFF2+$at" write_range $RAM $((OFF1 + OFF2 + at)) $T/w2
	check_eq "  the stack reads it at $at" "$W2" "$(sum_range /dev/mapper/$TOP $at 512)"
done
head -c 4096 /dev/urandom >$T/w4k
check_not "write past the end of the top fails" write_range /dev/mapper/$TOP $TLEN $T/w4k
remove_stack || die "remove stack"

# ------------------------------------------------------------------ forced tiny reserve
section "forced reserve of 1"
set_params 1 1 || die "set module parameters"
check "create stack (reserve 1, forced)" make_stack
check_eq "top status shows reserve=1 forced=1" "1 1" "$(stat_field $TOP reserve) $(stat_field $TOP forced)"
stress forced 20
same_data forced
F_TOP=$(dmsetup status $TOP | cut -d' ' -f4-)
F_BOT=$(dmsetup status $BOT | cut -d' ' -f4-)
log "forced top:    $F_TOP"
log "forced bottom: $F_BOT"
F_TR=$(stat_field $TOP rescues)
F_BR=$(stat_field $BOT rescues)
check "forced: top rescuer ran (rescues=$F_TR)" test "$F_TR" -gt 0
check "forced: top rescued bios (rescued_bios=$(stat_field $TOP rescued_bios))" test "$(stat_field $TOP rescued_bios)" -gt 0
check "forced: bottom rescuer ran (rescues=$F_BR)" test "$F_BR" -gt 0
check "forced: allocations waited for frees (top pool_waits=$(stat_field $TOP pool_waits))" \
	test "$(stat_field $TOP pool_waits)" -gt 0
check "remove forced stack" remove_stack

# ------------------------------------------------------------------ control
section "control: normal reserve"
set_params 16 0 || die "set module parameters"
check "create stack (reserve 16)" make_stack
stress control 9
same_data control
C_TOP=$(dmsetup status $TOP | cut -d' ' -f4-)
C_BOT=$(dmsetup status $BOT | cut -d' ' -f4-)
log "control top:    $C_TOP"
log "control bottom: $C_BOT"
C_TR=$(stat_field $TOP rescues)
check "control allocated clones (allocs=$(stat_field $TOP allocs))" test "$(stat_field $TOP allocs)" -gt 0
check "counters differ: forced top rescues $F_TR > control $C_TR" test "$F_TR" -gt "$C_TR"
check "remove control stack" remove_stack

# ------------------------------------------------------------------ malformed tables
section "malformed tables"
bad() { expect_table_fail "$1" "$2" "dmxx-clone: $3"; }
bad "no arguments"             "0 8 dmxx-clone"                                  "Invalid argument count"
bad "one argument"             "0 8 dmxx-clone $RAM"                             "Invalid argument count"
bad "six arguments"            "0 8 dmxx-clone $RAM 0 2 split_sectors 8 x"       "Invalid argument count"
bad "junk after features"      "0 8 dmxx-clone $RAM 0 0 x"                       "Invalid argument count"
bad "non-numeric offset"       "0 8 dmxx-clone $RAM abc"                         "Invalid device sector"
bad "negative offset"          "0 8 dmxx-clone $RAM -8"                          "Invalid device sector"
bad "non-numeric #features"    "0 8 dmxx-clone $RAM 0 x"                         "Invalid number of feature arguments"
bad "#features too large"      "0 8 dmxx-clone $RAM 0 3 split_sectors 8"         "Invalid number of feature arguments"
bad "#features past the end"   "0 8 dmxx-clone $RAM 0 2 split_sectors"           "Invalid number of feature arguments"
bad "unknown feature"          "0 8 dmxx-clone $RAM 0 2 frobnicate 8"            "Unknown feature argument"
bad "split_sectors, no value"  "0 8 dmxx-clone $RAM 0 1 split_sectors"           "Missing split_sectors value"
bad "split_sectors 0"          "0 8 dmxx-clone $RAM 0 2 split_sectors 0"         "Invalid split_sectors"
bad "split_sectors not numeric" "0 8 dmxx-clone $RAM 0 2 split_sectors 8k"       "Invalid split_sectors"
bad "split_sectors overflow"   "0 8 dmxx-clone $RAM 0 2 split_sectors 4294967296" "Invalid split_sectors"
bad "missing device"           "0 8 dmxx-clone /dev/nonexistent 0"               "Device lookup failed"
bad "offset at end of device"  "0 8 dmxx-clone $RAM $RAMSECT"                    "Device too small for offset and length"
bad "length past end"          "0 $((RAMSECT + 8)) dmxx-clone $RAM 0"            "Device too small for offset and length"
if load_module null_blk nr_devices=1 bs=4096 gb=1 && [ -b /dev/nullb0 ]; then
	bad "split not a multiple of 4 KiB blocks" "0 8 dmxx-clone /dev/nullb0 0 2 split_sectors 4" \
		"split_sectors not a multiple of the logical block size"
	check "split of 8 sectors on 4 KiB blocks accepted" \
		dm_create dmxx_nb "0 8 dmxx-clone /dev/nullb0 0 2 split_sectors 8"
	dm_remove dmxx_nb 2>/dev/null
	unload_module null_blk
else
	fail "null_blk with 4 KiB blocks"
fi
set_params 0 0
bad "bioset_reserve=0"         "0 8 dmxx-clone $RAM 0"                           "Invalid bioset_reserve module parameter"
set_params 65537 0
bad "bioset_reserve=65537"     "0 8 dmxx-clone $RAM 0"                           "Invalid bioset_reserve module parameter"
set_params 16 0

# ------------------------------------------------------------------ teardown
section "teardown"
check_not "no dmxx-clone device left" sh -c 'dmsetup table | grep -q dmxx-clone'
check "rmmod dmxx_linear" rmmod dmxx_linear
check_not "dmxx-clone unregistered" sh -c 'dmsetup targets | grep -q "^dmxx-clone "'
log "forced  top: $F_TOP | bottom: $F_BOT"
log "control top: $C_TOP | bottom: $C_BOT"

finish
