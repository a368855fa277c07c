/*
 * runner_main.c -- emile-runner: the process that hosts ONE kernel (a
 * candidate or a reference) for the worker, or none (--null: the worker's
 * yardstick for the round trip of its commands).  Started by the worker
 * inside the sandbox (new pid, mount, IPC and network namespaces where the
 * kernel allows them, a session of its own, resource limits, a private
 * directory); it then drops root, sizes its device, confines its file
 * system view (Landlock), installs the seccomp filters, loads the kernel
 * and obeys line commands on the control socket.  The reference and the
 * candidates live in different runners with different arenas, so a
 * candidate can neither call nor read the reference.
 *
 *   emile-runner CTL_FD ARENA_FD BACKEND KERNEL_SO|--null [--no-seccomp] [--no-landlock] [--user UID]
 *
 * (--no-seccomp and --no-landlock: for a profiler that injects code into
 * the runner and talks to its host, on a kernel already validated.)
 *
 * Nothing the runner says is believed because it says it: the kernel shares
 * this address space and may rewrite any of it.  The worker times every
 * command with its own clock, reads outputs from its own mapping of the
 * arena (cpu), parses every reply strictly and checks the runner's CPU
 * clock from outside.  What the runner reports (the kernel's time inside
 * the call, its threads' CPU time) is cross-checked against those.
 *
 * Greeting, before the kernel is loaded (so still the runner's own words):
 *   init seccomp=S landlock=ABI uid=UID omp=passive|user pinned=0|1 unmask=0|1 flush=BYTES
 *        flush_source=TEXT...
 * then, once it is loaded: "ready", or "fatal message".
 *
 * Commands (one line each; NONCE is the worker's random token, echoed so a
 * stale or forged line is recognised):
 *   bind NONCE SLOT NPARAMS {NAME VALUE}* NTENSORS
 *        {NAME DTYPE NDIM SHAPE.. STRIDES.. OFFSET BYTES IS_OUT SNAP_OFFSET GUARD}*
 *   upload NONCE OFFSET BYTES        host arena -> device arena
 *   fetch NONCE OFFSET BYTES         device arena -> host arena (same offset)
 *   prep NONCE SLOT FLUSH            poison the slot's outputs; cpu: flush the
 *                                    caches now; cuda: queue the L2 flush for
 *                                    the next run; then synchronise (not timed)
 *   run NONCE SLOT [KEY]             the timed call only; with KEY (32 hex
 *                                    digits), first the slot's inputs XORed
 *                                    with KEY's keystream (util/keystream.h:
 *                                    a masked held-back set; 0: the same pass
 *                                    changing nothing), then the queued flush
 *                                    -> ok NONCE RC ELAPSED_NS CPU_NS ESCAPED
 *   snap NONCE SLOT                  each output with its guards -> its
 *                                    snapshot offset in the host arena
 *   launches NONCE                   (cuda) the launches of the last run
 *   ping NONCE                       -> ok NONCE
 *   quit
 * Replies: "ok NONCE ..." or "err NONCE message".  A fatal event (forbidden
 * system call, a fatal signal) is reported as "fatal message" before exiting.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "device.h"
#include "emile.h"
#include "launches.h"
#include "sandbox/landlock.h"
#include "sandbox/seccomp_filter.h"

#define MAX_SLOTS 8
#define MAX_TENSORS 16
#define MAX_PARAMS 32
#define LINE_MAX_LEN 8192

typedef struct slot {
    int bound;
    emile_tensor_t tensors[MAX_TENSORS];
    char tnames[MAX_TENSORS][32];
    size_t off[MAX_TENSORS], bytes[MAX_TENSORS], snap[MAX_TENSORS], guard[MAX_TENSORS];
    int is_out[MAX_TENSORS];
    int n_tensors;
    emile_param_t params[MAX_PARAMS];
    char pnames[MAX_PARAMS][32];
    int n_params;
} slot_t;

static int g_ctl = -1;
static slot_t g_slots[MAX_SLOTS];
static int g_flush_pending;          /* queued_flush: the next run starts with a flush */

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(g_ctl, buf + off, (size_t)(n - off));
        if (w <= 0) {
            if (errno == EINTR)
                continue;
            _exit(97);
        }
        off += w;
    }
}

/* Write msg to the control socket and stderr (async-signal-safe). */
static void say_fatal(const char *msg, size_t n)
{
    ssize_t w1 = write(g_ctl, msg, n);
    ssize_t w2 = write(2, msg, n);
    (void)w1;
    (void)w2;
}

