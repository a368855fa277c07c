/* runner_client.c -- see runner_client.h. */
#include "runner_client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/output_filter.h"
#include "util/clock.h"
#include "util/paths.h"
#include "util/rng.h"

/* Text from the runner into r->msg, filtered (the kernel may have written
 * it: secrets redacted, control characters escaped, size capped). */
static void set_msg(runner_t *r, const char *prefix, const char *text)
{
    char *clean = output_filter(text, strlen(text), 1500, OUTPUT_KEEP_HEAD | OUTPUT_ONE_LINE);
    snprintf(r->msg, sizeof r->msg, "%s%s", prefix, clean ? clean : "");
    free(clean);
}

/* The kernel wrote to the control socket: name it, and stop the runner. */
static int forged(runner_t *r, const char *what, const char *line)
{
    char *clean = output_filter(line, strlen(line), 120, OUTPUT_KEEP_HEAD | OUTPUT_ONE_LINE);
    snprintf(r->msg, sizeof r->msg,
             "the kernel wrote to the runner's control socket (%s: \"%s\"): replies there are the harness's, "
             "and a kernel that forges them is rejected",
             what, clean ? clean : "");
    free(clean);
    r->forged = 1;
    sandbox_kill(&r->proc);
    r->dead = 1;
    return RUNNER_DIED;
}

/* A "fatal ..." line: the runner's last words before it exits. */
static int fatal(runner_t *r, const char *line)
{
    const char *m = line + 6;
    int sig = 0;
    sandbox_kill(&r->proc);
    if (sscanf(m, "killed by signal %d", &sig) == 1 && sig > 0) {
        /* As the describe of a death by that signal would say, with the
         * tail of the runner's output (filtered there). */
        sandbox_proc_t p = r->proc;
        p.status = sig;                 /* a waitpid status: killed by sig */
        p.timed_out = 0;
        sandbox_describe_death(&p, r->timeout_s, r->msg, sizeof r->msg);
    } else {
        set_msg(r, "", m);
    }
    r->dead = 1;
    return RUNNER_DIED;
}

static void died(runner_t *r, double timeout_s)
{
    r->dead = 1;
    sandbox_describe_death(&r->proc, timeout_s, r->msg, sizeof r->msg);
}

/* "key=value" of the init line (value up to the next space). */
static long init_field(const char *line, const char *key, long dflt)
{
    const char *s = strstr(line, key);
    return s ? atol(s + strlen(key)) : dflt;
}

int runner_start(runner_t *r, const backend_t *b, const char *dir, const char *so_path, size_t arena_bytes,
                 const sandbox_limits_t *l)
{
    return runner_start_wrapped(r, b, dir, so_path, arena_bytes, l, NULL, 0);
}

