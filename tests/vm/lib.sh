# SPDX-License-Identifier: GPL-2.0
#
# tests/vm/lib.sh: helpers for guest test scripts run by scripts/vm.
# shellcheck shell=dash
# Sourced by busybox ash (no bash): POSIX sh plus `local`.
#
#   . "$(dirname "$0")/lib.sh"
#   load_module dmxx_linear            # dependencies first, from $DMXX_MODDEPS
#   make_brd 2 65536                   # /dev/ram0 /dev/ram1, 64 MiB each
#   check "what" some command           # PASS/FAIL line, counted
#   expect_table_fail "what" "<table line>" "dmxx-linear: <ti->error text>"
#   finish                             # "N passed, N failed"; exits 1 on any failure
#
# Nothing here prints kernel-splat words (WARNING:, BUG: ...): scripts/vm fails any
# run whose console contains them.

DMXX_PASSED=0
DMXX_FAILED=0
DMXX_MARK=0

log() { echo "[test] $*"; }

# section NAME: a header with the guest uptime, to see where the time goes.
section() { echo "== $* (t=$(cut -d' ' -f1 /proc/uptime)s)"; }

pass() {
	DMXX_PASSED=$((DMXX_PASSED + 1))
	echo "PASS: $*"
}

fail() {
	DMXX_FAILED=$((DMXX_FAILED + 1))
	echo "FAIL: $*"
}

# check DESC CMD [ARGS...]: run CMD, PASS if it exits 0. Output is shown only on failure.
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$desc"
	else
		fail "$desc (exit $?: $*)"
		[ -n "$out" ] && echo "$out" | sed 's/^/    /'
	fi
}

# check_not DESC CMD [ARGS...]: PASS if CMD fails.
check_not() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		fail "$desc (unexpectedly succeeded: $*)"
		[ -n "$out" ] && echo "$out" | sed 's/^/    /'
	else
		pass "$desc"
	fi
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1 (expected '$2', got '$3')"
	fi
}

# finish: summary line, exit status for scripts/vm.
finish() {
	echo "$DMXX_PASSED passed, $DMXX_FAILED failed"
	[ "$DMXX_FAILED" -eq 0 ] && [ "$DMXX_PASSED" -gt 0 ]
	exit $?
}

# die MSG: a setup step failed; later checks are meaningless.
die() {
	fail "$*"
	finish
}

# ------------------------------------------------------------------ modules

# Look a module up in the load-order files scripts/vm writes ("name path dep,dep").
_mod_line() {
	local n
	n=$(echo "$1" | tr '-' '_')
	# shellcheck disable=SC2086 # DMXX_MODDEPS is a list of files
	cat $DMXX_MODDEPS 2>/dev/null | awk -v n="$n" '$1 == n { print; exit }'
}

module_loaded() {
	[ -d "/sys/module/$(echo "$1" | tr '-' '_')" ]
}

# load_module NAME [PARAM=VALUE...]: insmod NAME after its dependencies (recursively).
load_module() {
	local name=$1 line path deps d
	shift
	module_loaded "$name" && return 0
	line=$(_mod_line "$name")
	[ -n "$line" ] || { echo "load_module: $name not in the initramfs" >&2; return 1; }
	path=$(echo "$line" | awk '{ print $2 }')
	deps=$(echo "$line" | awk '{ print $3 }' | tr ',' ' ')
	for d in $deps; do
		load_module "$d" || return 1
	done
	insmod "$path" "$@"
}

# unload_module NAME: rmmod if loaded.
unload_module() {
	module_loaded "$1" || return 0
	rmmod "$(echo "$1" | tr '-' '_')"
}

# make_brd COUNT SIZE_KB: brd ramdisks /dev/ram0..COUNT-1 (brd takes its sizes only at
# load time, so any earlier brd is removed first).
make_brd() {
	unload_module brd || return 1
	load_module brd "rd_nr=$1" "rd_size=$2" || return 1
	local i=0
	while [ "$i" -lt "$1" ]; do
		[ -b "/dev/ram$i" ] || { echo "make_brd: /dev/ram$i missing" >&2; return 1; }
		i=$((i + 1))
	done
}

# zero_fill DEV: write every sector once. Unwritten brd pages read back as zeroes
# without touching memory, which makes read benchmarks meaningless.
zero_fill() {
	dd if=/dev/zero of="$1" bs=1M oflag=direct count=$(($(sectors "$1") / 2048)) 2>/dev/null
}

# sectors DEV: size in 512-byte sectors.
sectors() {
	blockdev --getsz "$1"
}

# ------------------------------------------------------------------ dmesg