/* SIGSYS from the seccomp filter: name the call and leave. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    char msg[640], what[400] = "";
    const char *name = seccomp_syscall_name(si->si_syscall);
#if defined(__x86_64__)
    const greg_t *g = uc ? ((ucontext_t *)uc)->uc_mcontext.gregs : NULL;
    if (g && (si->si_syscall == SYS_mmap || si->si_syscall == SYS_mprotect || si->si_syscall == SYS_pkey_mprotect)) {
        long prot = (long)g[REG_RDX];
        long flags = si->si_syscall == SYS_mmap ? (long)g[REG_R10] : 0;
        if ((prot & PROT_WRITE) || (flags & MAP_ANONYMOUS) || si->si_syscall != SYS_mmap)
            name = si->si_syscall == SYS_mmap
                       ? "mmap (anonymous or writable executable memory: code that no file backs)"
                       : "mprotect (memory made executable: code that no file backs, or loaded at run time)";
        else
            name = "mmap (executable memory: the kernel loaded code at run time)";
    }
    /* mmap(addr, len, prot, flags, fd, off): name the file being mapped. */
    if (g && si->si_syscall == SYS_mmap) {
        long fd = (long)g[REG_R8];
        char link[64];
        int ln = snprintf(link, sizeof link, "/proc/self/fd/%ld", fd);
        if (fd >= 0 && ln > 0) {
            ssize_t r = readlink(link, what + 2, sizeof what - 3);
            if (r > 0) {
                what[0] = ':';
                what[1] = ' ';
                what[2 + r] = 0;
            }
        }
    }
#endif
    int n = snprintf(msg, sizeof msg, "fatal forbidden system call: %s (nr %d)%s\n", name, si->si_syscall, what);
    if (n > 0)
        say_fatal(msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1));
    _exit(98);
}

/* The first process of a pid namespace ignores the signals it sends itself
 * with their default action (abort()'s SIGABRT, a file-size limit's
 * SIGXFSZ): as pid 1, the runner gives them back their usual end, and
 * says which signal it was. */
static void on_fatal_signal(int sig)
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "fatal killed by signal %d (%s)\n", sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    if (n > 0)
        say_fatal(msg, (size_t)n);
    _exit(128 + sig);
}