int runner_start_wrapped(runner_t *r, const backend_t *b, const char *dir, const char *so_path,
                         size_t arena_bytes, const sandbox_limits_t *l, const char *const *wrap, int no_seccomp_arg)
{
    memset(r, 0, sizeof *r);
    r->arena_fd = -1;
    r->proc.pid = -1;
    r->proc.ctl = -1;
    r->timeout_s = l->wall_s;
    r->arena_fd = memfd_create("emile-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    /* Sealed size: a kernel cannot shrink the arena under the worker
     * (which would kill the worker with SIGBUS on its next read). */
    if (r->arena_fd < 0 || ftruncate(r->arena_fd, (off_t)arena_bytes) != 0 ||
        fcntl(r->arena_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        snprintf(r->msg, sizeof r->msg, "cannot create the arena (%zu bytes): %s", arena_bytes, strerror(errno));
        return RUNNER_ERR;
    }
    r->arena = mmap(NULL, arena_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->arena_fd, 0);
    if (r->arena == MAP_FAILED) {
        r->arena = NULL;
        snprintf(r->msg, sizeof r->msg, "cannot map the arena (%zu bytes): %s", arena_bytes, strerror(errno));
        return RUNNER_ERR;
    }
    r->arena_bytes = arena_bytes;
    sandbox_limits_t lim = *l;
    /* The arena is mapped in the runner too: it counts against RLIMIT_AS,
     * and so does the cache-flush buffer (sized to fit, device_cpu.c). */
    if (lim.mem_bytes)
        lim.mem_bytes += arena_bytes + ((size_t)256 << 20);
    char uid[32];
    snprintf(uid, sizeof uid, "%ld", l->drop_uid);
    const char *no_seccomp = getenv("EMILE_NO_SECCOMP");
    char *argv[48];
    int k = 0;
    for (int i = 0; wrap && wrap[i] && k < 32; i++)
        argv[k++] = (char *)wrap[i];
    argv[k++] = (char *)emile_runner_path();
    argv[k++] = "{CTL}";
    argv[k++] = "{ARENA}";
    argv[k++] = (char *)b->name;
    argv[k++] = so_path ? (char *)so_path : "--null";
    if ((no_seccomp && *no_seccomp == '1') || no_seccomp_arg)
        argv[k++] = "--no-seccomp";
    if (no_seccomp_arg)
        argv[k++] = "--no-landlock";    /* a profiler's injected code writes where it must */
    if (l->drop_uid >= 0) {
        argv[k++] = "--user";
        argv[k++] = uid;
    }
    argv[k] = NULL;
    char err[512];
    if (sandbox_spawn(dir, argv, r->arena_fd, &lim, &r->proc, err, sizeof err) != 0) {
        snprintf(r->msg, sizeof r->msg, "%s", err);
        return RUNNER_ERR;
    }
    clockid_t c;
    r->cpu_clock_ok = !wrap && clock_getcpuclockid(r->proc.pid, &c) == 0;
    r->cpu_clock = r->cpu_clock_ok ? (long)c : 0;
    char line[1024];
    /* The runner's own greeting, before it loads the kernel. */
    if (sandbox_read_line(&r->proc, line, sizeof line, r->timeout_s + 30) != 0) {
        died(r, r->timeout_s + 30);
        return RUNNER_DIED;
    }
    if (strncmp(line, "fatal ", 6) == 0)
        return fatal(r, line);
    if (strncmp(line, "init ", 5) != 0) {
        set_msg(r, "the runner did not start: ", line);
        runner_stop(r);
        r->dead = 1;
        return RUNNER_DIED;
    }
    r->seccomp = (int)init_field(line, "seccomp=", 0);
    r->landlock = (int)init_field(line, "landlock=", 0);
    r->uid = (int)init_field(line, "uid=", -1);
    r->flush_bytes = (size_t)init_field(line, "flush=", 0);
    r->pinned = init_field(line, " pinned=", 0) == 1;
    r->can_unmask = init_field(line, " unmask=", 0) == 1;
    /* Device memory: every run does the unmask pass (key 0 but for a
     * masked held-back set), so that all runs are measured alike. */
    r->unmask_pass = b->device_memory && r->can_unmask;
    r->omp_passive = strstr(line, "omp=passive") != NULL;
    const char *fs = strstr(line, "flush_source=");
    snprintf(r->flush_source, sizeof r->flush_source, "%s", fs ? fs + 13 : "");
    /* Then the kernel is loaded: its constructors have run by "ready". */
    if (sandbox_read_line(&r->proc, line, sizeof line, r->timeout_s + 30) != 0) {
        died(r, r->timeout_s + 30);
        return RUNNER_DIED;
    }
    if (strncmp(line, "fatal ", 6) == 0)
        return fatal(r, line);
    if (strcmp(line, "ready") != 0)
        return forged(r, "instead of the runner's \"ready\"", line);
    if (runner_unread(r))
        return RUNNER_DIED;
    return RUNNER_OK;
}

int runner_unread(runner_t *r)
{
    if (r->dead || r->proc.ctl < 0)
        return 0;
    struct pollfd pf = {r->proc.ctl, POLLIN, 0};
    if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLIN))
        return 0;
    char buf[200];
    ssize_t k = recv(r->proc.ctl, buf, sizeof buf - 1, MSG_PEEK | MSG_DONTWAIT);
    if (k <= 0)
        return 0;                 /* the runner closed its end: death, seen at the next read */
    buf[k] = 0;
    forged(r, "a line no command asked for", buf);
    return 1;
}

