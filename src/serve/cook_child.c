/* cook_child.c -- spawn a CLI child and read its NDJSON stdout. */
#include "cook_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int cook_child_spawn(cook_child_t *c, char *const argv[], const char *echo_prefix,
                     char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->pid = -1;
    c->out_fd = c->err_fd = -1;
    c->echo_prefix = echo_prefix;
    int out[2] = {-1, -1}, ep[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
    /* The server ignores SIGPIPE and its threads may block signals; the
     * child must start with the default dispositions and an empty mask so
     * that SIGTERM means "stop after this candidate". */
    sigset_t def, none;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGHUP);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                  POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(rc));
        goto fail;
    }
    close(out[1]);
    close(ep[1]);
    c->pid = pid;
    c->out_fd = out[0];
    c->err_fd = ep[0];
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0) close(out[i]);
        if (ep[i] >= 0) close(ep[i]);
    }
    return -1;
}

/* Keep the last COOK_CHILD_TAIL bytes of stderr; echo whole lines. */
static void take_stderr(cook_child_t *c, const char *p, size_t n)
{
    if (n >= COOK_CHILD_TAIL) {
        memcpy(c->tail, p + n - COOK_CHILD_TAIL, COOK_CHILD_TAIL);
        c->tail_len = COOK_CHILD_TAIL;
    } else {
        size_t keep = c->tail_len + n > COOK_CHILD_TAIL ? COOK_CHILD_TAIL - n : c->tail_len;
        memmove(c->tail, c->tail + c->tail_len - keep, keep);
        memcpy(c->tail + keep, p, n);
        c->tail_len = keep + n;
    }
    if (!c->echo_prefix)
        return;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || c->echo_len + 1 >= sizeof c->echo_line) {
            fprintf(stderr, "%s%.*s\n", c->echo_prefix, (int)c->echo_len, c->echo_line);
            c->echo_len = 0;
            if (p[i] == '\n')
                continue;
        }
        c->echo_line[c->echo_len++] = p[i];
    }
}

/* A complete line in buf: hand it out and shift the rest down. */
static int pop_line(cook_child_t *c, char **line)
{
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - c->buf);
    if (c->overlong) {
        c->overlong = 0;
        memmove(c->buf, nl + 1, c->len - n - 1);
        c->len -= n + 1;
        return pop_line(c, line);
    }
    char *s = malloc(n + 1);
    if (!s)
        return -1;
    memcpy(s, c->buf, n);
    s[n] = 0;
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    *line = s;
    return 1;
}

int cook_child_next_line(cook_child_t *c, char **line)
{
    *line = NULL;
    for (;;) {
        int rc = pop_line(c, line);
        if (rc != 0)
            return rc;
        if (c->len >= COOK_CHILD_MAX_LINE) {
            c->overlong = 1;       /* drop bytes until the next newline */
            c->len = 0;
        }
        if (c->out_fd < 0)
            return 0;
        struct pollfd pf[2] = {{c->out_fd, POLLIN, 0}, {c->err_fd, POLLIN, 0}};
        int nf = c->err_fd >= 0 ? 2 : 1;
        if (poll(pf, (nfds_t)nf, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        char tmp[65536];
        if (nf == 2 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t k = read(c->err_fd, tmp, sizeof tmp);
            if (k > 0) {
                take_stderr(c, tmp, (size_t)k);
            } else if (k == 0 || errno != EINTR) {
                close(c->err_fd);
                c->err_fd = -1;
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = read(c->out_fd, tmp, sizeof tmp);
            if (k > 0) {
                if (c->len + (size_t)k > c->cap) {
                    size_t cap = c->cap ? c->cap : 65536;
                    while (cap < c->len + (size_t)k)
                        cap *= 2;
                    char *nb = realloc(c->buf, cap);
                    if (!nb)
                        return -1;
                    c->buf = nb;
                    c->cap = cap;
                }
                memcpy(c->buf + c->len, tmp, (size_t)k);
                c->len += (size_t)k;
            } else if (k == 0 || errno != EINTR) {
                close(c->out_fd);
                c->out_fd = -1;
            }
        }
    }
}

int cook_child_wait_exit(cook_child_t *c, int *wstatus)
{
    /* Drain stderr to its end so the tail holds the child's last words. */
    char tmp[4096];
    while (c->err_fd >= 0) {
        ssize_t k = read(c->err_fd, tmp, sizeof tmp);
        if (k > 0) {
            take_stderr(c, tmp, (size_t)k);
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        close(c->err_fd);
        c->err_fd = -1;
    }
    if (c->out_fd >= 0) {
        close(c->out_fd);
        c->out_fd = -1;
    }
    if (c->echo_prefix && c->echo_len)
        fprintf(stderr, "%s%.*s\n", c->echo_prefix, (int)c->echo_len, c->echo_line);
    c->echo_len = 0;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    /* Until the child's exit is known, not a clean exit: a caller that
     * looks at *wstatus after a failure must not see success. */
    *wstatus = COOK_CHILD_UNKNOWN_STATUS;
    if (c->pid <= 0) {
        errno = ECHILD;
        return -1;
    }
    /* WNOWAIT: learn that it exited and how, but leave it a zombie. */
    siginfo_t info;
    for (;;) {
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)c->pid, &info, WEXITED | WNOWAIT) == 0)
            break;
        if (errno != EINTR) {
            c->pid = -1;         /* not ours to wait for (or already gone) */
            return -1;
        }
    }
    /* The status as waitpid would give it. */
    if (info.si_code == CLD_EXITED)
        *wstatus = (info.si_status & 0xff) << 8;
    else
        *wstatus = (info.si_status & 0x7f) | (info.si_code == CLD_DUMPED ? 0x80 : 0);
    return 0;
}

int cook_child_reap(cook_child_t *c)
{
    if (c->pid <= 0)
        return 0;
    int st, rc = 0;
    while (waitpid(c->pid, &st, 0) < 0) {
        if (errno != EINTR) {
            rc = -1;
            break;
        }
    }
    c->pid = -1;
    return rc;
}

int cook_child_wait(cook_child_t *c, int *wstatus)
{
    int rc = cook_child_wait_exit(c, wstatus);
    if (cook_child_reap(c) != 0)
        rc = -1;
    return rc;
}

void cook_child_last_error(const cook_child_t *c, char *out, size_t n)
{
    size_t end = c->tail_len;
    while (end > 0 && (c->tail[end - 1] == '\n' || c->tail[end - 1] == ' '))
        end--;
    size_t start = end;
    while (start > 0 && c->tail[start - 1] != '\n')
        start--;
    snprintf(out, n, "%.*s", (int)(end - start), c->tail + start);
}
