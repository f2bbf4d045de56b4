// SPDX-License-Identifier: GPL-2.0
// A function-local static with a dynamic initializer, compiled with
// thread-safe statics: g++ calls __cxa_guard_acquire/__cxa_guard_release.
// flags: -fthreadsafe-statics
// expect: check-cxx-object: .*/guard\.o: references the C\+\+ runtime: .*__cxa_guard_acquire
volatile int dmxx_bad_seed = 7;

static int compute() { return dmxx_bad_seed * 3; }

int dmxx_bad_cached()
{
	static int cached = compute();
	return cached;
}
