/* sandbox.c -- see sandbox.h. */
#include "sandbox/sandbox.h"
#include "sandbox/output_filter.h"
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
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

long sandbox_reference_uid(void)
{
    if (geteuid() != 0)
        return -1;
    const char *env = getenv("EMILE_REFERENCE_UID");
    long cand = sandbox_untrusted_uid();
    if (env && atol(env) > 0 && atol(env) != cand)
        return atol(env);
    /* Below nobody: the first uid no account names. */
    for (long uid = 65533; uid > 60000; uid--)
        if (uid != cand && !getpwuid((uid_t)uid))
            return uid;
    return cand;
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
    l->namespaces = 1;
    l->drop_uid = sandbox_untrusted_uid();
}

void sandbox_describe_layers(int layers, char *buf, size_t n)
{
    static const struct { int bit; const char *name; } names[] = {
        {SANDBOX_PID, "pid"}, {SANDBOX_USER, "user"}, {SANDBOX_PROC, "proc"}, {SANDBOX_IPC, "ipc"},
        {SANDBOX_NET, "net"}, {SANDBOX_LANDLOCK, "landlock"}};
    size_t len = 0;
    if (n)
        buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (layers & names[i].bit && len < n)
            len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "," : "", names[i].name);
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

/* ---- starting an isolated child ------------------------------------------

 * fork_isolated() is fork() with new namespaces: as root, pid + mount + IPC
 * (+ network); as an ordinary user, the same inside a new user namespace
 * that maps only our own uid and gid (the child keeps its identity, with no
 * privilege over anything outside).  A raw clone() does it in one step, so
 * that the child is the first process (pid 1) of its pid namespace and our
 * child at once: its pid here is the one to wait for, to kill and to read
 * the CPU clock of.  (Nothing in the parent is multithreaded when this runs:
 * see the callers.)  Where the kernel refuses (no unprivileged user
 * namespaces, a container without CAP_SYS_ADMIN), it falls back to fewer
 * layers, down to a plain fork, and says so once on stderr. */

static int g_warned_layers;

static void warn_missing_layers(int want_net, int got)
{
    if (g_warned_layers)
        return;
    char miss[200] = "";
    if (!(got & SANDBOX_PID))
        strcat(miss, " a pid namespace (the candidate can see other processes),");
    if ((got & SANDBOX_PID) && !(got & SANDBOX_PROC))
        strcat(miss, " a private /proc,");
    if (want_net && !(got & SANDBOX_NET))
        strcat(miss, " a network namespace,");
    if (!miss[0])
        return;
    miss[strlen(miss) - 1] = 0;
    g_warned_layers = 1;
    fprintf(stderr,
            "emile: warning: untrusted code runs without%s here (%s); seccomp, Landlock and the separate uids "
            "still hold (docs/SECURITY.md, reduced mode)\n",
            miss, geteuid() == 0 ? "no CAP_SYS_ADMIN?" : "unprivileged user namespaces disabled?");
}

static int write_file_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, s, strlen(s));
    close(fd);
    return w == (ssize_t)strlen(s) ? 0 : -1;
}

/* In the new namespaces (the child): map our ids (user namespace), make
 * the mounts private and mount a /proc of the new pid namespace over the
 * old one.  Returns the layers that hold, or -1 when the ids cannot be
 * mapped (the parent then tries without a user namespace). */
