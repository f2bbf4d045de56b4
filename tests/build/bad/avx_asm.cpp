// SPDX-License-Identifier: GPL-2.0
// Inline assembly touching vector registers without kernel_fpu_begin():
// invisible to every compiler flag, caught only by disassembly.
// expect: check-cxx-object: .*/avx_asm\.o: uses SSE/AVX/x87 registers .*%xmm0
// expect: check-cxx-object: .*/avx_asm\.o: uses SSE/AVX/x87 registers .*%ymm1
void dmxx_bad_clear_vectors()
{
	asm volatile("pxor %%xmm0, %%xmm0\n\t"
		     "vpxor %%ymm1, %%ymm1, %%ymm1" ::: "memory");
}
