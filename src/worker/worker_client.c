/* worker_client.c -- see worker_client.h. */
#include "worker_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <termios.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/paths.h"

/* Whether we are the foreground process group of a controlling terminal
 * (a user at it may answer a prompt). */
static int in_terminal_foreground(void)
{
    int fd = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    pid_t fg = tcgetpgrp(fd);
    close(fd);
    return fg > 0 && fg == getpgrp();
}

int worker_client_open(worker_client_t *c, const char *cmd, char *err, size_t n)
{
    memset(c, 0, sizeof *c);
    c->to_fd = c->from_fd = -1;
    snprintf(c->cmd, sizeof c->cmd, "%s", cmd && *cmd ? cmd : "emile worker");
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) {
        snprintf(err, n, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
        snprintf(err, n, "pipe: %s", strerror(errno));
        close(in[0]);
        close(in[1]);
        return -1;
    }
    /* See worker_client.h: its own group, unless it may have to prompt a
     * user at our terminal. */
    int own_group = !in_terminal_foreground();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, n, "fork: %s", strerror(errno));
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        return -1;
    }
    if (pid == 0) {
        /* Its own process group, so a timeout can end all of it (a
         * template's shell and what it started, the worker's compiles);
         * and it dies with us, as it would in our group. */
        if (own_group)
            setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(1);
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (cmd && *cmd)
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        else
            execl(emile_self_path(), "emile", "worker", (char *)NULL);
        fprintf(stderr, "cannot start the worker: %s\n", strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (own_group)
        setpgid(pid, pid);     /* also here: no window before the child's own call */
    /* Our end only (the worker's has its own file description): a write
     * to a worker that does not read waits in poll, against the call's
     * deadline, not in write. */
    fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    c->pid = pid;
    c->own_group = own_group;
    c->to_fd = in[1];
    c->from_fd = out[0];
    c->next_id = 1;
    return 0;
}

double worker_client_evaluate_timeout(double compile_limit_s, double time_limit_s)
{
    double one = 2 * compile_limit_s + 3 * time_limit_s + (10 * time_limit_s + 60) + 120;
    return 2 * one + 60;
}

/* Write all of s by the deadline (0: none): 0, -1 when the worker is
 * gone (EPIPE; SIGPIPE ignored meanwhile), -2 at the deadline. */
static int write_all(int fd, const char *s, size_t len, double deadline)
{
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    int rc = 0;
    while (len > 0) {
        ssize_t k = write(fd, s, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The pipe is full: the worker is not reading (yet). */
            int wait_ms = -1;
            if (deadline > 0) {
                double left = deadline - clock_mono_s();
                if (left <= 0) {
                    rc = -2;
                    break;
                }
                wait_ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
            }
            struct pollfd pf = {fd, POLLOUT, 0};
            if (poll(&pf, 1, wait_ms) < 0 && errno != EINTR) {
                rc = -1;
                break;
            }
            continue;                 /* POLLERR (no reader) shows in write */
        }
        if (k <= 0) {
            rc = -1;
            break;
        }
        s += k;
        len -= (size_t)k;
    }
    signal(SIGPIPE, old);
    return rc;
}

/* Kill the worker (its whole group when it leads one) and reap it. */
static void kill_worker(worker_client_t *c)
{
    if (c->pid <= 0)
        return;
    if (c->own_group)
        kill(-c->pid, SIGKILL);       /* the worker's whole group */
    kill(c->pid, SIGKILL);
    int st;
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
        ;
    c->pid = 0;
}

/* Why the worker is gone: its exit status once reaped (waiting up to a
 * second: its stdout closes just before it exits). */
static void describe_exit(worker_client_t *c, char *buf, size_t n)
{
    int st;
    for (int i = 0; i < 100 && c->pid > 0; i++) {
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->pid = 0;
            if (WIFEXITED(st))
                snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
            else if (WIFSIGNALED(st))
                snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st),
                         strsignal(WTERMSIG(st)));
            else
                snprintf(buf, n, "ended");
            return;
        }
        if (r < 0)
            break;
        usleep(10000);
    }
    snprintf(buf, n, "closed its output");
}

/* The next whole line (malloc'd, without the newline) by the deadline
 * (0: none): 1, 0 at the end of the stream, -1 on timeout or error. */