static int enter_namespaces(int flags, uid_t uid, gid_t gid)
{
    int got = 0;
    if (flags & CLONE_NEWUSER) {
        /* A worker that is not dumpable (it holds expected outputs) has its
         * /proc/self files owned by root, and could not write its maps:
         * this child is about to exec (which sets it again), and the runner
         * makes itself not dumpable once more before it loads a kernel. */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        char map[64];
        snprintf(map, sizeof map, "%u %u 1", (unsigned)uid, (unsigned)uid);
        int ok = write_file_str("/proc/self/uid_map", map) == 0;
        snprintf(map, sizeof map, "%u %u 1", (unsigned)gid, (unsigned)gid);
        ok = ok && write_file_str("/proc/self/setgroups", "deny") == 0 &&
             write_file_str("/proc/self/gid_map", map) == 0;
        if (!ok)
            return -1;
        got |= SANDBOX_USER;
    }
    if (flags & CLONE_NEWPID)
        got |= SANDBOX_PID;
    if (flags & CLONE_NEWIPC)
        got |= SANDBOX_IPC;
    if (flags & CLONE_NEWNET)
        got |= SANDBOX_NET;
    if ((flags & CLONE_NEWNS) && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
        (flags & CLONE_NEWPID) && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
        got |= SANDBOX_PROC;
    return got;
}

/* fork() with as many namespaces as the kernel grants.  In the child,
 * *got receives the layers; in the parent, nothing (the child reports them
 * with its sync byte).  -1 with errno when even fork fails. */
static pid_t fork_isolated(const sandbox_limits_t *l, int *got)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    int base = SIGCHLD | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | (l->isolate_net ? CLONE_NEWNET : 0);
    int tries[2];
    int nt = 0;
    if (l->namespaces) {
        tries[nt++] = geteuid() == 0 ? base : base | CLONE_NEWUSER;
        if (geteuid() != 0)
            tries[nt++] = base;           /* a container may allow it without a user namespace */
    }
    for (int i = 0; i < nt; i++) {
        /* The child says whether its ids could be mapped before anything
         * else happens: one byte, or none when it gave up. */
        int mp[2];
        if (pipe2(mp, O_CLOEXEC) != 0)
            break;
        pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)tries[i], NULL, NULL, NULL, 0UL);
        if (pid == 0) {
            close(mp[0]);
            *got = enter_namespaces(tries[i], uid, gid);
            if (*got < 0)
                _exit(124);
            ssize_t w = write(mp[1], "1", 1);
            (void)w;
            close(mp[1]);
            return 0;
        }
        close(mp[1]);
        char c = 0;
        ssize_t r = -1;
        if (pid > 0)
            do
                r = read(mp[0], &c, 1);
            while (r < 0 && errno == EINTR);
        close(mp[0]);
        if (pid > 0 && r == 1)
            return pid;
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    pid_t pid = fork();
    if (pid == 0)
        *got = l->isolate_net && unshare(CLONE_NEWNET) == 0 ? SANDBOX_NET : 0;
    return pid;
}

/* In the child, between fork and exec (single-threaded parent: plain
 * libc calls are safe here).  alive_fd: the read end of a pipe whose write
 * end only the parent holds (until our sync byte arrives): hung up means
 * the parent is gone -- getppid() cannot say so in a new pid namespace. */
static void child_setup(const char *dir, int log_fd, int keep1, int keep2, int keep3, int keep4, int alive_fd)
{
    /* A session of its own, not just a process group: no controlling
     * terminal, so nothing in it can open /dev/tty (to push keystrokes
     * into the user's shell with TIOCSTI, or read from it) or be stopped
     * by terminal signals.  pgid == pid still: kill(-pid) ends it all. */
    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    struct pollfd pf = {alive_fd, 0, 0};
    if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR)))
        _exit(126);                       /* the parent is already gone */
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
        if (fd != keep1 && fd != keep2 && fd != keep3 && fd != keep4 && fd != alive_fd)
            close(fd);
    sandbox_scrub_env();
    setenv("HOME", dir, 1);
    setenv("TMPDIR", dir, 1);
}

/* The last step before exec: tell the parent which layers hold (one byte,
 * SANDBOX_* bits + 64, so that it is never 0). */
static void child_report(int sync_fd, int layers)
{
    char c = (char)(64 + (layers & 63));
    ssize_t w = write(sync_fd, &c, 1);
    (void)w;
    close(sync_fd);
}

