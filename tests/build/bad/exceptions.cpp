// SPDX-License-Identifier: GPL-2.0
// C++ exceptions need libsupc++/libgcc unwinding. A noexcept function that
// calls a function which may throw gets an LSDA (.gcc_except_table: "call
// std::terminate if anything unwinds through here") and a personality
// routine (__gxx_personality_v0) referenced from .eh_frame. None of that
// exists in the kernel.
// (A `throw`, a catch or a cleanup ends in code objtool reports first:
// noreturn calls to __cxa_throw/_Unwind_Resume, landing pads reachable only
// through the unwinder; see exceptions_throw.cpp. This form reaches
// check-cxx-object.)
// flags: -fexceptions
// expect: check-cxx-object: .*/exceptions\.o: has section \.gcc_except_table
// expect: check-cxx-object: .*/exceptions\.o: has section \.eh_frame
// expect: check-cxx-object: .*/exceptions\.o: references the C\+\+ runtime: .*__gxx_personality_v0
volatile int dmxx_bad_input;

int dmxx_bad_external(int v); // not noexcept: may throw

int dmxx_bad_checked() noexcept
{
	return dmxx_bad_external(dmxx_bad_input) + 1;
}
