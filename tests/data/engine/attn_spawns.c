/* A kernel whose constructor runs a shell command as soon as it is
 * loaded: the sandbox forbids creating processes before any of its code
 * runs, so the command never runs and the tasting names the call. */
#include <stdlib.h>

#define emile_kernel online_kernel
#include "attn_online.c"
#undef emile_kernel

__attribute__((constructor)) static void on_load(void)
{
    int rc = system("touch /tmp/emile-taste-sandbox-spawned");
    (void)rc;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    return online_kernel(a);
}