/* The parent's side: wait until the child is set up (or died trying);
 * its layers, or -1 when it died first.  Then the alive pipe closes. */
static int await_child_setup(int sync_rd, int alive_wr)
{
    char c = 0;
    ssize_t r;
    do
        r = read(sync_rd, &c, 1);
    while (r < 0 && errno == EINTR);
    close(sync_rd);
    close(alive_wr);
    return r == 1 && c >= 64 ? c - 64 : -1;
}

/* A child in a user namespace of its own (an ordinary user's sandbox):
 * since Linux 5.14 RLIMIT_NPROC counts the tasks of that namespace's uid
 * (ucounts per user namespace), so it bounds the sandbox's own processes
 * and threads, not the user's desktop -- and it must: every thread takes a
 * pid of the host's (pid_max is 32,768 on many machines), and without it
 * tests/kernels/cpu/thread_hoard.c held 6,000 of them as an ordinary user.
 * Earlier kernels count every process of the uid: no limit there. */
static void limit_tasks_in_user_ns(const sandbox_limits_t *l, int layers)
{
    struct utsname u;
    int major = 0, minor = 0;
    if (l->nproc <= 0 || !(layers & SANDBOX_USER) || uname(&u) != 0 ||
        sscanf(u.release, "%d.%d", &major, &minor) != 2 || major < 5 || (major == 5 && minor < 14))
        return;
    set_limit(RLIMIT_NPROC, (rlim_t)l->nproc);
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
    if (l->nofile > 0)
        set_limit(RLIMIT_NOFILE, (rlim_t)l->nofile);
    if (l->mem_bytes > 0)
        set_limit(RLIMIT_AS, (rlim_t)l->mem_bytes);
    if (l->idle) {
        /* Children inherit it.  An unprivileged process may leave
         * SCHED_IDLE only as far as RLIMIT_NICE lets it raise its
         * priority: 0, soft and hard, keeps it there. */
        struct sched_param sp = {0};
        sched_setscheduler(0, SCHED_IDLE, &sp);
        struct rlimit r = {0, 0};
        setrlimit(RLIMIT_NICE, &r);
    }
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

/* Pipes for the child's sync byte (child -> parent) and the parent's
 * liveness (parent -> child); 0 or -1. */
static int make_sync_pipes(int syncp[2], int alive[2])
{
    if (pipe2(syncp, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(alive, O_CLOEXEC) != 0) {
        close(syncp[0]);
        close(syncp[1]);
        return -1;
    }
    return 0;
}

static void close_pair(int p[2])
{
    close(p[0]);
    close(p[1]);
}

int sandbox_run_layers(const char *dir, char *const argv[], const sandbox_limits_t *l, int *status, int *timed_out,
                       char **log, double *seconds, int *layers, char *err, size_t errlen)
{
    char log_path[1024];
    snprintf(log_path, sizeof log_path, "%s/.cmd.log", dir);
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", log_path, strerror(errno));
        return -1;
    }
    if (l->drop_uid >= 0 && geteuid() == 0 && fchown(log_fd, (uid_t)l->drop_uid, (gid_t)l->drop_uid) != 0) {
        /* Not fatal: the child writes through the inherited descriptor. */
    }
    int syncp[2], alive[2];
    if (make_sync_pipes(syncp, alive) != 0) {
        close(log_fd);
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    double t0 = clock_mono_s();
    int got = 0;
    pid_t pid = fork_isolated(l, &got);
    if (pid < 0) {
        close(log_fd);
        close_pair(syncp);
        close_pair(alive);
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(syncp[0]);
        close(alive[1]);
        child_setup(dir, log_fd, syncp[1], -1, -1, -1, alive[0]);
        if (l->drop_uid >= 0 && geteuid() == 0) {
            if (sandbox_become(l->drop_uid) != 0)
                _exit(125);
            prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);   /* the uid change cleared it */
        }
        sandbox_apply_limits(l);
        limit_tasks_in_user_ns(l, got);
        if (l->fs) {
            char why[256];
            if (sandbox_landlock_apply(l->fs, why, sizeof why) > 0)
                got |= SANDBOX_LANDLOCK;
        }
        child_report(syncp[1], got);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    /* Not setpgid(pid, pid) here: the child's setsid() fails once it
     * leads a group.  Its sync byte says it has its session instead. */
    close(syncp[1]);
    close(alive[0]);
    close(log_fd);
    int lay = await_child_setup(syncp[0], alive[1]);
    if (lay >= 0)
        warn_missing_layers(l->isolate_net, lay);
    if (layers)
        *layers = lay < 0 ? 0 : lay;
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

int sandbox_run(const char *dir, char *const argv[], const sandbox_limits_t *l, int *status, int *timed_out,
                char **log, double *seconds, char *err, size_t errlen)
{
    return sandbox_run_layers(dir, argv, l, status, timed_out, log, seconds, NULL, err, errlen);
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
    int sv[2], syncp[2], alive[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        close(log_fd);
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    if (make_sync_pipes(syncp, alive) != 0) {
        close(log_fd);
        close_pair(sv);
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
    int got = 0;
    pid_t pid = fork_isolated(l, &got);
    if (pid < 0) {
        close(log_fd);
        close_pair(sv);
        close_pair(syncp);
        close_pair(alive);
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(syncp[0]);
        close(alive[1]);
        /* The two descriptors the runner needs survive exec. */
        fcntl(sv[1], F_SETFD, 0);
        fcntl(arena_fd, F_SETFD, 0);
        child_setup(dir, log_fd, sv[1], arena_fd, syncp[1], -1, alive[0]);
        sandbox_apply_limits(l);
        limit_tasks_in_user_ns(l, got);
        child_report(syncp[1], got);
        execvp(args[0], args);
        dprintf(2, "cannot run %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    /* No setpgid(pid, pid) here (see sandbox_run): the sync byte. */
    close(log_fd);
    close(sv[1]);
    close(syncp[1]);
    close(alive[0]);
    int lay = await_child_setup(syncp[0], alive[1]);
    if (lay >= 0)
        warn_missing_layers(l->isolate_net, lay);
    p->layers = lay < 0 ? 0 : lay;
    p->net_isolated = (p->layers & SANDBOX_NET) != 0;
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

/* EOF on the control socket: the runner died, or closed its end and
 * lives on: give it a moment to finish dying, then kill the group
 * regardless. */
static void reap_after_eof(sandbox_proc_t *p)
{
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
        /* Look at what is there, take it up to the end of the line and
         * leave the rest on the socket (a second line is for the caller to
         * notice). */
        char buf[4096];
        ssize_t got = recv(p->ctl, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0) {
            reap_after_eof(p);
            return -1;
        }
        char *nl = memchr(buf, '\n', (size_t)got);
        size_t take = nl ? (size_t)(nl - buf) + 1 : (size_t)got;
        ssize_t k = recv(p->ctl, buf, take, MSG_DONTWAIT);
        if (k <= 0)
            continue;
        size_t data = nl && (size_t)k == take ? (size_t)k - 1 : (size_t)k;
        for (size_t i = 0; i < data && len + 1 < n; i++)
            reply[len++] = buf[i];
        if (nl && (size_t)k == take)
            break;
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
    /* The last lines of the child's own output, on one line, filtered:
     * secrets redacted, control characters escaped, 300 bytes at most. */
    char *tail = read_capped(p->log_path, 4096);
    char *clean = tail && *tail ? output_filter(tail, strlen(tail), 300, OUTPUT_KEEP_TAIL | OUTPUT_ONE_LINE) : NULL;
    if (clean && *clean) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "; output: ...%s", clean);
    }
    free(clean);
    free(tail);
}
