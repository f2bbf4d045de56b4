#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prove that every check of the C++ Kbuild rule fails on a deliberately bad
# object, and that a good object passes them all.
#
#   tests/build/test_object_checks.sh [CASE...]
#
# 1. Unit tests of scripts/check-cxx-object on small objects built with
#    plain g++ (no kernel needed).
# 2. A private copy of the source tree (git ls-files, working-tree contents)
#    in a temporary directory; never builds in the checkout itself, which
#    others may be building in. The unmodified tree must build first.
# 3. Each tests/build/bad/<name>.cpp is built as module dmxx_bad.ko via the
#    Kbuild hook DMXX_BAD_OBJECT=<name>. A case describes itself in comments:
#       // flags: ...       DMXX_EXTRA_CXXFLAGS for the case
#       // expect: ERE      must match the build output (one line per regex,
#                           all required); the build must fail and the bad
#                           object must be deleted
#       // expect-pass      the build must succeed and produce dmxx_bad.ko
#                           with no check-cxx-object/objtool output
#    Cases without flags build the `modules` target (the whole module chain,
#    modpost included). DMXX_EXTRA_CXXFLAGS applies to every C++ object in the
#    tree, so cases with flags build only their own object
#    (`tests/build/bad/<name>.o`, the same C++ rule); otherwise the project's
#    own objects would be rebuilt with the bad flags and fail first.
#
# Environment: KVER / KDIR (default: newest */lib/modules/*amd64),
# KEEP_WORK=1 keeps the temporary tree, V=1 shows every build log.
# Ends with "N passed, M failed"; exits nonzero if any case misbehaved.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
KVER=${KVER:-$(ls -1 /lib/modules 2>/dev/null | grep -E 'amd64$' | sort -V | tail -n 1)}
KDIR=${KDIR:-/lib/modules/$KVER/build}
CXX_UNIT=${CXX_UNIT:-g++}
V=${V:-0}

passed=0
failed=0
only=("$@")

