/* sandbox.c -- see sandbox.h. */
#include "sandbox/sandbox.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long sandbox_untrusted_uid(void)
{
    if (geteuid() != 0)
        return -1;
    const char *env = getenv("EMILE_SANDBOX_UID");
    if (env)
        return atol(env);
    struct passwd *pw = getpwnam("nobody");
    return pw ? (long)pw->pw_uid : 65534;
}

void sandbox_limits_default(sandbox_limits_t *l)
{
    memset(l, 0, sizeof *l);
    l->wall_s = 60;
    l->cpu_s = 600;
    l->mem_bytes = (size_t)4 << 30;
    l->fsize_bytes = (size_t)1 << 20;
    l->nproc = 256;
    l->isolate_net = 1;
    l->drop_uid = sandbox_untrusted_uid();
}

static void set_limit(int res, rlim_t v)
{
    struct rlimit r = {v, v};
    setrlimit(res, &r);
}

/* Untrusted code sees an allow-listed environment only: no API keys,
 * tokens or the user's other secrets.  setenv may allocate: callers run
 * this before the memory limit, which a sanitized parent would exceed.
 *
 * Emptying environ is not enough where no exec follows (the Tasting
 * Room's engine child loads kernels into the process that called this):
 * the "NAME=value" strings themselves stay in memory (the initial
 * environment on the stack, where /proc/self/environ also reads it), for
 * a kernel scanning memory to find.  So every string not kept is
 * overwritten in place first.  Callers are forked children only: the
 * pages are copy-on-write, the parent's copy is untouched.  (Every
 * environment string is writable: the stack's, or setenv's heap copies;
 * nothing here putenv()s a literal.) */
void sandbox_scrub_env(void)
{
    static const char *const keep[] = {"PATH=", "LD_LIBRARY_PATH=", "LANG=", "LC_ALL=", "CUDA_", "NVIDIA_",
                                       "NV_", "OMP_", "GOMP_", "EMILE_NO_SECCOMP=", "EMILE_RUNNER_DUMPABLE=",
                                       "EMILE_CC=", "EMILE_NVCC=", "EMILE_CUDA_ARCH=", "EMILE_ENGINE_"};
    extern char **environ;
    char **kept = calloc(64, sizeof *kept);
    int nk = 0;
    for (char **e = environ; e && *e; e++) {
        int keep_it = 0;
        for (size_t i = 0; i < sizeof keep / sizeof keep[0] && !keep_it; i++)
            keep_it = strncmp(*e, keep[i], strlen(keep[i])) == 0;
        if (keep_it && kept && nk < 60)
            kept[nk++] = *e;
        else
            explicit_bzero(*e, strlen(*e));
    }
    clearenv();
    for (int i = 0; i < nk; i++)
        putenv(kept[i]);
    free(kept);
}

int sandbox_become(long uid)
{
    return setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0 ? -1 : 0;
}

void sandbox_die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(126);                    /* it is already gone */
}

/* In the child, between fork and exec (single-threaded parent: plain
 * libc calls are safe here).  sync_fd: one byte is written there once the
 * child leads its own session and process group ('1' when the network
 * namespace was left), so the parent may signal the group from then on. */
static void child_setup(const char *dir, const sandbox_limits_t *l, int log_fd, int keep1, int keep2,
                        int sync_fd, pid_t parent)
{
    /* A session of its own, not just a process group: no controlling
     * terminal, so nothing in it can open /dev/tty (to push keystrokes
     * into the user's shell with TIOCSTI, or read from it) or be stopped
     * by terminal signals.  pgid == pid still: kill(-pid) ends it all. */
    setsid();
    sandbox_die_with_parent(parent);
    int net_ok = l->isolate_net && unshare(CLONE_NEWNET) == 0;
    if (sync_fd >= 0) {
        char c = net_ok ? '1' : '0';
        ssize_t w = write(sync_fd, &c, 1);
        (void)w;
        close(sync_fd);
    }
    if (chdir(dir) != 0)
        _exit(126);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        close(devnull);
    }
    /* Close everything else we inherited (store handles, other runners). */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != keep1 && fd != keep2)
            close(fd);
    sandbox_scrub_env();
    setenv("HOME", dir, 1);
    setenv("TMPDIR", dir, 1);
}

/* The parent's side of child_setup's sync byte: wait until the child has
 * its own process group (or died trying).  The byte, or '0'. */
static char await_child_setup(int sync_rd)
{
    char c = '0';
    for (;;) {
        ssize_t r = read(sync_rd, &c, 1);
        if (r == 1)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        c = '0';
        break;
    }
    close(sync_rd);
    return c;
}

