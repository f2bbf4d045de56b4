// SPDX-License-Identifier: GPL-2.0
// Floating point in a function that re-enables SSE with a target attribute:
// builds and loads silently with the kernel's -mno-sse, and corrupts the
// user task's xmm state. Only the FPU check stands in the way.
// expect: check-cxx-object: .*/sse_target\.o: uses SSE/AVX/x87 registers .*%xmm
[[gnu::target("sse2")]] int dmxx_bad_scale(int value, int percent)
{
	float f = static_cast<float>(value);
	f *= static_cast<float>(percent) / 100.0f;
	return static_cast<int>(f);
}
