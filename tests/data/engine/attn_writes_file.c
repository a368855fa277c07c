/* A correct attention kernel that also tries to write a file the first
 * time it runs: the Tasting Room's sandbox must stop it (cpu: no opens for
 * writing), so the tasting fails naming the call and no file appears. */
#include <fcntl.h>
#include <unistd.h>

#define emile_kernel online_kernel
#include "attn_online.c"
#undef emile_kernel

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    int fd = open("/tmp/emile-taste-sandbox-escape", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0)
        close(fd);
    return online_kernel(a);
}
