/*
 * does_not_compile.c -- a syntax error (a missing semicolon and brace), as an
 * LLM's truncated answer would have.
 *
 * Must be caught by: the compile step: status "compile_error" with the
 * compiler's log; nothing is run.
 */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    int n = args->n_tensors
    return n == 4 ? 0 : 1;
