#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# dmxx-thin end to end, judged by thin-provisioning-tools.
#   tool_test.sh PATH/TO/dmxx-thin
# Each case prints "ok" or "FAIL"; the last line is "N passed, N failed".
# Exits 77 (CTest: skipped) only when thin_check is not installed.
set -u

TOOL=${1:?usage: tool_test.sh PATH/TO/dmxx-thin}
PATH=$PATH:/usr/sbin:/sbin
if ! command -v thin_check >/dev/null 2>&1; then
	echo "SKIP: thin_check (thin-provisioning-tools) is not installed; run scripts/setup"
	exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dmxx-thin-tool.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
IMG=$TMP/meta.img
passed=0
failed=0

pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# expect NAME WANTED_EXIT COMMAND...: run, compare the exit code.
expect() {
	local name=$1 want=$2
	shift 2
	timeout 60 "$@" >"$TMP/out" 2>&1
	local rc=$?
	if [ "$rc" -eq "$want" ]; then
		pass "$name"
	else
		fail "$name (exit $rc, wanted $want)"
		sed 's/^/     /' "$TMP/out"
	fi
}

check_image() {
	if thin_check "$IMG" >"$TMP/check" 2>&1; then
		pass "$1: thin_check"
	else
		fail "$1: thin_check"
		sed 's/^/     /' "$TMP/check"
	fi
}

# dump_equal NAME: our dump and thin_dump agree byte for byte.
dump_equal() {
	"$TOOL" dump "$IMG" >"$TMP/ours.xml" 2>"$TMP/err" && thin_dump "$IMG" >"$TMP/theirs.xml" 2>>"$TMP/err"
	if [ $? -eq 0 ] && cmp -s "$TMP/ours.xml" "$TMP/theirs.xml"; then
		pass "$1: dump == thin_dump"
	else
		fail "$1: dump == thin_dump"
		diff "$TMP/ours.xml" "$TMP/theirs.xml" | head -20 | sed 's/^/     /'
		sed 's/^/     /' "$TMP/err"
	fi
}

expect "usage without arguments" 2 "$TOOL"
expect "help" 0 "$TOOL" --help
expect "unknown command" 2 "$TOOL" frobnicate "$IMG"
expect "bad block size" 2 "$TOOL" format "$IMG" --data-block-size 100 --nr-data-blocks 10
expect "format" 0 "$TOOL" format "$IMG" --data-block-size 128 --nr-data-blocks 20000 --metadata-blocks 2048
check_image "format"
expect "create-thin" 0 "$TOOL" create-thin "$IMG" 1
expect "create-thin twice" 1 "$TOOL" create-thin "$IMG" 1
expect "device id too large" 2 "$TOOL" create-thin "$IMG" 16777216
expect "map a run" 0 "$TOOL" map "$IMG" 1 0 500
expect "map scattered" 0 "$TOOL" map "$IMG" 1 1000 3
expect "map to an explicit block" 0 "$TOOL" map "$IMG" 1 2000 2 --data 19000
expect "map to a missing device" 1 "$TOOL" map "$IMG" 9 0
expect "create-snap" 0 "$TOOL" create-snap "$IMG" 2 1
expect "snap of snap" 0 "$TOOL" create-snap "$IMG" 3 2
expect "snap of a missing origin" 1 "$TOOL" create-snap "$IMG" 4 77
expect "break sharing" 0 "$TOOL" map "$IMG" 2 10 20
expect "unmap" 0 "$TOOL" unmap "$IMG" 1 100 50
expect "set-transaction-id" 0 "$TOOL" set-transaction-id "$IMG" 0 5
expect "stale transaction id" 1 "$TOOL" set-transaction-id "$IMG" 0 6
check_image "after changes"
dump_equal "after changes"

# One session: a failing line keeps only what was committed before it.
printf 'create-thin 10\nmap 10 0 5\ncommit\ncreate-thin 11\nmap 11 0 5\ncreate-thin 10\n' >"$TMP/script"
expect "exec stops at the failing line" 1 "$TOOL" exec "$IMG" "$TMP/script"
"$TOOL" info "$IMG" >"$TMP/info" 2>&1
if grep -q '^device 10 mapped 5' "$TMP/info" && ! grep -q '^device 11 ' "$TMP/info"; then
	pass "exec kept the committed part only"
else
	fail "exec kept the committed part only"
	sed 's/^/     /' "$TMP/info"
fi
printf '# comment\ndelete 10\nmap 1 5000 100\nabort\nmap 3 7 1\n' | "$TOOL" exec "$IMG" >"$TMP/out" 2>&1
if [ $? -eq 0 ] && grep -q '^device 10 mapped 5' <("$TOOL" info "$IMG"); then
	pass "exec abort forgets, the end commits"
else
	fail "exec abort forgets, the end commits"
fi
check_image "after exec"
dump_equal "after exec"

expect "metadata snapshot" 0 "$TOOL" reserve-metadata-snap "$IMG"
expect "second metadata snapshot" 1 "$TOOL" reserve-metadata-snap "$IMG"
expect "delete under a snapshot" 0 "$TOOL" delete "$IMG" 1
check_image "with a held root"
dump_equal "with a held root"
thin_dump -m "$IMG" >"$TMP/held.xml" 2>&1 && grep -q 'dev_id="1"' "$TMP/held.xml" &&
	pass "thin_dump -m sees the deleted device" || fail "thin_dump -m sees the deleted device"
expect "release" 0 "$TOOL" release-metadata-snap "$IMG"
expect "resize" 0 "$TOOL" resize "$IMG" --nr-data-blocks 50000 --metadata-blocks 4096
expect "shrink refused" 1 "$TOOL" resize "$IMG" --nr-data-blocks 10
check_image "after resize"
dump_equal "after resize"

# Refusals write nothing: a mismatched block size, then a corrupt superblock.
sum_before=$(md5sum <"$IMG")
expect "block size mismatch" 3 "$TOOL" create-thin "$IMG" 40 --data-block-size 256
printf '\xa5' | dd of="$IMG" bs=1 seek=3000 conv=notrunc status=none
sum_corrupt=$(md5sum <"$IMG")
expect "corrupt superblock" 3 "$TOOL" create-thin "$IMG" 40
expect "corrupt superblock dump" 3 "$TOOL" dump "$IMG"
[ "$(md5sum <"$IMG")" = "$sum_corrupt" ] && [ "$sum_before" != "$sum_corrupt" ] &&
	pass "refused image unchanged" || fail "refused image unchanged"
expect "not an image" 2 "$TOOL" info "$TMP/does-not-exist"
truncate -s 1M "$TMP/zero.img"
expect "unformatted" 3 "$TOOL" info "$TMP/zero.img"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
