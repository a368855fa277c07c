/*
 * runner_main.c -- emile-runner: the process that hosts ONE kernel (a
 * candidate or a reference) for the worker.  Started by the worker inside
 * the sandbox (process group, resource limits, private directory, no
 * network where the kernel allows it); it then drops root, installs the
 * seccomp filter, loads the kernel and obeys line commands on the control
 * socket.  The reference and the candidates live in different runners with
 * different arenas, so a candidate can neither call nor read the reference.
 *
 *   emile-runner CTL_FD ARENA_FD BACKEND KERNEL_SO [--no-seccomp] [--user UID]
 *
 * Commands (one line each; NONCE is the worker's random token, echoed so a
 * kernel cannot forge a reply it did not see):
 *   bind NONCE SLOT NPARAMS {NAME VALUE}* NTENSORS
 *        {NAME DTYPE NDIM SHAPE.. STRIDES.. OFFSET BYTES IS_OUT SNAP_OFFSET GUARD}*
 *   upload NONCE OFFSET BYTES        host arena -> device arena
 *   fetch NONCE OFFSET BYTES         device arena -> host arena (same offset)
 *   run NONCE SLOT POISON FLUSH      -> ok NONCE RC ELAPSED_NS CPU_NS WALL_NS ESCAPED
 *   quit
 * Replies: "ok NONCE ..." or "err NONCE message".  A fatal event (forbidden
 * system call) is reported as "fatal message" before exiting.
 */
#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#include "device.h"
#include "launches.h"
#include "emile.h"
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

/* SIGSYS from the seccomp filter: name the call and leave. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    char msg[640], what[400] = "";
#if defined(__x86_64__)
    /* mmap(addr, len, prot, flags, fd, off): name the file being mapped. */
    if (si->si_syscall == SYS_mmap && uc) {
        long fd = (long)((ucontext_t *)uc)->uc_mcontext.gregs[REG_R8];
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
    int n = snprintf(msg, sizeof msg, "fatal forbidden system call: %s (nr %d)%s\n",
                     seccomp_syscall_name(si->si_syscall), si->si_syscall, what);
    if (n > 0) {
        ssize_t w1 = write(g_ctl, msg, (size_t)n);
        ssize_t w2 = write(2, msg, (size_t)n);
        (void)w1; (void)w2;
    }
    _exit(98);
}

static int read_line(int fd, char *buf, size_t n)
{
    size_t len = 0;
    while (len + 1 < n) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r == 0)
            return len ? (int)len : -1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (c == '\n')
            break;
        buf[len++] = c;
    }
    buf[len] = 0;
    return (int)len;
}

/* Executable file mappings: a kernel that loads another shared object at
 * run time (e.g. the reference) is rejected. */
static char g_baseline_maps[256][256];
static int g_n_baseline;

static int scan_exec_maps(char (*out)[256], int max)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8] = {0}, path[512] = {0};
        if (sscanf(line, "%*s %7s %*s %*s %*s %511[^\n]", perms, path) < 1)
            continue;
        if (perms[2] != 'x' || path[0] != '/')
            continue;
        /* A binary replaced on disk (a rebuild) shows as "PATH (deleted)". */
        char *del = strstr(path, " (deleted)");
        if (del)
            *del = 0;
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= strcmp(out[i], path) == 0;
        if (!dup && n < max)
            snprintf(out[n++], 256, "%s", path);
    }
    fclose(f);
    return n;
}

/* Libraries a kernel may legitimately bring in when it is loaded: the
 * compiler's and CUDA's runtimes (its DT_NEEDED entries). */
static int runtime_library(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *ok[] = {"libgomp", "libm.", "libm-", "libstdc++", "libgcc_s", "libcudart", "libcuda.",
                        "libnvidia", "libc.", "libc-", "libdl", "libpthread", "librt", "ld-linux", "libmvec"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strncmp(base, ok[i], strlen(ok[i])) == 0)
            return 1;
    return 0;
}

static const char *new_exec_mapping(void)
{
    static char now[256][256];
    int n = scan_exec_maps(now, 256);
    for (int i = 0; i < n; i++) {
        int known = 0;
        for (int j = 0; j < g_n_baseline && !known; j++)
            known = strcmp(now[i], g_baseline_maps[j]) == 0;
        /* The CUDA driver maps its own libraries lazily. */
        if (!known && !strstr(now[i], "libcuda") && !strstr(now[i], "libnvidia") &&
            !strstr(now[i], "libcudart"))
            return now[i];
    }
    return NULL;
}

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