work=$(mktemp -d "${TMPDIR:-/tmp}/dmxx-objchecks.XXXXXX") || exit 1
cleanup() { if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

selected() {
	[ ${#only[@]} -eq 0 ] && return 0
	local c
	for c in "${only[@]}"; do [ "$c" = "$1" ] && return 0; done
	return 1
}

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
	local name=$1 log=$2; shift 2
	echo "FAIL $name: $*"
	if [ -n "$log" ] && [ -f "$log" ]; then
		sed -n '1,40p' "$log" | sed 's/^/    | /'
	fi
	failed=$((failed + 1))
}

# ---- 1. scripts/check-cxx-object on plain g++ objects ------------------------------

checker=$root/scripts/check-cxx-object
unit_dir=$work/unit
mkdir -p "$unit_dir"
# Close to the kernel's C++ flags (no kernel headers needed); tests add theirs.
unit_flags="-O2 -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit
	-fno-asynchronous-unwind-tables -fno-unwind-tables -mno-red-zone -fno-pie"

# unit NAME EXPECT [EXTRA_FLAGS] < source
#   EXPECT: "pass" (checker exits 0, prints nothing) or an ERE the checker's
#   output must match, with exit status 1.
unit() {
	local name=unit/$1 expect=$2 flags=${3:-}
	local src=$unit_dir/$1.cpp obj=$unit_dir/$1.o log=$unit_dir/$1.log
	cat >"$src"
	selected "$name" || return 0
	# shellcheck disable=SC2086
	if ! $CXX_UNIT $unit_flags $flags -c -o "$obj" "$src" >"$log" 2>&1; then
		fail "$name" "$log" "test object did not compile"
		return
	fi
	local out rc
	out=$("$checker" "$obj" 2>&1); rc=$?
	printf '%s\n' "$out" >>"$log"
	if [ "$expect" = pass ]; then
		if [ $rc -eq 0 ] && [ -z "$out" ]; then pass "$name"; else fail "$name" "$log" "expected a clean pass, got rc=$rc"; fi
	elif [ $rc -ne 1 ]; then
		fail "$name" "$log" "expected rc=1, got rc=$rc"
	elif ! printf '%s\n' "$out" | grep -qE -- "$expect"; then
		fail "$name" "$log" "output does not match /$expect/"
	else
		pass "$name"
	fi
}

unit clean pass <<'EOF'
// What the project writes: integer code, an abstract class whose vtable
// references __cxa_pure_virtual (defined by the kernel runtime), the
// runtime's own allocation operators, a function-local static.
namespace dmxx { using size_t = unsigned long; enum class AllocMode { wait, atomic }; }
void *operator new(dmxx::size_t, dmxx::AllocMode) noexcept;
void operator delete(void *, dmxx::size_t) noexcept;
struct Base { virtual int f() = 0; virtual void key(); virtual ~Base(); };
void Base::key() {}
Base::~Base() {}
struct Node { int v; };
Node *make(int v) { return new (dmxx::AllocMode::wait) Node{v}; }
void drop(Node *n) { delete n; }
volatile int seed = 3;
int cached() { static int c = seed * 2; return c; }
EOF

unit fpu_lookalike_names pass <<'EOF'
// Functions named like x87 mnemonics: symbol annotations must not trip the FPU check.
extern "C" int fsub(int a) { int s = 0; while (a--) s += a; return s; }
extern "C" int fadd(int a) { return a > 0 ? fadd(a - 1) + fsub(a) : 0; }
extern "C" int fst(int *p) { return fadd(*p); }
EOF

unit init_array 'has section \.init_array' <<'EOF'
volatile int seed = 1;
struct C { int v; C() : v(seed) {} };
C global;
EOF

unit init_array_priority 'has section \.init_array' <<'EOF'
volatile int seed = 1;
int g;
__attribute__((constructor(200))) void init_it() { g = seed; }
EOF

unit fini_array 'has section \.fini_array' <<'EOF'
volatile int seed;
__attribute__((destructor)) void done() { seed = 0; }
EOF

unit preinit_array 'has section \.preinit_array' <<'EOF'
void early() {}
__attribute__((section(".preinit_array"), used)) void (*const early_p)() = early;
EOF

unit ctors 'has section \.ctors' <<'EOF'
void early() {}
__attribute__((section(".ctors"), used)) void (*const early_p)() = early;
EOF

unit eh_frame 'has section \.eh_frame' -fasynchronous-unwind-tables <<'EOF'
int add(int a, int b) { return a + b; }
EOF

unit gcc_except_table 'has section \.gcc_except_table.*' -fexceptions <<'EOF'
int ext(int);
int f(int v) noexcept { return ext(v) + 1; }
EOF

unit throw 'references the C\+\+ runtime: .*__cxa_allocate_exception.*__cxa_throw' -fexceptions <<'EOF'
void f(int v) { if (v) throw v; }
EOF

unit unwind_resume 'references the C\+\+ runtime: .*_Unwind_Resume' -fexceptions <<'EOF'
struct D { ~D(); };
int ext(int);
int f(int v) { D d; return ext(v); }
EOF

unit guard 'references the C\+\+ runtime: .*__cxa_guard_acquire' -fthreadsafe-statics <<'EOF'
volatile int seed = 3;
int cached() { static int c = seed * 2; return c; }
EOF

unit local_static_dtor_atexit 'references the C\+\+ runtime: .*atexit' <<'EOF'
// With -fno-use-cxa-atexit a destructor is registered with plain atexit(),
// on first call: no .init_array, no __cxa_ symbol.
struct D { D(); ~D(); };
void use(D *);
void f() { static D d; use(&d); }
EOF

unit local_static_dtor_cxa_atexit 'references the C\+\+ runtime: .*__cxa_atexit.*__dso_handle' -fuse-cxa-atexit <<'EOF'
struct D { D(); ~D(); };
void use(D *);
void f() { static D d; use(&d); }
EOF

unit thread_local 'has section \.tbss' <<'EOF'
thread_local int counter;
int bump() { return ++counter; }
EOF

unit thread_local_dynamic 'has section \.tbss|references the C\+\+ runtime: .*__cxa_thread_atexit' <<'EOF'
struct D { D(); ~D(); int v; };
thread_local D d;
int get() { return d.v; }
EOF

unit rtti 'defines typeinfo \(RTTI\): .*_ZTI' -frtti <<'EOF'
struct B { virtual void key(); };
void B::key() {}
EOF

unit dynamic_cast 'references the C\+\+ runtime: .*__dynamic_cast' -frtti <<'EOF'
struct B { virtual ~B(); };
struct D : B {};
D *down(B *b) { return dynamic_cast<D *>(b); }
EOF

unit std_symbol 'references the C\+\+ runtime: .*_ZSt9terminatev' <<'EOF'
namespace std { [[noreturn]] void terminate() noexcept; }
void die() { std::terminate(); }
EOF

unit throwing_new 'references the C\+\+ runtime: .*_Znwm' <<'EOF'
// A plain `new T` calls the libstdc++ operator new(size_t) the kernel lacks.
struct Node { int v; };
Node *make(int v) { return new Node{v}; }
EOF

unit aligned_delete 'references the C\+\+ runtime: .*_ZdlPvSt11align_val_t' <<'EOF'
namespace std { enum class align_val_t : unsigned long {}; }
void operator delete(void *, std::align_val_t) noexcept;
void drop(void *p) { operator delete(p, std::align_val_t(64)); }
EOF

unit libgcc_popcount 'references the C\+\+ runtime: .*__popcountdi2' <<'EOF'
// Without POPCNT the builtin becomes a libgcc call the kernel cannot resolve.
unsigned count(unsigned long long v) { return __builtin_popcountll(v); }
EOF

unit libgcc_int128_div 'references the C\+\+ runtime: .*__udivti3' <<'EOF'
unsigned __int128 quot(unsigned __int128 a, unsigned __int128 b) { return a / b; }
EOF

unit sse_float 'uses SSE/AVX/x87 registers .*%xmm' <<'EOF'
float scale(float a, float b) { return a * b; }
EOF

unit avx_ymm 'uses SSE/AVX/x87 registers .*%ymm' -mavx2 <<'EOF'
void add8(int *__restrict a, const int *__restrict b) { for (int i = 0; i < 8; i++) a[i] += b[i]; }
EOF

unit avx512_zmm_mask 'uses SSE/AVX/x87 registers .*(%zmm|%k1)' <<'EOF'
void f() { asm volatile("kmovw %%k1, %%eax\n\tvpxord %%zmm2, %%zmm2, %%zmm2" ::: "eax"); }
EOF

unit avx512_mask_only 'uses SSE/AVX/x87 registers .*%k2' <<'EOF'
int f() { int r; asm volatile("kmovw %%k2, %0" : "=r"(r)); return r; }
EOF

unit mmx 'uses SSE/AVX/x87 registers .*%mm0' <<'EOF'
void f() { asm volatile("pxor %%mm0, %%mm0\n\temms" ::: "memory"); }
EOF

unit emms 'uses SSE/AVX/x87 registers .*emms' <<'EOF'
void f() { asm volatile("emms"); }
EOF

unit x87_long_double 'uses SSE/AVX/x87 registers .*(%st|fld)' <<'EOF'
long double mul(long double a, long double b) { return a * b; }
EOF

unit x87_no_register_operand 'uses SSE/AVX/x87 registers .*(fninit|fld1|fchs|fldcw)' <<'EOF'
// x87 instructions that name no %st register.
void f(unsigned short *cw) { asm volatile("fninit\n\tfld1\n\tfchs\n\tfldcw (%0)" :: "r"(cw) : "memory"); }
EOF

unit x87_int64 'uses SSE/AVX/x87 registers .*fildll' <<'EOF'
void f(long long *p) { asm volatile("fildll (%0)" :: "r"(p) : "memory"); }
EOF

unit mxcsr 'uses SSE/AVX/x87 registers .*stmxcsr' <<'EOF'
void f(unsigned *p) { asm volatile("stmxcsr (%0)" :: "r"(p) : "memory"); }
EOF

unit vzeroupper 'uses SSE/AVX/x87 registers .*vzeroupper' <<'EOF'
void f() { asm volatile("vzeroupper"); }
EOF

unit xsave 'uses SSE/AVX/x87 registers .*xsave' <<'EOF'
void f(void *p) { asm volatile("xsave (%0)" :: "r"(p), "a"(-1), "d"(-1) : "memory"); }
EOF

if selected unit/not_elf; then
	echo "not an object" >"$unit_dir/not_elf.o"
	out=$("$checker" "$unit_dir/not_elf.o" 2>&1); rc=$?
	if [ $rc -eq 1 ] && grep -q 'cannot read sections' <<<"$out"; then pass unit/not_elf; else fail unit/not_elf "" "rc=$rc: $out"; fi
fi
if selected unit/missing; then
	out=$("$checker" "$unit_dir/does-not-exist.o" 2>&1); rc=$?
	if [ $rc -eq 1 ] && grep -q 'no such object' <<<"$out"; then pass unit/missing; else fail unit/missing "" "rc=$rc: $out"; fi
fi
if selected unit/several_objects && [ -f "$unit_dir/clean.o" ] && [ -f "$unit_dir/sse_float.o" ]; then
	out=$("$checker" "$unit_dir/clean.o" "$unit_dir/sse_float.o" 2>&1); rc=$?
	if [ $rc -eq 1 ] && grep -q 'sse_float.o: uses SSE' <<<"$out" && ! grep -q 'clean.o' <<<"$out"; then
		pass unit/several_objects
	else
		fail unit/several_objects "" "rc=$rc: $out"
	fi
fi

# ---- 2. private copy of the tree, baseline build ------------------------------------

kbuild_cases=()
for src in "$here"/bad/*.cpp; do
	[ -e "$src" ] || continue
	name=$(basename "$src" .cpp)
	selected "$name" && kbuild_cases+=("$name")
done
if ! selected baseline && [ ${#kbuild_cases[@]} -eq 0 ]; then
	echo "$passed passed, $failed failed"
	[ $failed -eq 0 ]; exit
fi

tree=$work/tree
mkdir -p "$tree"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked and untracked-but-not-ignored files, as they are in the working tree.
	(cd "$root" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -C "$tree" -xf - || { echo "cannot copy the tree"; exit 1; }
else
	(cd "$root" && tar --exclude='*.o' --exclude='*.ko' --exclude='.*.cmd' --exclude=./build \
		--exclude=./generated -cf - .) | tar -C "$tree" -xf - || { echo "cannot copy the tree"; exit 1; }
fi

if [ ! -d "$KDIR" ]; then
	fail baseline "" "no kernel build directory $KDIR (run scripts/setup)"
	echo "$passed passed, $failed failed"
	exit 1
fi

kmake() { timeout 600 make -C "$KDIR" M="$tree" "$@"; }

log=$work/baseline.log
if kmake modules >"$log" 2>&1 && [ -f "$tree/dmxx_linear.ko" ]; then
	pass baseline
else
	fail baseline "$log" "the unmodified tree does not build; the bad-object cases would prove nothing"
	echo "$passed passed, $failed failed"
	exit 1
fi

# ---- 3. tests/build/bad/*.cpp through the Kbuild rule --------------------------------

for name in "${kbuild_cases[@]}"; do
	src=$tree/tests/build/bad/$name.cpp
	obj=$tree/tests/build/bad/$name.o
	log=$work/$name.log
	flags=$(sed -n 's|^// flags:[[:space:]]*||p' "$src" | tr '\n' ' ' | sed 's/[[:space:]]*$//')
	mapfile -t expects < <(sed -n 's|^// expect:[[:space:]]*||p' "$src")
	expect_pass=0
	grep -q '^// expect-pass' "$src" && expect_pass=1
	if [ $expect_pass -eq 0 ] && [ ${#expects[@]} -eq 0 ]; then
		fail "$name" "" "case has neither '// expect:' nor '// expect-pass'"
		continue
	fi
	if [ -n "$flags" ]; then target=tests/build/bad/$name.o; else target=modules; fi

	rm -f "$obj" "$tree/dmxx_bad.ko"
	start=$SECONDS
	kmake DMXX_BAD_OBJECT="$name" DMXX_EXTRA_CXXFLAGS="$flags" "$target" >"$log" 2>&1
	rc=$?
	[ "$V" = 1 ] && sed 's/^/    | /' "$log"
	what="[$target${flags:+, $flags}] $((SECONDS - start))s"

	if [ $expect_pass -eq 1 ]; then
		if [ $rc -ne 0 ]; then
			fail "$name" "$log" "$what: control object must build, make exited $rc"
		elif [ "$target" = modules ] && [ ! -f "$tree/dmxx_bad.ko" ]; then
			fail "$name" "$log" "$what: no dmxx_bad.ko"
		elif grep -qE 'check-cxx-object:|objtool: |objtool warnings' "$log"; then
			fail "$name" "$log" "$what: build succeeded but a check complained"
		else
			pass "$name $what"
		fi
		continue
	fi

	missing=()
	for re in "${expects[@]}"; do
		grep -qE -- "$re" "$log" || missing+=("$re")
	done
	if [ $rc -eq 0 ]; then
		fail "$name" "$log" "$what: build SUCCEEDED; a check let a bad object through"
	elif [ ${#missing[@]} -gt 0 ]; then
		fail "$name" "$log" "$what: build failed, but not with the expected message(s): $(printf '/%s/ ' "${missing[@]}")"
	elif [ -e "$obj" ]; then
		fail "$name" "$log" "$what: failed object $obj left behind (a rerun of make could pick it up)"
	else
		pass "$name $what"
	fi
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
