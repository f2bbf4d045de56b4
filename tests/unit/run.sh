#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Configure, build and run the unit tests in three variants:
#   plain  build/unit-plain   no sanitizer
#   asan   build/unit-asan    ASan + UBSan (-fno-sanitize-recover=all, leaks checked)
#   tsan   build/unit-tsan    TSan
# Exits nonzero if any variant fails to build or any test fails.
#
#   tests/unit/run.sh                 all three
#   tests/unit/run.sh plain tsan      a subset
#   BUILD=/tmp/b JOBS=4 tests/unit/run.sh
#
# TSan cannot map its shadow memory on kernels with large mmap randomisation
# ("unexpected memory mapping"); then TSan binaries run under
# `setarch <arch> -R` (ASLR off). This is detected with a probe binary.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
GENERATOR=
command -v ninja >/dev/null 2>&1 && GENERATOR="-G Ninja"
VARIANTS=${*:-plain asan tsan}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# Prints the launcher TSan binaries need here (empty if none); fails if TSan cannot run at all.
tsan_launcher() {
	probe_dir=$(mktemp -d)
	cat >"$probe_dir/p.cpp" <<'CPP'
#include <thread>
int main() { int x = 0; std::thread t([&] { x = 1; }); t.join(); return x - 1; }
CPP
	if ! ${CXX:-c++} -fsanitize=thread -pthread "$probe_dir/p.cpp" -o "$probe_dir/p" 2>"$probe_dir/err"; then
		cat "$probe_dir/err" >&2
		rm -rf "$probe_dir"
		return 1
	fi
	if "$probe_dir/p" >/dev/null 2>&1; then
		rm -rf "$probe_dir"
		return 0
	fi
	arch=$(uname -m)
	if setarch "$arch" -R "$probe_dir/p" >/dev/null 2>&1; then
		rm -rf "$probe_dir"
		echo "setarch;$arch;-R"
		return 0
	fi
	"$probe_dir/p" >&2
	rm -rf "$probe_dir"
	return 1
}

run_variant() {
	variant=$1
	case $variant in
	plain) sanitize=none ;;
	asan) sanitize=address ;;
	tsan) sanitize=thread ;;
	*) echo "run.sh: unknown variant '$variant' (plain, asan, tsan)" >&2; return 2 ;;
	esac
	launcher=
	if [ "$variant" = tsan ]; then
		if ! launcher=$(tsan_launcher); then
			echo "run.sh: TSan binaries cannot run on this machine" >&2
			return 1
		fi
		[ -n "$launcher" ] && echo "== tsan: running test binaries under '$launcher'"
	fi
	dir=$BUILD/unit-$variant
	mkdir -p "$BUILD"
	echo "== $variant: configure ($dir)"
	# shellcheck disable=SC2086
	cmake -S "$ROOT" -B "$dir" $GENERATOR -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DDMXX_SANITIZE=$sanitize "-DDMXX_TEST_LAUNCHER=$launcher" >"$dir.configure.log" 2>&1 ||
		{ cat "$dir.configure.log"; return 1; }
	echo "== $variant: build"
	cmake --build "$dir" -j "$JOBS" || return 1
	echo "== $variant: test"
	ctest --test-dir "$dir" -j "$JOBS" --output-on-failure --timeout 300
}

failed=
for v in $VARIANTS; do
	if ! run_variant "$v"; then
		failed="$failed $v"
	fi
done

if [ -n "$failed" ]; then
	echo "== unit tests FAILED:$failed"
	exit 1
fi
echo "== unit tests passed: $VARIANTS"