static int do_run(device_t *dev, emile_kernel_fn fn, slot_t *sl, int poison, int flush,
                  run_timing_t *t, char *err, size_t n)
{
    for (int i = 0; i < sl->n_tensors; i++)
        if (sl->is_out[i] && poison && dev->poison(dev, sl->off[i], sl->bytes[i], err, n) != 0)
            return -1;
    if (flush && dev->flush(dev, err, n) != 0)
        return -1;
    emile_args_t args = {
        .abi_version = EMILE_ABI_VERSION,
        .n_tensors = sl->n_tensors,
        .tensors = sl->tensors,
        .n_params = sl->n_params,
        .params = sl->params,
        .stream = dev->stream,
    };
    /* A kernel may scribble over the descriptors: give it a copy. */
    emile_tensor_t copy[MAX_TENSORS];
    memcpy(copy, sl->tensors, sizeof copy);
    args.tensors = copy;
    if (dev->timed_call(dev, fn, &args, t, err, n) != 0)
        return -1;
    /* Snapshot each output with its guards right away: work a kernel left
     * running after it returned is missing from what the worker checks. */
    for (int i = 0; i < sl->n_tensors; i++)
        if (sl->is_out[i] &&
            dev->download(dev, sl->off[i] - sl->guard[i], sl->bytes[i] + 2 * sl->guard[i], sl->snap[i], err, n) != 0)
            return -1;
    return dev->healthy(dev, err, n);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: emile-runner CTL_FD ARENA_FD BACKEND KERNEL_SO [--no-seccomp] [--user UID]\n"
                        "(started by `emile worker`, not by hand)\n");
        return 2;
    }
    g_ctl = atoi(argv[1]);
    int arena_fd = atoi(argv[2]);
    const char *backend = argv[3], *so_path = argv[4];
    int use_seccomp = 1;
    long uid = -1;
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--no-seccomp") == 0)
            use_seccomp = 0;
        else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
            uid = atol(argv[++i]);
    }
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
    /* Die with the worker (set after the uid change, which clears it). */
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        return 7;
    /* Not dumpable: no other process of the sandbox user (another runner,
     * e.g. the reference's) can open our /proc/PID/mem, and we cannot open
     * theirs because they did the same. */
    if (!getenv("EMILE_RUNNER_DUMPABLE"))
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* Load CUDA modules when the kernel is loaded, not at its first launch:
     * the driver's work is done before the exec-mapping filter goes on. */
    if (strcmp(backend, "cuda") == 0)
        setenv("CUDA_MODULE_LOADING", "EAGER", 1);
    device_t *dev = strcmp(backend, "cuda") == 0 ? device_cuda() : device_cpu();
    if (!dev || dev->init(dev, arena, (size_t)st.st_size, err, sizeof err) != 0) {
        reply("fatal device init: %s", err[0] ? err : "backend not available");
        return 4;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    int seccomp_on = 0;
    if (use_seccomp) {
        if (seccomp_install(strcmp(backend, "cuda") == 0, g_ctl, err, sizeof err) == 0)
            seccomp_on = 1;
        else
            fprintf(stderr, "emile-runner: %s (continuing without the filter)\n", err);
    }
    g_n_baseline = scan_exec_maps(g_baseline_maps, 256);
    void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (h) {
        /* Code its constructors loaded is as foreign as code loaded later. */
        char resolved[4096];
        const char *self = realpath(so_path, resolved) ? resolved : so_path;
        static char after[256][256];
        int na = scan_exec_maps(after, 256);
        for (int i = 0; i < na; i++) {
            int known = 0;
            for (int j = 0; j < g_n_baseline && !known; j++)
                known = strcmp(after[i], g_baseline_maps[j]) == 0;
            if (!known && strcmp(after[i], self) != 0 && !runtime_library(after[i])) {
                reply("fatal the kernel loaded code while being loaded: %s", after[i]);
                return 5;
            }
        }
    }
    if (!h) {
        reply("fatal cannot load kernel: %s", dlerror());
        return 5;
    }
    emile_kernel_fn fn = (emile_kernel_fn)dlsym(h, EMILE_ENTRY_SYMBOL);
    if (!fn) {
        reply("fatal the kernel does not export %s (declare it with EMILE_KERNEL_EXPORT)", EMILE_ENTRY_SYMBOL);
        return 5;
    }
    /* The kernel and its own libraries (libgomp, libm) join the baseline. */
    g_n_baseline = scan_exec_maps(g_baseline_maps, 256);
    /* The CUDA driver maps memory as it pleases: on cuda, code loaded at
     * run time is caught by the mapping scan after each run instead. */
    if (seccomp_on && strcmp(backend, "cuda") != 0 && seccomp_forbid_exec_mappings(0, err, sizeof err) != 0)
        fprintf(stderr, "emile-runner: %s\n", err);
    reply("ready seccomp=%d uid=%d", seccomp_on, (int)geteuid());

    char line[LINE_MAX_LEN];
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
            if (!a || !b || off + bytes > dev->bytes) {
                reply("err %s bad range", nonce);
                continue;
            }
            int rc = cmd[0] == 'u' ? dev->upload(dev, off, bytes, err, sizeof err)
                                   : dev->download(dev, off, bytes, off, err, sizeof err);
            if (rc == 0)
                reply("ok %s", nonce);
            else
                reply("err %s %s", nonce, err);
        } else if (strcmp(cmd, "run") == 0) {
            char *a = strtok_r(NULL, " ", &save), *b = strtok_r(NULL, " ", &save), *c = strtok_r(NULL, " ", &save);
            int s = a ? atoi(a) : -1;
            if (s < 0 || s >= MAX_SLOTS || !g_slots[s].bound || !b || !c) {
                reply("err %s bad run command", nonce);
                continue;
            }
            run_timing_t t = {0};
            if (do_run(dev, fn, &g_slots[s], atoi(b), atoi(c), &t, err, sizeof err) != 0) {
                reply("err %s %s", nonce, err);
                /* A device error is sticky: this runner is done. */
                if (strcmp(backend, "cuda") == 0)
                    return 6;
                continue;
            }
            const char *foreign = new_exec_mapping();
            if (foreign) {
                reply("err %s the kernel loaded code at run time: %s", nonce, foreign);
                continue;
            }
            reply("ok %s %d %.0f %.0f %.0f %d", nonce, t.rc, t.elapsed_ns, t.cpu_ns, t.wall_ns, t.escaped);
        } else if (strcmp(cmd, "launches") == 0) {
            /* Up to 8 launches of the last run, one line. */
            const launch_record_t *l = NULL;
            int n = strcmp(backend, "cuda") == 0 ? runner_launches(&l) : 0;
            char out[3800];
            size_t off = (size_t)snprintf(out, sizeof out, "%d", n);
            for (int i = 0; i < n && i < 8 && off < sizeof out - 400; i++)
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
