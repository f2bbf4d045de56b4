// SPDX-License-Identifier: GPL-2.0
// throw and catch: __cxa_allocate_exception, __cxa_throw, __cxa_begin_catch,
// _Unwind_Resume and the thrown type's typeinfo (_ZTIi) from libsupc++.
// With the current rule objtool runs before check-cxx-object and reports the
// code first (landing pads are reachable only through the unwinder: "unreachable
// instruction"; __cxa_throw never returns: "falls through" / "unexpected end of
// section"). If check-cxx-object ran first it would name the __cxa_* references.
// Either way the object must not build.
// flags: -fexceptions
// expect: exceptions_throw\.o(: warning: objtool: .*(unreachable instruction|falls through|unexpected end of section)|: references the C\+\+ runtime: .*__cxa_)
volatile int dmxx_bad_input;

[[gnu::noinline]] static int may_throw(int v)
{
	if (v < 0)
		throw v;
	return v * 2;
}

int dmxx_bad_checked()
{
	int result;
	try {
		result = may_throw(dmxx_bad_input);
	} catch (int e) {
		result = -e;
	}
	return result + 1;
}
