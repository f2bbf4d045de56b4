// SPDX-License-Identifier: GPL-2.0
// A namespace-scope object whose constructor is not constant: g++ emits a
// static initializer in .init_array, which nothing runs in the kernel
// (CONFIG_CONSTRUCTORS is off), so `counter.value` would silently stay 0.
// expect: check-cxx-object: .*/init_array\.o: has section \.init_array
volatile int dmxx_bad_seed = 3;

struct Counter {
	int value;
	Counter() : value(dmxx_bad_seed) {}
};

Counter dmxx_bad_counter;

int dmxx_bad_read_counter() { return dmxx_bad_counter.value; }