/* The limits (see sandbox.h); the children take them last, right before exec. */
void sandbox_apply_limits(const sandbox_limits_t *l)
{
    if (l->cpu_s > 0)
        set_limit(RLIMIT_CPU, (rlim_t)l->cpu_s);
    if (l->fsize_bytes > 0)
        set_limit(RLIMIT_FSIZE, (rlim_t)l->fsize_bytes);
    /* RLIMIT_NPROC counts every process and thread of the uid: only a
     * dedicated uid (nobody, when we dropped to it) makes it a bound on
     * the kernel's own; as an ordinary user it would count the user's
     * browser and desktop and fail the compiler's forks at random. */
    if (l->nproc > 0 && l->drop_uid >= 0)
        set_limit(RLIMIT_NPROC, (rlim_t)l->nproc);
    set_limit(RLIMIT_CORE, 0);
    if (l->mem_bytes > 0)
        set_limit(RLIMIT_AS, (rlim_t)l->mem_bytes);
}

static char *read_capped(const char *path, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    long start = sz > (long)cap ? sz - (long)cap : 0;
    fseek(f, start, SEEK_SET);
    char *buf = malloc((size_t)(sz - start) + 1);
    size_t r = buf ? fread(buf, 1, (size_t)(sz - start), f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[r] = 0;
    return buf;
}

int sandbox_run(const char *dir, char *const argv[], const sandbox_limits_t *l, int *status,
                int *timed_out, char **log, double *seconds, char *err, size_t errlen)
{
    char log_path[1024];
    snprintf(log_path, sizeof log_path, "%s/.cmd.log", dir);
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", log_path, strerror(errno));
        return -1;
    }
    if (l->drop_uid >= 0 && fchown(log_fd, (uid_t)l->drop_uid, (gid_t)l->drop_uid) != 0) {
        /* Not fatal: the child writes through the inherited descriptor. */
    }
    int syncp[2];
    if (pipe2(syncp, O_CLOEXEC) != 0) {
        close(log_fd);
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    double t0 = clock_mono_s();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(log_fd);
        close(syncp[0]);
        close(syncp[1]);
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(syncp[0]);
        child_setup(dir, l, log_fd, -1, -1, syncp[1], parent);
        if (l->drop_uid >= 0 && geteuid() == 0) {
            if (sandbox_become(l->drop_uid) != 0)
                _exit(125);
            sandbox_die_with_parent(parent);   /* the uid change cleared it */
        }
        sandbox_apply_limits(l);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    /* Not setpgid(pid, pid) here: the child's setsid() fails once it
     * leads a group.  Its sync byte says it has its session instead. */
    close(syncp[1]);
    close(log_fd);
    await_child_setup(syncp[0]);
    *timed_out = 0;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            break;
        if (clock_mono_s() - t0 > l->wall_s) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            *timed_out = 1;
            break;
        }
        usleep(2000);
    }
    /* Whatever the group left behind goes too. */
    kill(-pid, SIGKILL);
    *status = st;
    if (seconds)
        *seconds = clock_mono_s() - t0;
    if (log)
        *log = read_capped(log_path, l->fsize_bytes ? l->fsize_bytes : 65536);
    return 0;
}