# dmesg_mark: put a unique line into the kernel log and set DMXX_LAST_MARK to its text.
# Not meant for $(...): the counter must live in the calling shell. Logged at debug
# level (<7>) so it stays off the console.
dmesg_mark() {
	DMXX_MARK=$((DMXX_MARK + 1))
	DMXX_LAST_MARK="dmxx-test-mark-$$-$DMXX_MARK-$(cut -d' ' -f1 /proc/uptime)"
	echo "<7>$DMXX_LAST_MARK" >/dev/kmsg
}

# dmesg_since MARK: kernel log lines after MARK.
dmesg_since() {
	dmesg | awk -v m="$1" 'found { print } index($0, m) { found = 1 }'
}

# ------------------------------------------------------------------ device-mapper

# dm_create NAME TABLE_LINE
dm_create() {
	dmsetup create "$1" --table "$2"
}

dm_remove() {
	dmsetup remove "$1"
}

dm_exists() {
	dmsetup info "$1" >/dev/null 2>&1
}

# expect_table_fail DESC TABLE_LINE DMESG_TEXT:
# `dmsetup create` must fail, the kernel log written during the attempt must contain
# DMESG_TEXT (fixed string, e.g. "dmxx-linear: Invalid argument count", which is how
# dm prints ti->error), and no device may be left behind.
expect_table_fail() {
	local desc=$1 table=$2 expect=$3 mark name=dmxx_expect_fail out got
	dmesg_mark
	mark=$DMXX_LAST_MARK
	if out=$(dm_create "$name" "$table" 2>&1); then
		fail "$desc: table '$table' was accepted"
		dm_remove "$name" >/dev/null 2>&1
		return 0
	fi
	if dm_exists "$name"; then
		fail "$desc: device left behind after failed create"
		dm_remove "$name" >/dev/null 2>&1
		return 0
	fi
	got=$(dmesg_since "$mark" | grep -F -- "$expect" | head -n 1)
	if [ -n "$got" ]; then
		pass "$desc: rejected with '$expect'"
	else
		fail "$desc: table '$table' rejected, but no '$expect' in dmesg"
		echo "    dmsetup: $out"
		dmesg_since "$mark" | sed 's/^/    dmesg: /'
	fi
}

# ------------------------------------------------------------------ data

# sum_range DEV START_SECTOR NR_SECTORS: checksum of that range, read with O_DIRECT.
# md5, not sha256: several times faster under TCG, and only mis-mapping is at stake.
sum_range() {
	dd if="$1" bs=65536 iflag=direct,skip_bytes,count_bytes \
		skip=$(($2 * 512)) count=$(($3 * 512)) 2>/dev/null | md5sum | cut -d' ' -f1
}

# write_range DEV START_SECTOR FILE: write FILE at START_SECTOR with O_DIRECT.
write_range() {
	dd if="$3" of="$1" bs=65536 oflag=direct,seek_bytes seek=$(($2 * 512)) 2>/dev/null
}

# file_sum FILE
file_sum() {
	md5sum "$1" | cut -d' ' -f1
}

# ------------------------------------------------------------------ kernel targets vs ours

# use_impl kernel|ours KERNEL_MODULE OUR_MODULE: make exactly one implementation of a
# target family loaded (they register the same target names), e.g.
#   use_impl kernel dm_snapshot dmxx_snapshot
use_impl() {
	case $1 in
	kernel) unload_module "$3" && load_module "$2" ;;
	ours) unload_module "$2" && load_module "$3" ;;
	*) echo "use_impl: kernel or ours, not '$1'" >&2; return 1 ;;
	esac
}

# table_error TABLE_LINE: try `dmsetup create` and print the error the kernel logged
# for it ("<target>: <ti->error>"), or "ACCEPTED" if the table loaded (the device is
# removed again), or "NO-ERROR-LOGGED". Comparing this between the kernel's target and
# ours checks that we reject the same lines with the same words.
table_error() {
	local mark name=dmxx_table_error
	dmesg_mark
	mark=$DMXX_LAST_MARK
	if dm_create "$name" "$1" >/dev/null 2>&1; then
		dm_remove "$name" >/dev/null 2>&1
		echo ACCEPTED
		return 0
	fi
	dm_exists "$name" && { dm_remove "$name" >/dev/null 2>&1; echo "LEFT-BEHIND"; return 0; }
	dmesg_since "$mark" | grep 'device-mapper: table: ' | grep -v 'error adding target to table' |
		head -n 1 | sed 's/.*device-mapper: table: [0-9]*:[0-9]*: //' | grep . || echo NO-ERROR-LOGGED
}

# majmin DEV: "major:minor", as tables print devices.
majmin() {
	printf '%d:%d' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")"
}

# sum_range_strict DEV START_SECTOR NR_SECTORS: read that range with O_DIRECT; the exit
# status is dd's (nonzero on an I/O error), unlike sum_range's.
sum_range_strict() {
	dd if="$1" of=/dev/null bs=4096 iflag=direct,skip_bytes,count_bytes \
		skip=$(($2 * 512)) count=$(($3 * 512)) 2>/dev/null
}