static int read_line(worker_client_t *c, double deadline, char **line)
{
    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t k = (size_t)(nl - c->buf);
            *line = malloc(k + 1);
            if (!*line)
                return -1;
            memcpy(*line, c->buf, k);
            (*line)[k] = 0;
            memmove(c->buf, nl + 1, c->len - k - 1);
            c->len -= k + 1;
            return 1;
        }
        int wait_ms = -1;
        if (deadline > 0) {
            double left = deadline - clock_mono_s();
            if (left <= 0)
                return -1;
            wait_ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
        }
        struct pollfd pf = {c->from_fd, POLLIN, 0};
        int p = poll(&pf, 1, wait_ms);
        if (p < 0 && errno == EINTR)
            continue;
        if (p < 0)
            return -1;
        if (p == 0)
            continue;                 /* the deadline is checked above */
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? c->cap * 2 : 131072;
            char *nb = realloc(c->buf, cap);
            if (!nb)
                return -1;
            c->buf = nb;
            c->cap = cap;
        }
        ssize_t k = read(c->from_fd, c->buf + c->len, c->cap - c->len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        c->len += (size_t)k;
    }
}

json_t *worker_client_call(worker_client_t *c, json_t *req, char *err, size_t n)
{
    return worker_client_call_progress(c, req, NULL, NULL, err, n);
}

json_t *worker_client_call_progress(worker_client_t *c, json_t *req, worker_client_progress_fn progress, void *user,
                                    char *err, size_t n)
{
    if (c->dead_reason[0]) {
        /* Gone already: say why it went, not how it was reaped. */
        snprintf(err, n, "the worker (%s) %s", c->cmd, c->dead_reason);
        return NULL;
    }
    int id = c->next_id++;
    json_object_set_new(req, "id", json_integer(id));
    if (progress)
        json_object_set_new(req, "progress", json_true());
    char *text = json_dumps(req, JSON_COMPACT);
    char why[160];
    /* One deadline for the whole call, sending included: a worker that
     * stopped reading fills the pipe and would block us in write. */
    double deadline = c->timeout_s > 0 ? clock_mono_s() + c->timeout_s : 0;
    int wrc = -1;
    if (text && c->to_fd >= 0) {
        wrc = write_all(c->to_fd, text, strlen(text), deadline);
        if (wrc == 0)
            wrc = write_all(c->to_fd, "\n", 1, deadline);
    }
    free(text);
    if (wrc == -2) {
        kill_worker(c);
        snprintf(c->dead_reason, sizeof c->dead_reason,
                 "did not read its request within %.0f s and was stopped (a hung compiler, "
                 "driver or remote link?)", c->timeout_s);
        snprintf(err, n, "the worker (%s) %s", c->cmd, c->dead_reason);
        return NULL;
    }
    if (wrc != 0) {
        describe_exit(c, why, sizeof why);
        snprintf(c->dead_reason, sizeof c->dead_reason, "%s before it could be asked", why);
        snprintf(err, n, "the worker (%s) %s", c->cmd, c->dead_reason);
        return NULL;
    }
    for (;;) {
        char *line = NULL;
        int rc = read_line(c, deadline, &line);
        if (rc == 0) {
            describe_exit(c, why, sizeof why);
            snprintf(c->dead_reason, sizeof c->dead_reason, "%s without answering", why);
            snprintf(err, n, "the worker (%s) %s", c->cmd, c->dead_reason);
            return NULL;
        }
        if (rc < 0) {
            if (deadline > 0 && clock_mono_s() >= deadline) {
                kill_worker(c);
                snprintf(c->dead_reason, sizeof c->dead_reason,
                         "gave no answer within %.0f s and was stopped (a hung compiler, driver "
                         "or remote link?)", c->timeout_s);
                snprintf(err, n, "the worker (%s) %s", c->cmd, c->dead_reason);
            } else {
                snprintf(err, n, "reading from the worker (%s): %s", c->cmd,
                         errno ? strerror(errno) : "out of memory");
            }
            return NULL;
        }
        json_t *reply = json_loads(line, 0, NULL);
        free(line);
        int ours = reply && json_integer_value(json_object_get(reply, "id")) == id;
        if (ours && json_object_get(reply, "event")) {
            /* A progress event of this call, not its reply. */
            if (progress)
                progress(reply, user);
            json_decref(reply);
            continue;
        }
        if (ours)
            return reply;
        /* Anything else on the worker's stdout (a remote shell's banner):
         * skip it. */
        json_decref(reply);
    }
}

void worker_client_close(worker_client_t *c)
{
    if (c->to_fd >= 0)
        close(c->to_fd);       /* end of input: the worker's loop ends */
    if (c->from_fd >= 0)
        close(c->from_fd);
    c->to_fd = c->from_fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    if (c->pid > 0) {
        int st;
        for (int i = 0; i < 200; i++) {
            if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
                c->pid = 0;
                return;
            }
            usleep(10000);
        }
        kill_worker(c);
    }
}
