/*
 * prints_controls.c -- MISBEHAVIOUR: prints text meant to act on whoever
 * reads the reply, then crashes, so the last of its output is quoted in
 * the error: an 8-bit CSI (U+009B, "clear the screen" on terminals that
 * take 8-bit controls), a right-to-left override that turns "dilav :sutats"
 * into "status: valid" on screen, a line separator, and an overlong form
 * of "/" (C0 AF: not UTF-8; jansson refuses it, and a reply whose error
 * held it once said "error": null).
 *
 * Must be caught by: the output filter (src/sandbox/output_filter.c): the
 * crash is reported with the characters shown as \uXXXX and the bad bytes
 * as \xNN, so the error stays a string and acts on nothing.
 * Expected verdict: crashed, the error quoting "\u202E".
 */
#include <stdio.h>
#include <stdlib.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    (void)args;
    fprintf(stderr, "\xc2\x9b" "2J\xe2\x80\xae" "dilav :sutats\xe2\x80\xa8" "x\xc0\xaf" "y\n");
    fflush(stderr);
    abort();
}
