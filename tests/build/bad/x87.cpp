// SPDX-License-Identifier: GPL-2.0
// long double arithmetic with the 387 re-enabled (the kernel passes
// -mno-80387): g++ emits x87 instructions (fld/fmul/fstp) on %st.
// flags: -m80387 -mfpmath=387
// expect: check-cxx-object: .*/x87\.o: uses SSE/AVX/x87 registers
volatile long double dmxx_bad_ratio = 1.5L;

long dmxx_bad_scaled(long v)
{
	long double x = static_cast<long double>(v) * dmxx_bad_ratio;
	return static_cast<long>(x);
}
