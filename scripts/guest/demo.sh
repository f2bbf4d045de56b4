#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of `make demo`: a dmxx-linear device over a ramdisk, data written
# through it and verified on the raw device, then a short fio run with
# verification. Prints what it does, so a new user sees the module at work.
. /test/lib.sh

section "load modules"
load_module dm-mod || die "cannot load dm-mod"
load_module dmxx_linear || die "cannot load dmxx_linear.ko"
make_brd 1 65536 || die "cannot create ramdisk"
log "loaded: $(cut -d' ' -f1 /proc/modules | grep -E '^(dm_mod|dmxx_linear|brd)$' | tr '\n' ' ')"

section "create a dmxx-linear device (offset 2048 sectors on /dev/ram0)"
len=$(( $(sectors /dev/ram0) - 2048 ))
dm_create demo "0 $len dmxx-linear /dev/ram0 2048" || die "dmsetup create failed"
log "dmsetup table demo:  $(dmsetup table demo)"
log "dmsetup status demo: $(dmsetup status demo)"

section "write 16 MiB of random data through dm, read it back from the raw device"
head -c $((16 << 20)) /dev/urandom >/tmp/data
write_range /dev/mapper/demo 0 /tmp/data
want=$(file_sum /tmp/data)
via_dm=$(sum_range /dev/mapper/demo 0 32768)
via_raw=$(sum_range /dev/ram0 2048 32768)
log "md5 written:          $want"
log "md5 read through dm:  $via_dm"
log "md5 read from ram0 at sector 2048: $via_raw"
check "data through dm matches" [ "$via_dm" = "$want" ]
check "data on the raw device at the offset matches" [ "$via_raw" = "$want" ]

section "fio: 4k random writes with crc32c verification, 5 seconds"
fio --name=demo --filename=/dev/mapper/demo --direct=1 --ioengine=libaio \
	--rw=randwrite --bs=4k --iodepth=16 --size=32M --time_based --runtime=5 \
	--verify=crc32c --verify_fatal=1 --group_reporting --output-format=normal >/tmp/fio.out 2>&1
rc=$?
grep -E "write: IOPS|err=" /tmp/fio.out | sed 's/^/    /'
check "fio verify=crc32c passed" [ "$rc" -eq 0 ]

section "suspend, resume, remove, rmmod"
check "suspend" dmsetup suspend demo
check "resume" dmsetup resume demo
check "remove" dm_remove demo
check "rmmod dmxx_linear" unload_module dmxx_linear
finish
