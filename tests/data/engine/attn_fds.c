/* A correct attention kernel that checks what the Tasting Room's child
 * left it: stdin must not be a terminal and no descriptor above 3 (the
 * report pipe) may be open -- the parent's files, a store, a server's
 * sockets.  It returns 13 when it finds one. */
#include <fcntl.h>
#include <unistd.h>

#define emile_kernel online_kernel
#include "attn_online.c"
#undef emile_kernel

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    if (isatty(0))
        return 13;
    for (int fd = 4; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            return 13;
    return online_kernel(a);
}
