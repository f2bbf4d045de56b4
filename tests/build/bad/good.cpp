// SPDX-License-Identifier: GPL-2.0
// Control case: kernel-compatible C++ that must build into dmxx_bad.ko and
// pass every check (objtool, check-cxx-object, modpost). If this fails, the
// harness is broken, not the checks.
// expect-pass
struct Counter {
	int value;
	constexpr Counter(int v) : value(v) {}
	~Counter() = default;
};

// Constant-initialized: lives in .data, no .init_array.
Counter dmxx_good_counter{5};

struct Op {
	virtual int apply(int v) const = 0;
	// Protected non-virtual destructor: no deleting destructor, no operator delete.
protected:
	~Op() = default;
};

struct Twice final : Op {
	int apply(int v) const override { return 2 * v; }
};

struct Plus final : Op {
	int n;
	constexpr explicit Plus(int k) : n(k) {}
	int apply(int v) const override { return v + n; }
};

volatile int dmxx_good_seed = 3;

static int compute() { return dmxx_good_seed * 7; }

int dmxx_good_cached()
{
	// -fno-threadsafe-statics: a plain guard byte, no __cxa_guard_*.
	static int cached = compute();
	return cached;
}

int dmxx_good_run(const Op *op, int v) { return op->apply(v); }

int dmxx_good_all(int v)
{
	static Twice twice;
	static Plus plus{dmxx_good_counter.value};
	return dmxx_good_run(&twice, v) + dmxx_good_run(&plus, v) + dmxx_good_cached();
}

// MODULE_LICENSE("GPL") without <linux/module.h>.
[[gnu::section(".modinfo"), gnu::used, gnu::aligned(1)]] static const char dmxx_good_license[] = "license=GPL";