/* Split line into at most max fields (in place); the count. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == max)
            return max + 1;
        f[n++] = t;
    }
    return n;
}

int runner_cmd(runner_t *r, char *out, size_t n, int n_fields, const char *cmd, const char *args)
{
    if (r->dead || r->proc.ctl < 0) {
        if (!r->msg[0])
            snprintf(r->msg, sizeof r->msg, "the runner is gone");
        return RUNNER_DIED;
    }
    /* Anything already waiting was written by no command of ours. */
    if (runner_unread(r))
        return RUNNER_DIED;
    char nonce[24];
    snprintf(nonce, sizeof nonce, "%016llx", (unsigned long long)rng_entropy());
    size_t len = strlen(cmd) + strlen(args) + 64;
    char *line = malloc(len);
    if (!line)
        return RUNNER_ERR;
    snprintf(line, len, "%s %s %s", cmd, nonce, args);
    char reply[4096];
    double w0 = runner_self_wait_ns();
    double t0 = clock_mono_s();
    int rc = sandbox_request(&r->proc, line, reply, sizeof reply, r->timeout_s);
    r->last_outside_ns = (clock_mono_s() - t0) * 1e9;
    double w1 = runner_self_wait_ns();
    r->last_wait_ns = w0 >= 0 && w1 >= w0 ? w1 - w0 : 0;
    free(line);
    if (rc != 0) {
        died(r, r->timeout_s);
        return RUNNER_DIED;
    }
    if (strncmp(reply, "fatal ", 6) == 0)
        return fatal(r, reply);
    /* The reply itself, then nothing more. */
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", reply);
    char *f[40];
    int nf = split(copy, f, 39);
    if (nf >= 2 && strcmp(f[0], "err") == 0 && strcmp(f[1], nonce) == 0) {
        const char *m = reply + 4 + strlen(nonce);
        set_msg(r, "", *m == ' ' ? m + 1 : m);
        return runner_unread(r) ? RUNNER_DIED : RUNNER_ERR;
    }
    if (nf < 2 || strcmp(f[0], "ok") != 0 || strcmp(f[1], nonce) != 0)
        return forged(r, "a reply the runner did not send", reply);
    if (n_fields >= 0) {
        if (nf != 2 + n_fields)
            return forged(r, "a reply with the wrong number of fields", reply);
        for (int i = 2; i < nf; i++) {
            char *end = NULL;
            strtod(f[i], &end);
            if (!end || *end)
                return forged(r, "a reply with a field that is not a number", reply);
        }
    }
    if (runner_unread(r))
        return RUNNER_DIED;
    if (out && n) {
        const char *rest = reply + 3 + strlen(nonce);
        snprintf(out, n, "%s", *rest == ' ' ? rest + 1 : rest);
    }
    return RUNNER_OK;
}

int runner_prep(runner_t *r, int slot, int flush)
{
    char args[32];
    snprintf(args, sizeof args, "%d %d", slot, flush);
    return runner_cmd(r, NULL, 0, 0, "prep", args);
}

int runner_run(runner_t *r, int slot, run_result_t *res)
{
    keystream_key_t none = {0, 0};
    return runner_run_keyed(r, slot, none, res);
}

int runner_run_keyed(runner_t *r, int slot, keystream_key_t key, run_result_t *res)
{
    char args[64], out[256], hex[33];
    keystream_format(key, hex);
    if (key.k0 || key.k1 || r->unmask_pass)
        snprintf(args, sizeof args, "%d %s", slot, hex);
    else
        snprintf(args, sizeof args, "%d", slot);
    memset(res, 0, sizeof *res);
    static cpu_sample_t before, after;
    int have = runner_cpu_sample(r, &before) == 0;
    int rc = runner_cmd(r, out, sizeof out, 4, "run", args);
    res->outside_ns = r->last_outside_ns;
    res->wait_ns = r->last_wait_ns < r->last_outside_ns ? r->last_wait_ns : 0;
    have = have && rc == RUNNER_OK && runner_cpu_sample(r, &after) == 0;
    res->cpu_proc_ns = have ? after.proc_ns - before.proc_ns : -1;
    res->cpu_thread_ns = have ? runner_cpu_thread_max(&before, &after) : -1;
    if (rc != RUNNER_OK)
        return rc;
    if (sscanf(out, "%d %lf %lf %d", &res->rc, &res->elapsed_ns, &res->cpu_ns, &res->escaped) != 4)
        return forged(r, "a malformed run reply", out);
    /* A time longer than we saw from outside cannot be real, nor can a
     * negative one.  (Shorter is judged by the timing policy, against a
     * bound measured on this machine.) */
    if (res->elapsed_ns < 0 || res->cpu_ns < 0 || res->elapsed_ns > res->outside_ns * 1.01 + 1e5) {
        snprintf(r->msg, sizeof r->msg, "implausible timing reported (%.0f ns inside, %.0f ns outside)",
                 res->elapsed_ns, res->outside_ns);
        return RUNNER_ERR;
    }
    return RUNNER_OK;
}