int sandbox_spawn(const char *dir, char *const argv[], int arena_fd, const sandbox_limits_t *l,
                  sandbox_proc_t *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->ctl = -1;
    snprintf(p->log_path, sizeof p->log_path, "%s/runner.log", dir);
    int log_fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", p->log_path, strerror(errno));
        return -1;
    }
    int sv[2], netp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        close(log_fd);
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    if (pipe2(netp, O_CLOEXEC) != 0) {
        close(log_fd);
        close(sv[0]);
        close(sv[1]);
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    char ctl_s[16], arena_s[16];
    snprintf(ctl_s, sizeof ctl_s, "%d", sv[1]);
    snprintf(arena_s, sizeof arena_s, "%d", arena_fd);
    char *args[64];
    int na = 0;
    for (; argv[na] && na < 63; na++)
        args[na] = strcmp(argv[na], "{CTL}") == 0 ? ctl_s : strcmp(argv[na], "{ARENA}") == 0 ? arena_s : argv[na];
    args[na] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(log_fd);
        close(sv[0]); close(sv[1]); close(netp[0]); close(netp[1]);
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(netp[0]);
        /* The two descriptors the runner needs survive exec. */
        fcntl(sv[1], F_SETFD, 0);
        fcntl(arena_fd, F_SETFD, 0);
        child_setup(dir, l, log_fd, sv[1], arena_fd, netp[1], parent);
        sandbox_apply_limits(l);
        execvp(args[0], args);
        dprintf(2, "cannot run %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    /* No setpgid(pid, pid) here (see sandbox_run): the sync byte. */
    close(log_fd);
    close(sv[1]);
    close(netp[1]);
    p->net_isolated = await_child_setup(netp[0]) == '1';
    p->pid = pid;
    p->ctl = sv[0];
    return 0;
}

static void reap(sandbox_proc_t *p, int timed_out)
{
    if (p->pid > 0) {
        /* The whole group, even when the leader is gone: children it left
         * behind must not outlive it. */
        kill(-p->pid, SIGKILL);
    }
    if (p->pid > 0 && !p->exited) {
        kill(p->pid, SIGKILL);
        int st = 0;
        if (waitpid(p->pid, &st, 0) == p->pid)
            p->status = st;
        p->exited = 1;
        p->timed_out = timed_out;
    }
    if (p->ctl >= 0) {
        close(p->ctl);
        p->ctl = -1;
    }
}

int sandbox_read_line(sandbox_proc_t *p, char *reply, size_t n, double timeout_s)
{
    if (p->ctl < 0)
        return -1;
    double t0 = clock_mono_s();
    size_t len = 0;
    for (;;) {
        double left = timeout_s - (clock_mono_s() - t0);
        if (left <= 0) {
            reap(p, 1);
            return -1;
        }
        struct pollfd pf = {p->ctl, POLLIN, 0};
        int r = poll(&pf, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        char c;
        ssize_t got = read(p->ctl, &c, 1);
        if (got <= 0) {
            if (got < 0 && errno == EINTR)
                continue;
            /* EOF: the runner died, or closed its end and lives on: give it
             * a moment to finish dying, then kill the group regardless. */
            int st = 0;
            for (int i = 0; i < 50 && !p->exited; i++) {
                if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                    p->status = st;
                    p->exited = 1;
                } else {
                    usleep(10000);
                }
            }
            reap(p, !p->exited);
            return -1;
        }
        if (c == '\n')
            break;
        if (len + 1 < n)
            reply[len++] = c;
    }
    reply[len] = 0;
    return 0;
}

int sandbox_request(sandbox_proc_t *p, const char *line, char *reply, size_t n, double timeout_s)
{
    if (p->ctl < 0)
        return -1;
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t w = send(p->ctl, line + off, len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            sandbox_read_line(p, reply, n, 1.0);
            reap(p, 0);
            return -1;
        }
        off += (size_t)w;
    }
    if (len == 0 || line[len - 1] != '\n')
        send(p->ctl, "\n", 1, MSG_NOSIGNAL);
    return sandbox_read_line(p, reply, n, timeout_s);
}

void sandbox_kill(sandbox_proc_t *p)
{
    if (p->ctl >= 0 && !p->exited)
        send(p->ctl, "quit\n", 5, MSG_NOSIGNAL);
    reap(p, 0);
}

void sandbox_describe_status(int status, int timed_out, double timeout_s, char *buf, size_t n)
{
    if (timed_out)
        snprintf(buf, n, "timed out after %.0f s (the process group was killed)", timeout_s);
    else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *why = sig == SIGXCPU   ? " - CPU-time limit exceeded"
                          : sig == SIGXFSZ ? " - output or file-size limit exceeded"
                          : sig == SIGSYS  ? " - forbidden system call"
                          : sig == SIGKILL ? " - killed (memory or time limit?)"
                                           : "";
        snprintf(buf, n, "crashed: signal %d (%s)%s", sig, strsignal(sig), why);
    } else if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d in the middle of a run (did the kernel call exit()?)",
                 WEXITSTATUS(status));
    else
        snprintf(buf, n, "died (status 0x%x)", status);
}

void sandbox_describe_death(const sandbox_proc_t *p, double timeout_s, char *buf, size_t n)
{
    sandbox_describe_status(p->status, p->timed_out, timeout_s, buf, n);
    char *tail = read_capped(p->log_path, 600);
    if (tail && *tail) {
        size_t len = strlen(buf);
        /* Last lines of the child's own output, on one line. */
        for (char *c = tail; *c; c++)
            if (*c == '\n' || *c == '\r' || *c == '\t')
                *c = ' ';
        snprintf(buf + len, n - len, "; output: ...%s", tail + (strlen(tail) > 300 ? strlen(tail) - 300 : 0));
    }
    free(tail);
}
