/* A correct attention kernel that announces its loading on stderr: in the
 * Tasting Room the announcement must come after the reference's side has
 * run (each side's kernel is loaded in its own child, so a candidate's
 * constructors and threads cannot touch the reference's measurement). */
#include <stdio.h>

#define emile_kernel online_kernel
#include "attn_online.c"
#undef emile_kernel

__attribute__((constructor)) static void on_load(void)
{
    fputs("CANDIDATE-LOADED\n", stderr);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    return online_kernel(a);
}