static void act_as_init(void)
{
    static const int sigs[] = {SIGABRT, SIGTERM, SIGINT,  SIGHUP,    SIGQUIT, SIGXCPU,
                               SIGXFSZ, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* One command line from the control socket (peeked, then taken up to its
 * newline: two calls, not one per byte).  Its length, or -1 at the end. */
static int read_line(int fd, char *buf, size_t n)
{
    size_t len = 0;
    for (;;) {
        char tmp[LINE_MAX_LEN];
        ssize_t got = recv(fd, tmp, sizeof tmp, MSG_PEEK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return len ? (int)len : -1;
        char *nl = memchr(tmp, '\n', (size_t)got);
        size_t take = nl ? (size_t)(nl - tmp) + 1 : (size_t)got;
        ssize_t k = recv(fd, tmp, take, 0);
        if (k <= 0)
            continue;
        size_t data = nl && (size_t)k == take ? (size_t)k - 1 : (size_t)k;
        for (size_t i = 0; i < data && len + 1 < n; i++)
            buf[len++] = tmp[i];
        if (nl && (size_t)k == take)
            break;
    }
    buf[len] = 0;
    return (int)len;
}

/* ---- executable mappings ---------------------------------------------- */

/* Executable mappings: a kernel that loads another shared object at run
 * time (e.g. the reference), or makes code in memory no file backs, is
 * rejected.  Baselines: the file paths, and the anonymous executable
 * ranges (none on cpu; the CUDA driver may have some), seen before. */
#define MAX_MAPS 256
typedef struct exec_maps {
    int n_files, n_anon;
    char files[MAX_MAPS][512];
    char anon[32][64];          /* "start-end" */
} exec_maps_t;

static exec_maps_t g_baseline;

static int scan_exec_maps(exec_maps_t *m)
{
    m->n_files = m->n_anon = 0;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char range[64] = {0}, perms[8] = {0}, path[512] = {0};
        if (sscanf(line, "%63s %7s %*s %*s %*s %511[^\n]", range, perms, path) < 2)
            continue;
        if (perms[2] != 'x')
            continue;
        if (path[0] != '/') {
            /* [vdso] and [vsyscall] are the kernel's own. */
            if (strcmp(path, "[vdso]") != 0 && strcmp(path, "[vsyscall]") != 0 && strcmp(path, "[uprobes]") != 0 &&
                m->n_anon < 32)
                snprintf(m->anon[m->n_anon++], 64, "%s", range);
            continue;
        }
        /* A binary replaced on disk (a rebuild) shows as "PATH (deleted)". */
        char *del = strstr(path, " (deleted)");
        if (del)
            *del = 0;
        int dup = 0;
        for (int i = 0; i < m->n_files; i++)
            dup |= strcmp(m->files[i], path) == 0;
        if (!dup && m->n_files < MAX_MAPS)
            snprintf(m->files[m->n_files++], 512, "%s", path);
    }
    fclose(f);
    return 0;
}

/* Libraries a kernel may legitimately bring in when it is loaded: the
 * compiler's and CUDA's runtimes (its DT_NEEDED entries), matched on the
 * whole name ("librt" does not admit librtmp.so). */
static int runtime_library(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *ok[] = {"libgomp", "libm", "libstdc++", "libgcc_s", "libcudart", "libcuda", "libnvidia",
                        "libc", "libdl", "libpthread", "librt", "ld-linux-x86-64", "ld-linux", "libmvec"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t l = strlen(ok[i]);
        if (strncmp(base, ok[i], l) == 0 && (base[l] == '.' || base[l] == '-'))
            return 1;
    }
    return 0;
}

/* Code that appeared since the baseline ("anonymous executable memory
 * RANGE", or a file not known before and not allowed by `allowed`), or
 * NULL. */
static const char *new_exec_code(int (*allowed)(const char *path), const char *self)
{
    static exec_maps_t now;
    static char what[320];
    if (scan_exec_maps(&now) != 0)
        return NULL;
    for (int i = 0; i < now.n_anon; i++) {
        int known = 0;
        for (int j = 0; j < g_baseline.n_anon && !known; j++)
            known = strcmp(now.anon[i], g_baseline.anon[j]) == 0;
        if (!known) {
            snprintf(what, sizeof what, "anonymous executable memory at %s (code that no file backs)", now.anon[i]);
            return what;
        }
    }
    for (int i = 0; i < now.n_files; i++) {
        int known = (self && strcmp(now.files[i], self) == 0) || (allowed && allowed(now.files[i]));
        for (int j = 0; j < g_baseline.n_files && !known; j++)
            known = strcmp(now.files[i], g_baseline.files[j]) == 0;
        if (!known) {
            snprintf(what, sizeof what, "%s", now.files[i]);
            return what;
        }
    }
    return NULL;
}

/* The device's driver's libraries (device.h), set at start-up. */
static int (*g_driver_code)(const char *path);

static int driver_or_runtime_library(const char *path)
{
    return (g_driver_code && g_driver_code(path)) || runtime_library(path);
}

/* ---- commands ------------------------------------------------------------ */

static int parse_bind(char *save, device_t *dev, char *err, size_t n)
{
    char *tok;
#define NEXT() (tok = strtok_r(NULL, " ", &save))
    if (!NEXT()) goto bad;
    int s = atoi(tok);
    if (s < 0 || s >= MAX_SLOTS) goto bad;
    slot_t *sl = &g_slots[s];
    memset(sl, 0, sizeof *sl);
    if (!NEXT()) goto bad;
    sl->n_params = atoi(tok);
    if (sl->n_params < 0 || sl->n_params > MAX_PARAMS) goto bad;
    for (int i = 0; i < sl->n_params; i++) {
        if (!NEXT()) goto bad;
        snprintf(sl->pnames[i], 32, "%s", tok);
        if (!NEXT()) goto bad;
        sl->params[i].name = sl->pnames[i];
        sl->params[i].value = strtod(tok, NULL);
    }
    if (!NEXT()) goto bad;
    sl->n_tensors = atoi(tok);
    if (sl->n_tensors < 1 || sl->n_tensors > MAX_TENSORS) goto bad;
    for (int t = 0; t < sl->n_tensors; t++) {
        emile_tensor_t *tt = &sl->tensors[t];
        if (!NEXT()) goto bad;
        snprintf(sl->tnames[t], 32, "%s", tok);
        tt->name = sl->tnames[t];
        if (!NEXT()) goto bad;
        tt->dtype = atoi(tok);
        if (!NEXT()) goto bad;
        tt->ndim = atoi(tok);
        if (tt->ndim < 1 || tt->ndim > EMILE_MAX_DIMS) goto bad;
        for (int d = 0; d < tt->ndim; d++) {
            if (!NEXT()) goto bad;
            tt->shape[d] = strtoll(tok, NULL, 10);
        }
        for (int d = 0; d < tt->ndim; d++) {
            if (!NEXT()) goto bad;
            tt->strides[d] = strtoll(tok, NULL, 10);
        }
        if (!NEXT()) goto bad;
        sl->off[t] = strtoull(tok, NULL, 10);
        if (!NEXT()) goto bad;
        sl->bytes[t] = strtoull(tok, NULL, 10);
        if (!NEXT()) goto bad;
        sl->is_out[t] = atoi(tok);
        if (!NEXT()) goto bad;
        sl->snap[t] = strtoull(tok, NULL, 10);
        if (!NEXT()) goto bad;
        sl->guard[t] = strtoull(tok, NULL, 10);
        if (sl->off[t] + sl->bytes[t] + sl->guard[t] > dev->bytes ||
            sl->snap[t] + sl->bytes[t] + 2 * sl->guard[t] > dev->bytes || sl->off[t] < sl->guard[t])
            goto bad;
        tt->data = dev->ptr(dev, sl->off[t]);
    }
    sl->bound = 1;
    return 0;
bad:
    snprintf(err, n, "malformed bind command");
    return -1;
#undef NEXT
}

/* The CPU time of every thread of this process, summed (ns).  Each
 * thread's own clock, not the process clock: without a CPU-time rlimit the
 * process clock does not see other threads' time since their last tick,
 * and with one it moves in whole ticks -- either way 0 or 2.35 cores for a
 * 100 us kernel.  A thread's clock read by another thread of the process
 * is exact (the scheduler brings it up to date). */
static double threads_cpu_ns(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long tid = atol(e->d_name);
        if (tid <= 0)
            continue;
        /* MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) of the kernel's uapi. */
        clockid_t c = (clockid_t)((~(unsigned long)tid << 3) | 6);
        struct timespec ts;
        if (clock_gettime(c, &ts) == 0)
            sum += (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
    }
    closedir(d);
    return sum;
}

static double process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static emile_args_t args_for(device_t *dev, slot_t *sl, emile_tensor_t *copy)
{
    /* A kernel may scribble over the descriptors: give it a copy. */
    memcpy(copy, sl->tensors, sizeof sl->tensors);
    emile_args_t args = {
        .abi_version = EMILE_ABI_VERSION,
        .n_tensors = sl->n_tensors,
        .tensors = copy,
        .n_params = sl->n_params,
        .params = sl->params,
        .stream = dev->stream,
    };
    return args;
}

/* prep: poison every output, flush (now, or queued with the next run),
 * then wait until the device is idle.  Not timed. */
static int do_prep(device_t *dev, slot_t *sl, int flush, char *err, size_t n)
{
    for (int i = 0; i < sl->n_tensors; i++)
        if (sl->is_out[i] && dev->poison(dev, sl->off[i], sl->bytes[i], err, n) != 0)
            return -1;
    if (dev->queued_flush)
        g_flush_pending = flush;
    else if (flush && dev->flush(dev, err, n) != 0)
        return -1;
    return dev->healthy(dev, err, n);
}

/* run: the timed call and nothing else (a queued flush first, as before
 * every timed call: it keeps the GPU busy while the kernel's host code
 * prepares its launches). */
static int do_run(device_t *dev, emile_kernel_fn fn, slot_t *sl, const keystream_key_t *key, run_timing_t *t,
                  char *err, size_t n)
{
    emile_tensor_t copy[MAX_TENSORS];
    emile_args_t args = args_for(dev, sl, copy);
    /* The inputs' mask off, before the flush: the pass leaves them in the
     * cache, which the flush then empties, as for every timed call. */
    for (int i = 0; key && i < sl->n_tensors; i++)
        if (!sl->is_out[i] && (!dev->unmask || dev->unmask(dev, sl->off[i], sl->bytes[i], *key, err, n) != 0)) {
            if (!dev->unmask)
                snprintf(err, n, "this device cannot unmask a set");
            return -1;
        }
    if (dev->queued_flush && g_flush_pending && dev->flush(dev, err, n) != 0)
        return -1;
    g_flush_pending = 0;
    double c0 = dev->cpu_time ? threads_cpu_ns() : 0, p0 = dev->cpu_time ? process_cpu_ns() : 0;
    if (dev->timed_call(dev, fn, &args, t, err, n) != 0)
        return -1;
    if (dev->cpu_time) {
        /* Live threads' own clocks are exact; threads that ended during the
         * call are only in the process clock (exact for them, and for
         * threads that are not running now: OpenMP's sleep between
         * regions). The larger of the two. */
        double by_thread = threads_cpu_ns() - c0, by_process = process_cpu_ns() - p0;
        t->cpu_ns = by_thread > by_process ? by_thread : by_process;
    }
    return dev->healthy(dev, err, n);
}

static int do_snap(device_t *dev, slot_t *sl, char *err, size_t n)
{
    for (int i = 0; i < sl->n_tensors; i++)
        if (sl->is_out[i] &&
            dev->download(dev, sl->off[i] - sl->guard[i], sl->bytes[i] + 2 * sl->guard[i], sl->snap[i], err, n) != 0)
            return -1;
    return 0;
}

/* The kernel of --null: does nothing, launches nothing. */
static int null_kernel(const emile_args_t *args)
{
    (void)args;
    return EMILE_OK;
}

static slot_t *slot_arg(char **save)
{
    char *a = strtok_r(NULL, " ", save);
    int s = a ? atoi(a) : -1;
    return s >= 0 && s < MAX_SLOTS && g_slots[s].bound ? &g_slots[s] : NULL;
}

/* The command loop; returns the exit status. */
static int serve(device_t *dev, emile_kernel_fn fn)
{
    char line[LINE_MAX_LEN], err[512];
    while (read_line(g_ctl, line, sizeof line) >= 0) {
        char *save = NULL;
        char *cmd = strtok_r(line, " ", &save);
        if (!cmd)
            continue;
        if (strcmp(cmd, "quit") == 0)
            break;
        char *nonce = strtok_r(NULL, " ", &save);
        if (!nonce) {
            reply("err - missing nonce");
            continue;
        }
        err[0] = 0;
        if (strcmp(cmd, "bind") == 0) {
            if (parse_bind(save, dev, err, sizeof err) == 0)
                reply("ok %s", nonce);
            else
                reply("err %s %s", nonce, err);
        } else if (strcmp(cmd, "upload") == 0 || strcmp(cmd, "fetch") == 0) {
            char *a = strtok_r(NULL, " ", &save), *b = strtok_r(NULL, " ", &save);
            size_t off = a ? strtoull(a, NULL, 10) : 0, bytes = b ? strtoull(b, NULL, 10) : 0;
            if (!a || !b || off > dev->bytes || bytes > dev->bytes - off) {
                reply("err %s bad range", nonce);
                continue;
            }
            int rc = cmd[0] == 'u' ? dev->upload(dev, off, bytes, err, sizeof err)
                                   : dev->download(dev, off, bytes, off, err, sizeof err);
            if (rc == 0)
                reply("ok %s", nonce);
            else
                reply("err %s %s", nonce, err);
        } else if (strcmp(cmd, "prep") == 0) {
            slot_t *sl = slot_arg(&save);
            char *f = strtok_r(NULL, " ", &save);
            if (!sl || !f) {
                reply("err %s bad prep command", nonce);
                continue;
            }
            if (do_prep(dev, sl, atoi(f), err, sizeof err) == 0)
                reply("ok %s", nonce);
            else {
                reply("err %s %s", nonce, err);
                if (dev->sticky_errors)
                    return 6;
            }
        } else if (strcmp(cmd, "run") == 0) {
            slot_t *sl = slot_arg(&save);
            char *k = strtok_r(NULL, " ", &save);
            keystream_key_t key = {0, 0};
            if (!sl || (k && keystream_parse(k, &key) != 0) || strtok_r(NULL, " ", &save)) {
                reply("err %s bad run command", nonce);
                continue;
            }
            run_timing_t t = {0};
            if (do_run(dev, fn, sl, k ? &key : NULL, &t, err, sizeof err) != 0) {
                reply("err %s %s", nonce, err);
                if (dev->sticky_errors)
                    return 6;
                continue;
            }
            /* Without a driver the filter forbids new executable memory
             * outright; a driver maps as it pleases, so there a scan looks. */
            const char *foreign = dev->driver_code ? new_exec_code(dev->driver_code, NULL) : NULL;
            if (foreign) {
                reply("err %s the kernel loaded code at run time: %s", nonce, foreign);
                continue;
            }
            reply("ok %s %d %.0f %.0f %d", nonce, t.rc, t.elapsed_ns, t.cpu_ns, t.escaped);
        } else if (strcmp(cmd, "snap") == 0) {
            slot_t *sl = slot_arg(&save);
            if (!sl) {
                reply("err %s bad snap command", nonce);
                continue;
            }
            if (do_snap(dev, sl, err, sizeof err) == 0)
                reply("ok %s", nonce);
            else
                reply("err %s %s", nonce, err);
        } else if (strcmp(cmd, "ping") == 0) {
            reply("ok %s", nonce);
        } else if (strcmp(cmd, "launches") == 0) {
            /* Up to 8 launches of the last run, one line. */
            const launch_record_t *l = NULL;
            int nl = dev->launches ? dev->launches(&l) : 0;
            char out[3800];
            size_t off = (size_t)snprintf(out, sizeof out, "%d", nl);
            for (int i = 0; i < nl && i < 8 && off < sizeof out - 400; i++)
                off += (size_t)snprintf(out + off, sizeof out - off, " %.200s %u %u %u %u %u %u %zu %zu %zu %d %d",
                                        l[i].name, l[i].grid[0], l[i].grid[1], l[i].grid[2], l[i].block[0],
                                        l[i].block[1], l[i].block[2], l[i].dyn_smem, l[i].static_smem, l[i].local,
                                        l[i].regs, l[i].other_stream);
            reply("ok %s %s", nonce, out);
        } else {
            reply("err %s unknown command %s", nonce, cmd);
        }
    }
    return 0;
}

/* ---- start-up ------------------------------------------------------------ */

/* The file system the kernel may see: the system trees, its own directory
 * and the directories of every library mapped so far (the CUDA runtime and
 * driver wherever they are installed), LD_LIBRARY_PATH. */
static int confine(int gpu_driver, char *err, size_t n)
{
    static char dirs[SANDBOX_FS_EXTRA][256], cwd[PATH_MAX], exe[PATH_MAX], store[4096];
    static exec_maps_t maps;
    sandbox_fs_t fs;
    memset(&fs, 0, sizeof fs);
    if (getcwd(cwd, sizeof cwd))
        fs.own_dir = cwd;
    fs.devices = gpu_driver;
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[el > 0 ? el : 0] = 0;
    scan_exec_maps(&maps);
    int k = 0;
    for (int i = 0; i < maps.n_files && k < SANDBOX_FS_EXTRA / 2; i++) {
        /* Not the runner's own directory (a test keeps its copy of the
         * runner beside the worker's directories), nor any directory above
         * our own. */
        if (strcmp(maps.files[i], exe) == 0)
            continue;
        snprintf(dirs[k], sizeof dirs[k], "%s", maps.files[i]);
        char *slash = strrchr(dirs[k], '/');
        if (!slash || slash == dirs[k])
            continue;
        *slash = 0;
        size_t dl = strlen(dirs[k]);
        if (strncmp(cwd, dirs[k], dl) == 0 && (cwd[dl] == '/' || cwd[dl] == 0))
            continue;
        int dup = 0;
        for (int j = 0; j < k; j++)
            dup |= strcmp(dirs[j], dirs[k]) == 0;
        if (!dup) {
            fs.extra_ro[k] = dirs[k];
            k++;
        }
    }
    sandbox_fs_add_list(&fs, getenv("LD_LIBRARY_PATH"), store, sizeof store);
    return sandbox_landlock_apply(&fs, err, n);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: emile-runner CTL_FD ARENA_FD BACKEND KERNEL_SO|--null [--no-seccomp] [--user UID]\n"
                        "(started by `emile worker`, not by hand)\n");
        return 2;
    }
    g_ctl = atoi(argv[1]);
    int arena_fd = atoi(argv[2]);
    const char *backend = argv[3], *so_path = argv[4];
    int use_seccomp = 1, use_landlock = 1, null_kernel_only = strcmp(so_path, "--null") == 0;
    device_t *dev = device_find(backend);
    long uid = -1;
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--no-seccomp") == 0)
            use_seccomp = 0;
        else if (strcmp(argv[i], "--no-landlock") == 0)
            use_landlock = 0;
        else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
            uid = atol(argv[++i]);
    }
    if (getpid() == 1)
        act_as_init();
    char err[512] = {0};
    struct stat st;
    if (fstat(arena_fd, &st) != 0) {
        reply("fatal arena: %s", strerror(errno));
        return 3;
    }
    uint8_t *arena = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, arena_fd, 0);
    if (arena == MAP_FAILED) {
        reply("fatal mmap arena: %s", strerror(errno));
        return 3;
    }
    if (uid >= 0 && geteuid() == 0) {
        if (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0) {
            reply("fatal cannot drop privileges to uid %ld: %s", uid, strerror(errno));
            return 3;
        }
    }
    /* Die with the worker (set after the uid change, which clears it).  In
     * a pid namespace getppid() is 0 from the start, and stays so. */
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        return 7;
    /* Not dumpable: no other process of the sandbox user can open our
     * /proc/PID/mem, and we cannot open theirs because they did the same. */
    if (!getenv("EMILE_RUNNER_DUMPABLE"))
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (int i = 0; dev && dev->env && dev->env[i] && dev->env[i + 1]; i += 2)
        setenv(dev->env[i], dev->env[i + 1], 1);
    /* OpenMP threads sleep between parallel regions rather than spin (set
     * before the kernel's libgomp reads it, unless the user chose): a
     * spinning thread makes the runner's CPU clock, which the worker reads,
     * say nothing about the kernel's work, and on a loaded machine it costs
     * the kernel itself far more than a wake-up (docs/SECURITY.md). */
    const char *omp = getenv("OMP_WAIT_POLICY");
    int omp_passive = !omp || strcasecmp(omp, "passive") == 0;
    if (!omp)
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    if (!dev) {
        reply("fatal unknown device %s", backend);
        return 4;
    }
    if (dev->init(dev, arena, (size_t)st.st_size, err, sizeof err) != 0) {
        reply("fatal device init: %s", err[0] ? err : "backend not available");
        return 4;
    }
    char why[256] = "";
    int landlock = use_landlock ? confine(dev->gpu_driver, why, sizeof why) : 0;
    if (landlock < 0) {
        reply("fatal landlock: %s", why);
        return 4;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    int seccomp_on = 0;
    if (use_seccomp) {
        if (seccomp_install(dev->gpu_driver, g_ctl, err, sizeof err) == 0 && seccomp_forbid_anon_exec(err, sizeof err) == 0)
            seccomp_on = 1;
        else
            fprintf(stderr, "emile-runner: %s (continuing without the filter)\n", err);
    }
    reply("init seccomp=%d landlock=%d uid=%d omp=%s pinned=%d unmask=%d flush=%zu flush_source=%s", seccomp_on,
          landlock, (int)geteuid(), omp_passive ? "passive" : "user", dev->host_pinned, dev->can_unmask,
          dev->flush_bytes, dev->flush_source);
    scan_exec_maps(&g_baseline);
    emile_kernel_fn fn = null_kernel;
    if (!null_kernel_only) {
        void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            reply("fatal cannot load kernel: %s", dlerror());
            return 5;
        }
        /* Code its constructors loaded (or made) is as foreign as code
         * loaded later. */
        char resolved[4096];
        const char *self = realpath(so_path, resolved) ? resolved : so_path;
        g_driver_code = dev->driver_code;
        const char *foreign = new_exec_code(driver_or_runtime_library, self);
        if (foreign) {
            reply("fatal the kernel loaded code while being loaded: %s", foreign);
            return 5;
        }
        fn = (emile_kernel_fn)dlsym(h, EMILE_ENTRY_SYMBOL);
        if (!fn) {
            reply("fatal the kernel does not export %s (declare it with EMILE_KERNEL_EXPORT)", EMILE_ENTRY_SYMBOL);
            return 5;
        }
    }
    /* The kernel and its own libraries (libgomp, libm) join the baseline. */
    scan_exec_maps(&g_baseline);
    /* A GPU driver maps memory as it pleases: there code loaded at run
     * time is caught by the mapping scan after each run instead. */
    if (seccomp_on && !dev->driver_code && seccomp_forbid_exec_mappings(0, err, sizeof err) != 0)
        fprintf(stderr, "emile-runner: %s\n", err);
    reply("ready");
    return serve(dev, fn);
}
