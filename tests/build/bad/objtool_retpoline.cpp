// SPDX-License-Identifier: GPL-2.0
// An indirect call and a plain `ret` in a RETPOLINE + RETHUNK kernel:
// Spectre v2 / retbleed mitigations silently missing. objtool warns.
// flags: -mindirect-branch=keep -mfunction-return=keep
// expect: indirect call found in RETPOLINE build
// expect: 'naked' return found in RETHUNK build
// expect: dmxx: objtool warnings in .*objtool_retpoline\.o are errors
int dmxx_bad_call(int (*fn)(int), int v)
{
	return fn(v) + 1;
}
