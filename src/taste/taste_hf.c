/* taste_hf.c -- see taste_hf.h. */
#include "taste/taste_hf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/qwen3.h"
#include "sandbox/sandbox.h"
#include "taste/taste_kernel.h"
#include "taste/taste_prompt.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/paths.h"
#include "util/python.h"

#define REPORT_MAX ((size_t)4 << 20)
#define TAIL_MAX 4096

taste_hf_opts_t taste_hf_defaults(void)
{
    taste_hf_opts_t o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    o.device = backend_default()->name;
    o.prompt_tokens = 32;
    o.max_new = 64;
    o.warmup = -1;
    o.timeout_s = 1800;
    return o;
}

typedef struct side_run {
    char *report;              /* fd 3's bytes */
    size_t len;
    char tail[TAIL_MAX + 1];   /* the last of stdout+stderr */
    size_t tail_len;
    int status;
    int timed_out;
} side_run_t;

static void keep_tail(side_run_t *s, const char *d, size_t n)
{
    if (n >= TAIL_MAX) {
        memcpy(s->tail, d + n - TAIL_MAX, TAIL_MAX);
        s->tail_len = TAIL_MAX;
    } else {
        if (s->tail_len + n > TAIL_MAX) {
            size_t drop = s->tail_len + n - TAIL_MAX;
            memmove(s->tail, s->tail + drop, s->tail_len - drop);
            s->tail_len -= drop;
        }
        memcpy(s->tail + s->tail_len, d, n);
        s->tail_len += n;
    }
    s->tail[s->tail_len] = 0;
}

/* In the child: its own session, killed with us, the allow-listed
 * environment plus what Python needs, the report pipe as fd 3. */
static void child(char *const argv[], int out_w, int rep_w, pid_t parent)
{
    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0 || dup2(rep_w, 3) < 0)
        _exit(126);
    for (int fd = 4; fd < 1024; fd++)
        close(fd);
    char pp[4096];
    emile_python_path(pp, sizeof pp);
    sandbox_scrub_env();
    setenv("PYTHONPATH", pp, 1);
    setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
    setenv("PYTHONUNBUFFERED", "1", 1);
    setenv("HF_HUB_OFFLINE", "1", 1);         /* a checkpoint on disk, never a download */
    setenv("TRANSFORMERS_OFFLINE", "1", 1);
    setenv("HOME", "/nonexistent", 1);
    execvp(argv[0], argv);
    dprintf(2, "emile-exec-failed: %s\n", strerror(errno));
    _exit(127);
}

