// SPDX-License-Identifier: GPL-2.0
// A call to an external [[noreturn]] function at the end of a function:
// objtool does not know the callee never returns and sees control fall off
// the end of the section. 6.1's objtool only warns; our rule must fail.
// expect: unexpected end of section
// expect: dmxx: objtool warnings in .*objtool_noreturn\.o are errors
[[noreturn]] void dmxx_bad_die(int code);

void dmxx_bad_give_up(int code)
{
	dmxx_bad_die(code + 1);
}
