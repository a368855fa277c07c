/* child_call.c -- see child_call.h. */
#include "util/child_call.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

int child_call(int (*fn)(void *ctx, int fd), void *ctx, void *buf, size_t cap, size_t *len)
{
    int p[2];
    if (len)
        *len = 0;
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        _exit(fn(ctx, p[1]));
    }
    close(p[1]);
    size_t got = 0;
    for (;;) {
        ssize_t k = read(p[0], (char *)buf + got, cap - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == cap)
            break;
    }
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (len)
        *len = got;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