static int run_side(char *const argv[], double timeout_s, side_run_t *s, char *err, size_t n)
{
    memset(s, 0, sizeof *s);
    int out[2], rep[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        goto pipe_fail;
    if (pipe2(rep, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        goto pipe_fail;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        snprintf(err, n, "cannot start Python: %s", strerror(errno));
        return -1;
    }
    if (pid == 0)
        child(argv, out[1], rep[1], parent);
    close(out[1]);
    close(rep[1]);
    double deadline = clock_mono_s() + timeout_s;
    int open_fds = 2;
    struct pollfd p[2] = {{out[0], POLLIN, 0}, {rep[0], POLLIN, 0}};
    while (open_fds > 0) {
        double left = deadline - clock_mono_s();
        if (left <= 0) {
            s->timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            break;
        }
        if (poll(p, 2, (int)(left * 1000) + 1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[65536];
            ssize_t k = read(p[i].fd, buf, sizeof buf);
            if (k <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                keep_tail(s, buf, (size_t)k);
            } else if (s->len + (size_t)k <= REPORT_MAX) {
                char *g = realloc(s->report, s->len + (size_t)k + 1);
                if (g) {
                    s->report = g;
                    memcpy(s->report + s->len, buf, (size_t)k);
                    s->len += (size_t)k;
                    s->report[s->len] = 0;
                }
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    while (waitpid(pid, &s->status, 0) < 0 && errno == EINTR) {
    }
    return 0;
pipe_fail:
    snprintf(err, n, "cannot create pipes: %s", strerror(errno));
    return -1;
}

/* The report's last line, or NULL. */
static json_t *last_json(side_run_t *s)
{
    if (!s->report)
        return NULL;
    char *end = s->report + s->len;
    while (end > s->report && (end[-1] == '\n' || end[-1] == 0))
        *--end = 0;
    char *last = strrchr(s->report, '\n');
    return json_loads(last ? last + 1 : s->report, 0, NULL);
}

static const char *last_line(const char *tail, char *buf, size_t n)
{
    const char *end = tail + strlen(tail);
    while (end > tail && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > tail && start[-1] != '\n')
        start--;
    snprintf(buf, n, "%.*s", (int)(end - start), start);
    return buf;
}

/* A side's outcome into rep->side[i], or err. */
static int read_side(side_run_t *s, const char *label, const char *python, double timeout_s, taste_report_t *rep,
                     int i, char *err, size_t n)
{
    json_t *j = last_json(s);
    const char *forbidden = json_string_value(json_object_get(j, "forbidden"));
    const char *child_err = json_string_value(json_object_get(j, "error"));
    char line[600];
    int rc = -1;
    if (s->timed_out)
        snprintf(err, n, "the transformers side with %s did not finish within %.0f s", label, timeout_s);
    else if (strstr(s->tail, "emile-exec-failed"))
        snprintf(err, n, "emile taste --hf needs Python with torch and transformers, and '%s' cannot be run "
                         "(set EMILE_PYTHON; scripts/setup.sh makes build/venv)", python);
    else if (forbidden || (WIFEXITED(s->status) && WEXITSTATUS(s->status) == 3))
        snprintf(err, n, "a kernel in transformers' attention (%s) made a forbidden system call: %s (nr %lld); "
                         "the Tasting Room runs kernels in the worker's sandbox",
                 label, forbidden ? forbidden : "unnamed", (long long)json_integer_value(json_object_get(j, "nr")));
    else if (child_err && strstr(child_err, "No module named"))
        snprintf(err, n, "emile taste --hf needs torch and transformers in %s: %s (set EMILE_PYTHON)", python,
                 child_err);
    else if (child_err)
        snprintf(err, n, "the transformers side with %s failed: %s", label, child_err);
    else if (WIFSIGNALED(s->status))
        snprintf(err, n, "the transformers side with %s was killed by signal %d (%s)%s%s", label,
                 WTERMSIG(s->status), strsignal(WTERMSIG(s->status)), s->tail_len ? ": " : "",
                 last_line(s->tail, line, sizeof line));
    else if (!j)
        snprintf(err, n, "the transformers side with %s ended without a report (exit status %d)%s%s", label,
                 WIFEXITED(s->status) ? WEXITSTATUS(s->status) : -1, s->tail_len ? ": " : "",
                 last_line(s->tail, line, sizeof line));
    else
        rc = 0;
    if (rc == 0) {
        taste_side_t *side = &rep->side[i];
        snprintf(side->label, sizeof side->label, "%.255s", label);
        side->stats.ttft_s = json_number_value(json_object_get(j, "ttft_ms")) * 1e-3;
        side->stats.decode_tok_s = json_number_value(json_object_get(j, "decode_tok_s"));
        const json_t *ids = json_object_get(j, "ids");
        side->n = (int)json_array_size(ids);
        side->stats.n_new = side->n;
        side->tokens = calloc((size_t)side->n + 1, sizeof(int));
        for (int k = 0; side->tokens && k < side->n; k++)
            side->tokens[k] = (int)json_integer_value(json_array_get(ids, (size_t)k));
        const char *dn = json_string_value(json_object_get(j, "device_name"));
        snprintf(rep->device_name, sizeof rep->device_name, "%s", dn ? dn : "?");
        rep->n_sides = i + 1;
    }
    json_decref(j);
    return rc;
}

static int prompt_file(const taste_hf_opts_t *o, const char *dir, char *path, size_t pn, int *n_prompt, char *err,
                       size_t n)
{
    qwen3_config_t c;
    char cfg[4096];
    if (o->hf_dir) {
        snprintf(cfg, sizeof cfg, "%s/config.json", o->hf_dir);
        if (qwen3_config_load(&c, cfg, err, n) != 0)
            return -1;
    } else if (qwen3_config_named(&c, o->hf_random) != 0) {
        snprintf(err, n, "unknown shape '%s' (qwen3-4b, qwen3-0.6b, tiny)", o->hf_random);
        return -1;
    }
    taste_prompt_src_t ps = {NULL, 0, o->prompt_ids, o->prompt_tokens, o->seed};
    int *ids = NULL;
    int k = taste_prompt_ids(&ps, NULL, c.vocab, &ids, err, n);
    if (k < 1)
        return -1;
    size_t cap = (size_t)k * 12 + 2, len = 0;
    char *text = malloc(cap);
    for (int i = 0; text && i < k; i++)
        len += (size_t)snprintf(text + len, cap - len, "%d ", ids[i]);
    free(ids);
    snprintf(path, pn, "%s/prompt.ids", dir);
    if (!text || fs_write_file(path, text, len) != 0 || chmod(path, 0644) != 0) {
        snprintf(err, n, "cannot write %s", path);
        free(text);
        return -1;
    }
    free(text);
    *n_prompt = k;
    return 0;
}

int taste_hf_run(const taste_hf_opts_t *o, FILE *out, taste_report_t *rep, char *err, size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    const char *device = o->device ? o->device : backend_default()->name;
    char dir[4096] = "", ids[4200], kdir[4200], so[4096] = "", label[256] = "", python[1024], confine[4096];
    emile_python(python, sizeof python);
    emile_root_file("build/libemile-confine.so", confine, sizeof confine);
    if (getenv("EMILE_CONFINE_LIB"))
        snprintf(confine, sizeof confine, "%s", getenv("EMILE_CONFINE_LIB"));
    if (!o->no_sandbox && access(confine, R_OK) != 0) {
        snprintf(err, errlen, "%s is missing (make builds it): the tasting's Python sides load the sandbox "
                              "from it (--no-sandbox runs trusted kernels without it)", confine);
        return -1;
    }
    int rc = 0, n_prompt = 0;
    if (fs_mkdtemp("emile-taste-hf-", dir, sizeof dir) != 0 || chmod(dir, 0711) != 0) {
        snprintf(err, errlen, "cannot create a temporary directory");
        return -1;
    }
    rc = prompt_file(o, dir, ids, sizeof ids, &n_prompt, err, errlen);
    snprintf(kdir, sizeof kdir, "%s/kernel", dir);
    if (rc == 0)
        rc = taste_kernel_prepare(o->kernel, 0, o->store, device, kdir, so, sizeof so, label, sizeof label, err,
                                  errlen);
    rep->n_prompt = n_prompt;
    snprintf(rep->device, sizeof rep->device, "%s", device);
    snprintf(rep->decode_path, sizeof rep->decode_path, "transformers eager");
    char seed[32], max_new[16], warm[16], parent[16];
    snprintf(seed, sizeof seed, "%llu", o->seed);
    snprintf(max_new, sizeof max_new, "%d", o->max_new);
    snprintf(warm, sizeof warm, "%d", o->warmup >= 0 ? o->warmup : 1);
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    for (int i = 0; i < 2 && rc == 0; i++) {
        char lab[300];
        snprintf(lab, sizeof lab, "%s (transformers)", i == 0 ? "sdpa" : label);
        char *argv[40];
        int k = 0;
        argv[k++] = python;
        argv[k++] = "-m";
        argv[k++] = "emile.taste_hf";
        argv[k++] = o->hf_dir ? "--hf" : "--hf-random";
        argv[k++] = (char *)(o->hf_dir ? o->hf_dir : o->hf_random);
        argv[k++] = "--seed";
        argv[k++] = seed;
        argv[k++] = "--prompt-ids";
        argv[k++] = ids;
        argv[k++] = "--max-new";
        argv[k++] = max_new;
        argv[k++] = "--device";
        argv[k++] = (char *)device;
        argv[k++] = "--warmup";
        argv[k++] = warm;
        argv[k++] = "--role";
        argv[k++] = i == 0 ? "reference" : "kernel";
        argv[k++] = "--label";
        argv[k++] = lab;
        argv[k++] = "--parent";
        argv[k++] = parent;
        if (i == 1) {
            argv[k++] = "--kernel";
            argv[k++] = so;
        }
        if (!o->no_sandbox) {
            argv[k++] = "--confine";
            argv[k++] = confine;
        }
        argv[k] = NULL;
        side_run_t s;
        fflush(NULL);
        rc = run_side(argv, o->timeout_s, &s, err, errlen);
        if (rc == 0)
            rc = read_side(&s, lab, python, o->timeout_s, rep, i, err, errlen);
        free(s.report);
    }
    fs_rm_rf(dir);
    if (rc == 0) {
        const taste_side_t *a = &rep->side[0], *b = &rep->side[1];
        int k = 0;
        while (k < a->n && k < b->n && a->tokens[k] == b->tokens[k])
            k++;
        rep->agree = k == a->n && k == b->n;
        rep->first_divergence = rep->agree ? -1 : k;
        taste_report_print(out, rep, o->json);
    } else {
        taste_report_free(rep);
    }
    return rc;
}