int runner_snap(runner_t *r, int slot)
{
    char args[16];
    snprintf(args, sizeof args, "%d", slot);
    return runner_cmd(r, NULL, 0, 0, "snap", args);
}

/* The worker's wake-up after a long call is delayed on a loaded machine by
 * whole scheduler slices (docs/SECURITY.md): the time its thread spent
 * runnable but waiting for a core is the machine's, and the scheduler
 * counts it per thread (run_delay).  Nothing in the runner can add to it
 * but by keeping the cores busy itself, which its CPU clocks show. */
double runner_self_wait_ns(void)
{
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[128];
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0)
        return -1;
    buf[k] = 0;
    double run = 0, wait = -1;
    if (sscanf(buf, "%lf %lf", &run, &wait) != 2)
        return -1;
    return wait;
}

double runner_last_own_ns(const runner_t *r)
{
    return r->last_outside_ns - (r->last_wait_ns < r->last_outside_ns ? r->last_wait_ns : 0);
}

double runner_cpu_ns(const runner_t *r)
{
    if (!r->cpu_clock_ok || r->dead)
        return -1;
    struct timespec ts;
    if (clock_gettime((clockid_t)r->cpu_clock, &ts) != 0)
        return -1;
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int runner_cpu_sample(const runner_t *r, cpu_sample_t *s)
{
    s->n = 0;
    s->proc_ns = runner_cpu_ns(r);
    if (s->proc_ns < 0)
        return -1;
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)r->proc.pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) && s->n < RUNNER_MAX_THREADS) {
        int tid = atoi(e->d_name);
        if (tid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)r->proc.pid, tid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        char buf[128];
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0)
            continue;
        buf[k] = 0;
        s->tid[s->n] = tid;
        s->ns[s->n] = strtod(buf, NULL);
        s->n++;
    }
    closedir(d);
    return s->n > 0 ? 0 : -1;
}

double runner_cpu_thread_max(const cpu_sample_t *a, const cpu_sample_t *b)
{
    double most = 0;
    for (int i = 0; i < b->n; i++) {
        double from = 0;
        for (int j = 0; j < a->n; j++)
            if (a->tid[j] == b->tid[i]) {
                from = a->ns[j];
                break;
            }
        if (b->ns[i] - from > most)
            most = b->ns[i] - from;
    }
    return most;
}

void runner_last_output_line(const runner_t *r, char *buf, size_t n)
{
    buf[0] = 0;
    /* The last non-empty line of the last 4 KiB. */
    char tail[4097];
    FILE *f = fopen(r->proc.log_path, "rb");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 4096 ? size - 4096 : 0, SEEK_SET);
    size_t len = fread(tail, 1, 4096, f);
    fclose(f);
    tail[len] = 0;
    while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == '\r'))
        tail[--len] = 0;
    char *nl = strrchr(tail, '\n');
    const char *last = nl ? nl + 1 : tail;
    char *clean = output_filter(last, strlen(last), 300, OUTPUT_KEEP_HEAD | OUTPUT_ONE_LINE);
    snprintf(buf, n, "%s", clean ? clean : "");
    free(clean);
}

void runner_stop(runner_t *r)
{
    if (r->proc.pid > 0)
        sandbox_kill(&r->proc);
    if (r->arena) {
        munmap(r->arena, r->arena_bytes);
        r->arena = NULL;
    }
    if (r->arena_fd >= 0) {
        close(r->arena_fd);
        r->arena_fd = -1;
    }
}
