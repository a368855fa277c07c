/*
 * evaluate.c -- compile, validate and profile one kernel (see evaluate.h).
 *
 * The reference and the candidate run in two different runner processes
 * with two different arenas.  The worker draws every input itself (from a
 * seed no kernel sees), copies the same inputs into both arenas, asks the
 * reference for the expected outputs and compares the candidate's snapshot
 * with them.  Checks, in order:
 *   1. the reference agrees with the op's float64 oracle on a small set
 *      (once per task; a wrong reference stops the cook);
 *   2. three input sets (the task's sizes, a ragged size, a small size with
 *      another batch), outputs poisoned with NaN before every run: every
 *      element within tolerance, none NaN, the guard bytes around every
 *      tensor untouched, the inputs unchanged;
 *   3. a repeated run on the first set agrees with the first run;
 *   4. inputs re-drawn for timing (two sets the kernel has never seen,
 *      alternated at random), and every warm-up and timed run's output
 *      checked on a random sample of elements.
 */
#include "evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/lang.h"
#include "backend/ncu.h"
#include "backend/occupancy.h"
#include "layout.h"
#include "numeric.h"
#include "profile/report.h"
#include "runner_client.h"
#include "sandbox/sandbox.h"
#include "task/task.h"
#include "util/fs.h"
#include "util/paths.h"
#include "util/rng.h"
#include "util/clock.h"
#include "worker/reference_python.h"

#define SLOT_TASK 0
#define SLOT_RAGGED 1
#define SLOT_SMALL 2
#define SLOT_TIMING 3
#define SLOT_TIMING2 4
#define SLOT_HELD 5      /* held back until after the timed runs */
#define SAMPLE_N 65536

struct worker_ctx {
    char base[512];
    int counter;
    long uid;
    /* The reference of the current task, kept across evaluations. */
    char *ref_key;
    task_t ref_task;
    int ref_loaded;
    int ref_status;            /* 0 ready, -1 invalid (ref_error says why) */
    char ref_error[2048];
    json_t *ref_oracle;        /* the float64 check's result */
    runner_t ref;
    arena_layout_t layout;
    uint8_t *pristine[LAYOUT_MAX_SLOTS];   /* inputs+guards as drawn */
    void *expected[LAYOUT_MAX_SLOTS][OP_MAX_TENSORS];
    json_t *device;            /* the device object (with ceilings) */
    char device_backend[16];
    rng_t rng;
    reference_python_t py;     /* the oracle of a PyTorch problem */
};

worker_ctx_t *worker_ctx_new(char *err, size_t n)
{
    worker_ctx_t *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    if (fs_mkdtemp("emile-w-", w->base, sizeof w->base) != 0) {
        snprintf(err, n, "cannot create a working directory under $TMPDIR: %s", strerror(errno));
        free(w);
        return NULL;
    }
    /* Others may pass through (the sandbox user) but not list it. */
    chmod(w->base, 0711);
    w->uid = sandbox_untrusted_uid();
    rng_seed(&w->rng, rng_entropy());
    return w;
}

static void free_reference(worker_ctx_t *w)
{
    reference_python_stop(&w->py);
    if (w->ref_loaded) {
        runner_stop(&w->ref);
        task_free(&w->ref_task);
    }
    for (int s = 0; s < LAYOUT_MAX_SLOTS; s++) {
        free(w->pristine[s]);
        w->pristine[s] = NULL;
        for (int t = 0; t < OP_MAX_TENSORS; t++) {
            free(w->expected[s][t]);
            w->expected[s][t] = NULL;
        }
    }
    json_decref(w->ref_oracle);
    w->ref_oracle = NULL;
    free(w->ref_key);
    w->ref_key = NULL;
    w->ref_loaded = 0;
}

void worker_ctx_free(worker_ctx_t *w)
{
    if (!w)
        return;
    free_reference(w);
    json_decref(w->device);
    fs_rm_rf(w->base);
    free(w);
}

/* ---- directories and compilation ------------------------------------- */

static int make_dir(worker_ctx_t *w, const char *kind, char *out, size_t n)
{
    /* Unguessable names: a candidate (same sandbox user as the reference)
     * must not find the reference's directory. */
    snprintf(out, n, "%s/%s-%d-%016llx", w->base, kind, ++w->counter, (unsigned long long)rng_next(&w->rng));
    if (mkdir(out, 0700) != 0)
        return -1;
    if (w->uid >= 0 && chown(out, (uid_t)w->uid, (gid_t)w->uid) != 0)
        return -1;
    char hdr[1024], dst[1024];
    emile_root_file("include/emile.h", hdr, sizeof hdr);
    snprintf(dst, sizeof dst, "%s/emile.h", out);
    return fs_copy_file(hdr, dst);
}

static void trim_log(json_t *obj, const char *key, const char *log, size_t max)
{
    if (!log)
        return;
    size_t len = strlen(log);
    if (len <= max) {
        json_object_set_new(obj, key, json_string(log));
        return;
    }
    char *buf = malloc(max + 64);
    memcpy(buf, log, max);
    snprintf(buf + max, 64, "\n... (%zu more bytes)", len - max);
    json_object_set_new(obj, key, json_stringn_nocheck(buf, strlen(buf)));
    free(buf);
}

/* Build source, in language lang (lang.h; "" the backend's default), in
 * dir; fills compile (object) and so_path.  0 when built. */
static int compile_kernel(worker_ctx_t *w, const backend_t *b, const task_t *t, const char *dir,
                          const char *source, const char *lang, json_t *compile, char *so_path, size_t so_n)
{
    char src[1024], nolang[256];
    const lang_t *lg = lang_for(b->name, lang, nolang, sizeof nolang);
    if (!lg) {
        json_object_set_new(compile, "ok", json_false());
        json_object_set_new(compile, "log", json_string(nolang));
        return -1;
    }
    snprintf(src, sizeof src, "%s/kernel%s", dir, lg->src_ext);
    snprintf(so_path, so_n, "%s/kernel.so", dir);
    if (fs_write_file(src, source, strlen(source)) != 0) {
        json_object_set_new(compile, "ok", json_false());
        json_object_set_new(compile, "log", json_string("cannot write the source file"));
        return -1;
    }
    if (w->uid >= 0) {
        int rc = chown(src, (uid_t)w->uid, (gid_t)w->uid);
        (void)rc;
    }
    char *argv[64], buf[8192];
    if (lg->compile_argv(src, so_path, dir, argv, 64, buf, sizeof buf) != 0) {
        json_object_set_new(compile, "ok", json_false());
        json_object_set_new(compile, "log", json_string("compile command too long"));
        return -1;
    }
    char cmd[2048] = "";
    for (int i = 0; argv[i]; i++) {
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
        strcat(cmd, " ");
    }
    json_object_set_new(compile, "command", json_string(cmd));
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.wall_s = t->compile_limit_s;
    l.cpu_s = t->compile_limit_s * 2 + 10;
    l.mem_bytes = (size_t)8 << 30;
    l.fsize_bytes = (size_t)512 << 20;    /* the object file itself */
    l.nproc = 0;
    l.drop_uid = w->uid;
    int st = 0, to = 0;
    double secs = 0;
    char *log = NULL, err[512];
    if (sandbox_run(dir, argv, &l, &st, &to, &log, &secs, err, sizeof err) != 0) {
        json_object_set_new(compile, "ok", json_false());
        json_object_set_new(compile, "log", json_string(err));
        return -1;
    }
    json_object_set_new(compile, "seconds", json_real(secs));
    trim_log(compile, "log", log, 6000);
    free(log);
    int ok = !to && WIFEXITED(st) && WEXITSTATUS(st) == 0 && fs_exists(so_path);
    if (!ok && (to || !WIFEXITED(st))) {
        char why[256];
        sandbox_describe_status(st, to, l.wall_s, why, sizeof why);
        json_object_set_new(compile, "error", json_string(why));
    }
    json_object_set_new(compile, "ok", json_boolean(ok));
    return ok ? 0 : -1;
}

/* ---- input sets ------------------------------------------------------- */

static int build_layout(const task_t *t, arena_layout_t *a, char *err, size_t n)
{
    memset(a, 0, sizeof *a);
    op_params_t ragged, small;
    op_validation_params(&t->op, &t->params, &ragged, &small);
    if (layout_add_slot(a, "task", &t->op, &t->params, t->dtype, err, n) != 0 ||
        layout_add_slot(a, "ragged", &t->op, &ragged, t->dtype, err, n) != 0 ||
        layout_add_slot(a, "small", &t->op, &small, t->dtype, err, n) != 0 ||
        layout_add_slot(a, "timing", &t->op, &t->params, t->dtype, err, n) != 0 ||
        layout_add_slot(a, "timing2", &t->op, &t->params, t->dtype, err, n) != 0 ||
        layout_add_slot(a, "held", &t->op, &t->params, t->dtype, err, n) != 0)
        return -1;
    return 0;
}

/* Fresh values for slot s: random guard bytes everywhere, then normal
 * inputs (std from the op), and a pristine copy for the checks.  A cheap
 * approximately normal draw (sum of four uniforms) keeps large inputs fast. */
static void draw_inputs(worker_ctx_t *w, const task_t *t, int s, uint8_t *arena)
{
    const slot_layout_t *sl = &w->layout.slots[s];
    uint8_t *p = arena + sl->begin;
    size_t len = sl->end - sl->begin;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t r = rng_next(&w->rng);
        memcpy(p + i, &r, 8);
    }
    for (int k = 0; k < sl->n_tensors; k++) {
        if (sl->is_out[k])
            continue;
        double std = t->op.tensors[k].init_std > 0 ? t->op.tensors[k].init_std : 1.0;
        void *base = arena + sl->off[k];
        /* an index the op reads (a position, a length): uniform in its range */
        int64_t lo, hi;
        char why[256];
        int ranged = op_tensor_int_range(&t->op, k, &sl->params, &lo, &hi, why, sizeof why) > 0;
        for (size_t i = 0; i < sl->numel[k]; i++) {
            uint64_t r = rng_next(&w->rng);
            if (ranged) {
                num_set(base, sl->dtype[k], i, (double)(lo + (int64_t)(r % (uint64_t)(hi - lo + 1))));
                continue;
            }
            double u = (double)(r & 0xffff) + (double)((r >> 16) & 0xffff) + (double)((r >> 32) & 0xffff) +
                       (double)(r >> 48);
            /* four U(0,65536) sum: mean 131070, sd 65536/sqrt(3) */
            double z = (u - 131070.0) / 37837.2;
            num_set(base, sl->dtype[k], i, z * std);
        }
    }
    if (!w->pristine[s])
        w->pristine[s] = malloc(len);
    memcpy(w->pristine[s], p, len);
}

/* Everything in the slot's tensor range except the output data must be as
 * drawn: inputs unchanged, guards untouched. */
static int check_inputs_and_guards(const worker_ctx_t *w, int s, const uint8_t *arena, char *msg, size_t n)
{
    const slot_layout_t *sl = &w->layout.slots[s];
    const uint8_t *q = w->pristine[s];
    /* Walk [begin, end) in ranges that skip the output tensors' data. */
    size_t pos = sl->begin;
    while (pos < sl->end) {
        size_t stop = sl->end, skip_to = sl->end;
        for (int k = 0; k < sl->n_tensors; k++)
            if (sl->is_out[k] && sl->off[k] >= pos && sl->off[k] < stop) {
                stop = sl->off[k];
                skip_to = sl->off[k] + sl->bytes[k];
            }
        if (stop > pos && memcmp(arena + pos, q + (pos - sl->begin), stop - pos) != 0) {
            size_t abs = pos;
            while (abs < stop && arena[abs] == q[abs - sl->begin])
                abs++;
            for (int k = 0; k < sl->n_tensors; k++)
                if (abs >= sl->off[k] && abs < sl->off[k] + sl->bytes[k]) {
                    snprintf(msg, n, "the kernel modified its input %s (byte %zu) on set %s", sl->tname[k],
                             abs - sl->off[k], sl->name);
                    return -1;
                }
            snprintf(msg, n, "the kernel wrote outside its tensors (guard byte at arena offset %zu) on set %s", abs,
                     sl->name);
            return -1;
        }
        pos = skip_to;
    }
    return 0;
}

/* Guards around the output in the runner's snapshot. */
static int check_output_guards(const worker_ctx_t *w, int s, int k, const uint8_t *snap, char *msg, size_t n)
{
    const slot_layout_t *sl = &w->layout.slots[s];
    const uint8_t *pre = w->pristine[s] + (sl->off[k] - LAYOUT_GUARD - sl->begin);
    const uint8_t *post = w->pristine[s] + (sl->off[k] + sl->bytes[k] - sl->begin);
    if (memcmp(snap, pre, LAYOUT_GUARD) != 0 ||
        memcmp(snap + LAYOUT_GUARD + sl->bytes[k], post,
               sl->off[k] + sl->bytes[k] + LAYOUT_GUARD <= sl->end ? LAYOUT_GUARD : 0) != 0) {
        snprintf(msg, n, "the kernel wrote out of bounds of output %s on set %s", sl->tname[k], sl->name);
        return -1;
    }
    return 0;
}

/* ---- runner commands --------------------------------------------------- */

static int bind_all(worker_ctx_t *w, runner_t *r)
{
    for (int s = 0; s < w->layout.n_slots; s++) {
        char *line = layout_bind_line(&w->layout, s, "");
        /* layout_bind_line writes "bind <nonce> ..."; send the rest. */
        const char *args = line + strlen("bind  ");
        int rc = runner_cmd(r, NULL, 0, "bind", args);
        free(line);
        if (rc != RUNNER_OK)
            return rc;
    }
    return RUNNER_OK;
}

static int upload_slot(worker_ctx_t *w, runner_t *r, int s)
{
    char args[64];
    const slot_layout_t *sl = &w->layout.slots[s];
    snprintf(args, sizeof args, "%zu %zu", sl->begin, sl->end - sl->begin);
    return runner_cmd(r, NULL, 0, "upload", args);
}

static int fetch_slot(worker_ctx_t *w, runner_t *r, int s)
{
    char args[64];
    const slot_layout_t *sl = &w->layout.slots[s];
    snprintf(args, sizeof args, "%zu %zu", sl->begin, sl->end - sl->begin);
    return runner_cmd(r, NULL, 0, "fetch", args);
}

typedef struct run_result {
    int rc;
    double elapsed_ns, cpu_ns, wall_ns;
    int escaped;
    double outside_ns;
} run_result_t;

static int run_slot(runner_t *r, int s, int flush, run_result_t *res)
{
    char args[32], out[256];
    snprintf(args, sizeof args, "%d 1 %d", s, flush);
    double t0 = clock_mono_s();
    int rc = runner_cmd(r, out, sizeof out, "run", args);
    res->outside_ns = (clock_mono_s() - t0) * 1e9;
    if (rc != RUNNER_OK)
        return rc;
    if (sscanf(out, "%d %lf %lf %lf %d", &res->rc, &res->elapsed_ns, &res->cpu_ns, &res->wall_ns,
               &res->escaped) != 5) {
        snprintf(r->msg, sizeof r->msg, "malformed run reply: %.100s", out);
        return RUNNER_ERR;
    }
    /* The runner shares its address space with the kernel; a time longer
     * than we saw from outside cannot be real, nor can a negative one. */
    if (res->elapsed_ns < 0 || res->elapsed_ns > res->outside_ns * 1.01 + 1e5) {
        snprintf(r->msg, sizeof r->msg, "implausible timing reported (%.0f ns inside, %.0f ns outside)",
                 res->elapsed_ns, res->outside_ns);
        return RUNNER_ERR;
    }
    return RUNNER_OK;
}

/* ---- the reference ------------------------------------------------------ */

static char *reference_key(const json_t *task_json)
{
    json_t *k = json_object();
    const char *fields[] = {"op", "params", "dtype", "backend", "reference_source", "tolerance", "seed",
                            "time_limit_s", "memory_limit_mb"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(task_json, fields[i]);
        if (v)
            json_object_set(k, fields[i], v);
    }
    char *s = json_dumps(k, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(k);
    return s;
}

static void limits_for(const task_t *t, const backend_t *b, long uid, sandbox_limits_t *l)
{
    sandbox_limits_default(l);
    l->wall_s = t->time_limit_s;
    l->cpu_s = t->time_limit_s * 64 + 10;
    l->mem_bytes = b->host_mem_limit ? (size_t)(t->memory_limit_mb * 1048576.0) : 0;
    l->fsize_bytes = (size_t)1 << 20;
    l->drop_uid = uid;
}

static double tolerance(const task_t *t)
{
    return t->tolerance > 0 ? t->tolerance : op_tolerance(&t->op, t->dtype);
}

/* Run the reference on slot s and keep its outputs as the expectation. */
static int reference_expect(worker_ctx_t *w, int s)
{
    run_result_t res;
    int rc = upload_slot(w, &w->ref, s);
    if (rc == RUNNER_OK)
        rc = run_slot(&w->ref, s, 0, &res);
    if (rc != RUNNER_OK) {
        snprintf(w->ref_error, sizeof w->ref_error, "the reference failed on set %s: %.1800s",
                 w->layout.slots[s].name, w->ref.msg);
        return -1;
    }
    if (res.rc != 0) {
        snprintf(w->ref_error, sizeof w->ref_error, "the reference returned %d on set %s", res.rc,
                 w->layout.slots[s].name);
        return -1;
    }
    const slot_layout_t *sl = &w->layout.slots[s];
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        if (!w->expected[s][k])
            w->expected[s][k] = malloc(sl->bytes[k]);
        memcpy(w->expected[s][k], w->ref.arena + sl->snap[k] + LAYOUT_GUARD, sl->bytes[k]);
        size_t bad = 0;
        for (size_t i = 0; i < sl->numel[k] && !bad; i++)
            bad = !isfinite(num_get(w->expected[s][k], sl->dtype[k], i));
        if (bad) {
            snprintf(w->ref_error, sizeof w->ref_error, "the reference left NaN or Inf in %s on set %s",
                     sl->tname[k], sl->name);
            return -1;
        }
    }
    return 0;
}

/* The reference against the op's float64 oracle on the small set. */
static int reference_oracle_check(worker_ctx_t *w)
{
    const task_t *t = &w->ref_task;
    w->ref_oracle = json_object();
    if (!t->op.eval_f64) {
        json_object_set_new(w->ref_oracle, "checked", json_false());
        json_object_set_new(w->ref_oracle, "why", json_string("the op has no float64 oracle: the reference is the oracle"));
        return 0;
    }
    const slot_layout_t *sl = &w->layout.slots[SLOT_SMALL];
    draw_inputs(w, t, SLOT_SMALL, w->ref.arena);
    if (reference_expect(w, SLOT_SMALL) != 0)
        return -1;
    double *bufs[OP_MAX_TENSORS] = {0};
    int rc = 0;
    for (int k = 0; k < sl->n_tensors && rc == 0; k++) {
        bufs[k] = malloc(sizeof(double) * sl->numel[k]);
        if (!bufs[k]) {
            rc = -1;
            break;
        }
        if (!sl->is_out[k])
            for (size_t i = 0; i < sl->numel[k]; i++)
                bufs[k][i] = num_get(w->ref.arena + sl->off[k], sl->dtype[k], i);
    }
    if (rc == 0 && t->op.eval_f64(&t->op, &sl->params, bufs) != 0)
        rc = -1;
    double tol = tolerance(t), worst = 0;
    for (int k = 0; k < sl->n_tensors && rc == 0; k++) {
        if (!sl->is_out[k])
            continue;
        num_cmp_t c;
        num_compare_f64(w->expected[SLOT_SMALL][k], sl->dtype[k], bufs[k], sl->numel[k], tol, &c);
        if (c.max_err > worst)
            worst = c.max_err;
        if (c.n_bad > 0) {
            snprintf(w->ref_error, sizeof w->ref_error,
                     "the reference is itself wrong: output %s differs from the float64 evaluation by %.3g "
                     "(tolerance %.3g) at element %zu on the small set",
                     sl->tname[k], c.max_err, tol, c.worst_index);
            rc = -2;
        }
    }
    for (int k = 0; k < sl->n_tensors; k++)
        free(bufs[k]);
    json_object_set_new(w->ref_oracle, "checked", json_true());
    json_object_set_new(w->ref_oracle, "max_err", json_real(worst));
    json_object_set_new(w->ref_oracle, "tol", json_real(tol));
    json_t *pj = json_object();
    for (int i = 0; i < sl->params.n; i++)
        json_object_set_new(pj, sl->params.names[i], json_real(sl->params.values[i]));
    json_object_set_new(w->ref_oracle, "params", pj);
    if (rc == -1 && !w->ref_error[0])
        snprintf(w->ref_error, sizeof w->ref_error, "the float64 oracle failed (out of memory?)");
    return rc == 0 ? 0 : -1;
}

int worker_task_fits(const task_t *t, const json_t *device, char *err, size_t n)
{
    double mem = json_number_value(json_object_get(device, "memory_bytes"));
    double bytes = 0;
    for (int k = 0; k < t->op.n_tensors; k++)
        bytes += (double)op_tensor_numel(&t->op, k, &t->params) *
                 (double)emile_dtype_size(op_tensor_dtype(&t->op, k, t->dtype));
    /* Two arenas of six input sets (three at the task's size plus the
     * validation sets), pristine copies, expectations. */
    double need = 12 * bytes;
    if (mem > 0 && need > mem) {
        snprintf(err, n, "the task's tensors take %.3g GB (about %.3g GB with the harness's copies): more memory "
                         "than this %s device has (%.3g GB); reduce the sizes",
                 bytes / 1e9, need / 1e9, t->backend, mem / 1e9);
        return -1;
    }
    return 0;
}

static int ensure_reference(worker_ctx_t *w, const json_t *task_json, const backend_t *b)
{
    char *key = reference_key(task_json);
    if (w->ref_key && key && strcmp(key, w->ref_key) == 0) {
        free(key);
        return w->ref_status;
    }
    free_reference(w);
    w->ref_key = key;
    w->ref_status = -1;
    w->ref_error[0] = 0;
    task_init(&w->ref_task);
    w->ref_loaded = 1;
    memset(&w->ref, 0, sizeof w->ref);
    w->ref.arena_fd = -1;
    char err[1024];
    if (task_from_json(&w->ref_task, task_json, NULL, err, sizeof err) != 0 ||
        task_finalize(&w->ref_task, err, sizeof err) != 0) {
        snprintf(w->ref_error, sizeof w->ref_error, "bad task: %s", err);
        return -1;
    }
    if (worker_task_fits(&w->ref_task, w->device, err, sizeof err) != 0) {
        snprintf(w->ref_error, sizeof w->ref_error, "%s", err);
        w->ref_status = -2;
        return -2;
    }
    if (build_layout(&w->ref_task, &w->layout, err, sizeof err) != 0) {
        snprintf(w->ref_error, sizeof w->ref_error, "bad task: %s", err);
        return -1;
    }
    if (task_reference_is_python(&w->ref_task)) {
        /* The oracle draws the inputs; the arena only holds them. */
        w->ref.arena = mmap(NULL, w->layout.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (w->ref.arena == MAP_FAILED) {
            w->ref.arena = NULL;
            snprintf(w->ref_error, sizeof w->ref_error, "cannot map %zu bytes for the input sets", w->layout.total);
            return -1;
        }
        w->ref.arena_bytes = w->layout.total;
        if (reference_python_prepare(&w->py, &w->ref_task, &w->layout, SLOT_SMALL, &w->rng, w->ref.arena,
                                     &w->pristine[SLOT_SMALL], w->expected[SLOT_SMALL], &w->ref_oracle,
                                     w->ref_error, sizeof w->ref_error) != 0)
            return -1;
        w->ref_status = 0;
        return 0;
    }
    char dir[900], so[1000];
    if (make_dir(w, "ref", dir, sizeof dir) != 0) {
        snprintf(w->ref_error, sizeof w->ref_error, "cannot prepare %s: %s", dir, strerror(errno));
        return -1;
    }
    json_t *compile = json_object();
    if (compile_kernel(w, b, &w->ref_task, dir, w->ref_task.reference_source, w->ref_task.reference_lang, compile,
                       so, sizeof so) != 0) {
        const char *log = json_string_value(json_object_get(compile, "log"));
        snprintf(w->ref_error, sizeof w->ref_error, "the reference does not compile:\n%.1500s", log ? log : "");
        json_decref(compile);
        return -1;
    }
    json_decref(compile);
    sandbox_limits_t l;
    limits_for(&w->ref_task, b, w->uid, &l);
    int rc = runner_start(&w->ref, b, dir, so, w->layout.total, &l);
    if (rc == RUNNER_OK)
        rc = bind_all(w, &w->ref);
    if (rc != RUNNER_OK) {
        snprintf(w->ref_error, sizeof w->ref_error, "the reference cannot run: %.1800s", w->ref.msg);
        return -1;
    }
    if (reference_oracle_check(w) != 0)
        return -1;
    w->ref_status = 0;
    return 0;
}

/* ---- the candidate -------------------------------------------------------- */

typedef struct eval_state {
    worker_ctx_t *w;
    const task_t *t;
    runner_t cand;
    json_t *reply, *validation, *checks;
    double max_err;
} eval_state_t;

static void set_status(json_t *reply, const char *status, const char *error)
{
    json_object_set_new(reply, "status", json_string(status));
    json_object_set_new(reply, "error", error ? json_string(error) : json_null());
}

/* The runner died or refused: crashed, timed out, forbidden call... */
static void runner_failure(eval_state_t *e, int rc, const char *when)
{
    char msg[2048];
    snprintf(msg, sizeof msg, "%s: %.1900s", when, e->cand.msg);
    const char *status = rc == RUNNER_DIED ? (e->cand.proc.timed_out ? "timeout" : "crashed") : "invalid";
    set_status(e->reply, status, msg);
}

/* Full comparison of every output of slot s with the expectation. */
static int check_slot_outputs(eval_state_t *e, int s, const char *name, void **against, double tol)
{
    worker_ctx_t *w = e->w;
    const slot_layout_t *sl = &w->layout.slots[s];
    int ok = 1;
    char msg[512] = "";
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        const uint8_t *snap = e->cand.arena + sl->snap[k];
        num_cmp_t c;
        num_compare(snap + LAYOUT_GUARD, against[k], sl->dtype[k], sl->numel[k], tol, &c);
        json_t *ck = json_object();
        json_object_set_new(ck, "name", json_string(name));
        json_object_set_new(ck, "output", json_string(sl->tname[k]));
        json_t *pj = json_object();
        for (int i = 0; i < sl->params.n; i++)
            json_object_set_new(pj, sl->params.names[i], json_real(sl->params.values[i]));
        json_object_set_new(ck, "params", pj);
        json_object_set_new(ck, "max_err", isinf(c.max_err) ? json_string("inf") : json_real(c.max_err));
        json_object_set_new(ck, "tol", json_real(tol));
        json_object_set_new(ck, "nan", json_integer((json_int_t)c.n_nonfinite));
        json_object_set_new(ck, "bad", json_integer((json_int_t)c.n_bad));
        int pass = c.n_bad == 0;
        if (pass && check_output_guards(w, s, k, snap, msg, sizeof msg) != 0)
            pass = 0;
        if (!pass && !msg[0]) {
            if (c.n_nonfinite > 0)
                snprintf(msg, sizeof msg,
                         "%s check (set %s): %zu of %zu elements of %s are NaN/Inf or unwritten, first at %zu",
                         name, sl->name, c.n_nonfinite, sl->numel[k], sl->tname[k], c.first_bad);
            else
                snprintf(msg, sizeof msg,
                         "%s check (set %s): %s off by %.3g (tolerance %.3g) at element %zu; %zu of %zu elements "
                         "bad",
                         name, sl->name, sl->tname[k], c.max_err, tol, c.worst_index, c.n_bad, sl->numel[k]);
        }
        json_object_set_new(ck, "ok", json_boolean(pass));
        if (!pass)
            json_object_set_new(ck, "message", json_string(msg));
        json_array_append_new(e->checks, ck);
        if (c.max_err > e->max_err && isfinite(c.max_err) && against == w->expected[s])
            e->max_err = c.max_err;
        if (!pass) {
            ok = 0;
            set_status(e->reply, "invalid", msg);
            break;
        }
    }
    return ok ? 0 : -1;
}

/* Sampled check of a timed run's outputs (all of them would cost more
 * than the run on large outputs; 65536 random elements catch any skipped
 * fraction above ~1e-4). */
static int check_sampled(eval_state_t *e, int s, double tol, const char *what, int run_index)
{
    worker_ctx_t *w = e->w;
    const slot_layout_t *sl = &w->layout.slots[s];
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        const uint8_t *out = e->cand.arena + sl->snap[k] + LAYOUT_GUARD;
        const void *ref = w->expected[s][k];
        size_t n = sl->numel[k];
        size_t m = n < SAMPLE_N ? n : SAMPLE_N;
        double ss = 0;
        for (size_t j = 0; j < m; j++) {
            double b = num_get(ref, sl->dtype[k], n == m ? j : rng_next(&w->rng) % n);
            ss += b * b;
        }
        double rms = sqrt(ss / (double)m);
        for (size_t j = 0; j < m; j++) {
            size_t i = n == m ? j : rng_next(&w->rng) % n;
            double a = num_get(out, sl->dtype[k], i), b = num_get(ref, sl->dtype[k], i);
            double err = isfinite(a) ? fabs(a - b) / (fabs(b) + rms + 1e-30) : INFINITY;
            int exact = sl->dtype[k] == EMILE_DTYPE_I32 || sl->dtype[k] == EMILE_DTYPE_I64;
            if (!(err <= (exact ? 0 : tol))) {
                char msg[512];
                snprintf(msg, sizeof msg,
                         "%s run %d: output %s wrong at element %zu (%.6g, expected %.6g): every timed run is "
                         "checked, not just the first",
                         what, run_index, sl->tname[k], i, a, b);
                set_status(e->reply, "invalid", msg);
                return -1;
            }
        }
        if (check_output_guards(w, s, k, e->cand.arena + sl->snap[k], (char[256]){0}, 256) != 0) {
            set_status(e->reply, "invalid", "the kernel wrote out of bounds of an output during a timed run");
            return -1;
        }
    }
    return 0;
}

static int validate(eval_state_t *e, double tol)
{
    worker_ctx_t *w = e->w;
    const int sets[] = {SLOT_TASK, SLOT_RAGGED, SLOT_SMALL};
    char msg[512];
    for (size_t i = 0; i < 3; i++) {
        int s = sets[i];
        const slot_layout_t *sl = &w->layout.slots[s];
        run_result_t res;
        int rc = upload_slot(w, &e->cand, s);
        if (rc == RUNNER_OK)
            rc = run_slot(&e->cand, s, 0, &res);
        if (rc != RUNNER_OK) {
            runner_failure(e, rc, sl->name);
            return -1;
        }
        if (res.rc != 0) {
            snprintf(msg, sizeof msg, "the kernel returned %d on set %s", res.rc, sl->name);
            set_status(e->reply, "invalid", msg);
            return -1;
        }
        if (check_slot_outputs(e, s, sl->name, w->expected[s], tol) != 0)
            return -1;
        rc = fetch_slot(w, &e->cand, s);
        if (rc != RUNNER_OK) {
            runner_failure(e, rc, "fetch");
            return -1;
        }
        if (check_inputs_and_guards(w, s, e->cand.arena, msg, sizeof msg) != 0) {
            set_status(e->reply, "invalid", msg);
            return -1;
        }
    }
    /* The same inputs again: a race or a read of memory nothing wrote
     * shows as a different answer. */
    const slot_layout_t *sl = &w->layout.slots[SLOT_TASK];
    void *first[OP_MAX_TENSORS] = {0};
    for (int k = 0; k < sl->n_tensors; k++)
        if (sl->is_out[k]) {
            first[k] = malloc(sl->bytes[k]);
            memcpy(first[k], e->cand.arena + sl->snap[k] + LAYOUT_GUARD, sl->bytes[k]);
        }
    run_result_t res;
    int rc = run_slot(&e->cand, SLOT_TASK, 0, &res);
    int ret = 0;
    if (rc != RUNNER_OK) {
        runner_failure(e, rc, "repeat run");
        ret = -1;
    } else if (check_slot_outputs(e, SLOT_TASK, "repeat", first, tol / 4) != 0) {
        const char *m = json_string_value(json_object_get(e->reply, "error"));
        snprintf(msg, sizeof msg, "a repeated run on the same inputs disagrees with the first (a race, or a read "
                                  "of memory nothing wrote): %s", m ? m : "");
        set_status(e->reply, "invalid", msg);
        ret = -1;
    }
    for (int k = 0; k < sl->n_tensors; k++)
        free(first[k]);
    return ret;
}

/* Copy slot s's inputs and guards from the reference's arena (where they
 * were drawn) into the candidate's. */
static void show_slot(worker_ctx_t *w, runner_t *cand, int s)
{
    const slot_layout_t *sl = &w->layout.slots[s];
    memcpy(cand->arena + sl->begin, w->ref.arena + sl->begin, sl->end - sl->begin);
}

/* One run on a set held back until now: a kernel that is fast only on
 * inputs it has seen before (a cache keyed on their content) is slow here.
 * Fills *fresh_ns; -1 (status set) when the kernel fails or is caught. */
static int held_back_run(eval_state_t *e, double tol, double median_ns, double *fresh_ns)
{
    worker_ctx_t *w = e->w;
    const slot_layout_t *held = &w->layout.slots[SLOT_HELD], *seen = &w->layout.slots[SLOT_TIMING];
    /* First a decoy run in the held set's memory with inputs the kernel has
     * already seen: pages, TLB and threads are warm for the real run, so an
     * honest kernel pays no first-touch cost there; a cache hits on it and
     * learns nothing about the held-back inputs. */
    memcpy(e->cand.arena + held->begin, w->ref.arena + seen->begin, held->end - held->begin);
    run_result_t res;
    int rc = upload_slot(w, &e->cand, SLOT_HELD);
    if (rc == RUNNER_OK)
        rc = run_slot(&e->cand, SLOT_HELD, 1, &res);
    /* Now the held-back inputs themselves, in the same memory. */
    if (rc == RUNNER_OK) {
        show_slot(w, &e->cand, SLOT_HELD);
        rc = upload_slot(w, &e->cand, SLOT_HELD);
    }
    if (rc == RUNNER_OK)
        rc = run_slot(&e->cand, SLOT_HELD, 1, &res);
    if (rc != RUNNER_OK) {
        runner_failure(e, rc, "held-back run");
        return -1;
    }
    if (res.rc != 0 || check_slot_outputs(e, SLOT_HELD, "held-back", w->expected[SLOT_HELD], tol) != 0) {
        if (res.rc != 0)
            set_status(e->reply, "invalid", "the kernel returned an error on the held-back set");
        return -1;
    }
    *fresh_ns = res.elapsed_ns;
    /* 4x the median plus 0.2 ms: well above noise and first-touch effects
     * of an honest kernel, far below what a cache's miss costs. */
    if (res.elapsed_ns > 4 * median_ns + 200e3) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "a run on inputs the kernel had never seen took %.4g ms, %.1fx the median of the timed runs "
                 "(%.4g ms) on inputs it had seen: it is fast only on inputs it has seen before (a cache?)",
                 res.elapsed_ns * 1e-6, res.elapsed_ns / median_ns, median_ns * 1e-6);
        set_status(e->reply, "invalid", msg);
        return -1;
    }
    return 0;
}

static int time_kernel(eval_state_t *e, double tol, const json_t *options, json_t *kernels,
                       const backend_t *b)
{
    worker_ctx_t *w = e->w;
    /* Inputs the kernel has never seen, shown to it only now. */
    const int slots[2] = {SLOT_TIMING, SLOT_TIMING2};
    for (int i = 0; i < 2; i++) {
        int s = slots[i];
        show_slot(w, &e->cand, s);
        int rc = upload_slot(w, &e->cand, s);
        if (rc != RUNNER_OK) {
            runner_failure(e, rc, "upload");
            return -1;
        }
    }
    int cuda = strcmp(b->name, "cuda") == 0;
    int warmup = cuda ? 3 : 2;
    double est = 0;
    run_result_t res;
    for (int i = 0; i < warmup; i++) {
        int s = slots[rng_next(&w->rng) & 1];
        int rc = run_slot(&e->cand, s, 1, &res);
        if (rc != RUNNER_OK) {
            runner_failure(e, rc, "warm-up");
            return -1;
        }
        if (check_sampled(e, s, tol, "warm-up", i) != 0)
            return -1;
        est = res.elapsed_ns;
    }
    int reps = (int)json_integer_value(json_object_get(options, "reps"));
    if (reps <= 0) {
        double budget_ns = (cuda ? 0.3 : 1.0) * 1e9;
        reps = est > 0 ? (int)(budget_ns / est) : 10;
        int lo = cuda ? 20 : 5, hi = cuda ? 200 : 50;
        reps = reps < lo ? lo : reps > hi ? hi : reps;
    }
    double *el = calloc((size_t)reps, sizeof(double)), *cpu = calloc((size_t)reps, sizeof(double));
    if (!el || !cpu) {
        free(el);
        free(cpu);
        set_status(e->reply, "error", "out of memory for the timings");
        return -1;
    }
    int escaped = 0;
    for (int i = 0; i < reps; i++) {
        int s = slots[rng_next(&w->rng) & 1];
        int rc = run_slot(&e->cand, s, 1, &res);
        if (rc != RUNNER_OK) {
            runner_failure(e, rc, "timed run");
            free(el);
            free(cpu);
            return -1;
        }
        if (res.rc != 0 || check_sampled(e, s, tol, "timed", i) != 0) {
            if (res.rc != 0)
                set_status(e->reply, "invalid", "the kernel returned an error during a timed run");
            free(el);
            free(cpu);
            return -1;
        }
        el[i] = res.elapsed_ns;
        cpu[i] = res.cpu_ns;
        escaped += res.escaped;
    }
    profile_input_t in = {
        .backend = b->name,
        .device = w->device,
        .dtype = e->t->dtype,
        .flops = op_flops(&e->t->op, &e->t->params),
        .bytes = op_bytes(&e->t->op, &e->t->params, e->t->dtype),
        .elapsed_ns = el,
        .cpu_ns = cuda ? NULL : cpu,
        .reps = reps,
        .warmup = warmup,
        .escaped_runs = escaped,
        .max_err = e->max_err,
        .kernels = kernels,
        .counters = NULL,
    };
    json_t *rep = profile_report(&in);
    free(el);
    free(cpu);
    double median_ns = json_number_value(json_object_get(json_object_get(rep, "time_ms"), "median")) * 1e6;
    double fresh_ns = 0;
    if (held_back_run(e, tol, median_ns, &fresh_ns) != 0) {
        json_decref(rep);
        return -1;
    }
    json_object_set_new(rep, "held_back_ms", json_real(fresh_ns * 1e-6));
    json_object_set_new(e->reply, "report", rep);
    return 0;
}

/* Per launch of the last run: its configuration (from the runner's
 * capture), the kernel's resources, theoretical occupancy, its limiter and
 * waves; tensor-core instruction counts joined from the static SASS facts. */
static json_t *launch_report(eval_state_t *e, const json_t *static_kernels)
{
    char out[4096];
    json_t *arr = json_array();
    if (runner_cmd(&e->cand, out, sizeof out, "launches", "") != RUNNER_OK)
        return arr;
    char *save = NULL, *tok = strtok_r(out, " ", &save);
    int n = tok ? atoi(tok) : 0;
    occ_device_t od;
    occ_device_for_cc((int)json_integer_value(json_object_get(e->w->device, "compute_capability")),
                      (int)json_integer_value(json_object_get(e->w->device, "sms")), &od);
    for (int i = 0; i < n && i < 8; i++) {
        char *name = strtok_r(NULL, " ", &save);
        long long v[11];
        int ok = name != NULL;
        for (int k = 0; k < 11 && ok; k++) {
            char *t = strtok_r(NULL, " ", &save);
            ok = t != NULL;
            v[k] = ok ? strtoll(t, NULL, 10) : 0;
        }
        if (!ok)
            break;
        json_t *k = json_object();
        json_object_set_new(k, "name", json_string(name));
        json_object_set_new(k, "grid", json_pack("[III]", v[0], v[1], v[2]));
        json_object_set_new(k, "block", json_pack("[III]", v[3], v[4], v[5]));
        json_object_set_new(k, "dynamic_smem", json_integer(v[6]));
        json_object_set_new(k, "static_smem", json_integer(v[7]));
        json_object_set_new(k, "local", json_integer(v[8]));
        json_object_set_new(k, "registers", json_integer(v[9]));
        if (v[10])
            json_object_set_new(k, "stream", json_string(v[10] == 1 ? "other" : "legacy default"));
        long long threads = v[3] * v[4] * v[5], blocks = v[0] * v[1] * v[2];
        occ_result_t r;
        if (occ_compute(&od, (int)threads, (int)v[9], (int)(v[6] + v[7]), blocks, &r) == 0) {
            json_object_set_new(k, "blocks_per_sm", json_integer(r.blocks_per_sm));
            json_object_set_new(k, "occupancy", json_real(r.occupancy));
            json_object_set_new(k, "limiter", json_string(r.limiter));
            json_object_set_new(k, "waves", json_real(r.waves));
        }
        size_t j;
        json_t *sk;
        json_array_foreach(static_kernels, j, sk) {
            const char *sn = json_string_value(json_object_get(sk, "name"));
            if (sn && strcmp(sn, name) == 0) {
                const char *keys[] = {"hmma", "hgmma", "ldmatrix", "tma", "stack"};
                for (size_t q = 0; q < 5; q++)
                    if (json_object_get(sk, keys[q]))
                        json_object_set(k, keys[q], json_object_get(sk, keys[q]));
            }
        }
        json_array_append_new(arr, k);
    }
    return arr;
}

/* Hardware counters: one more run of the validated kernel on the task's
 * timing inputs, under Nsight Compute.  ncu injects code that talks to its
 * host process, so this run has no seccomp filter and keeps the network
 * namespace off; it keeps the other limits and the unprivileged user. */
static json_t *counters_pass(eval_state_t *e, const backend_t *b, const char *dir, const char *so)
{
    json_t *c = NULL;
    char err[1024] = "";
    if (strcmp(b->name, "cuda") != 0) {
        return json_pack("{sbss}", "available", 0, "why",
                         "hardware counters are read with Nsight Compute on the cuda backend; the cpu backend has none");
    }
    sandbox_limits_t l;
    limits_for(e->t, b, e->w->uid, &l);
    l.isolate_net = 0;
    l.wall_s = e->t->time_limit_s * 10 + 60;   /* ncu replays each kernel many times */
    l.fsize_bytes = (size_t)16 << 20;
    const char *wrap[] = {ncu_path(), "--csv", "--metrics", ncu_metrics(), "--target-processes", "all", NULL};
    runner_t r;
    int rc = runner_start_wrapped(&r, b, dir, so, e->w->layout.total, &l, wrap, 1);
    if (rc == RUNNER_OK)
        rc = bind_all(e->w, &r);
    if (rc == RUNNER_OK) {
        const slot_layout_t *sl = &e->w->layout.slots[SLOT_TIMING];
        memcpy(r.arena + sl->begin, e->w->ref.arena + sl->begin, sl->end - sl->begin);
        rc = upload_slot(e->w, &r, SLOT_TIMING);
    }
    run_result_t res;
    if (rc == RUNNER_OK)
        rc = run_slot(&r, SLOT_TIMING, 0, &res);
    if (rc != RUNNER_OK)
        snprintf(err, sizeof err, "%.1000s", r.msg);
    /* quit, and let ncu print its report before it exits */
    if (r.proc.ctl >= 0)
        send(r.proc.ctl, "quit\n", 5, MSG_NOSIGNAL);
    for (int i = 0; i < 600 && !r.proc.exited; i++) {
        int st;
        if (waitpid(r.proc.pid, &st, WNOHANG) == r.proc.pid) {
            r.proc.exited = 1;
            r.proc.status = st;
        } else {
            usleep(100000);
        }
    }
    char *log = fs_read_file(r.proc.log_path, (size_t)16 << 20, NULL);
    runner_stop(&r);
    if (log && ncu_parse_csv(log, &c, err + strlen(err), sizeof err - strlen(err)) == 0) {
        json_object_set_new(c, "available", json_true());
        json_object_set_new(c, "tool", json_string(ncu_path()));
    } else {
        c = json_pack("{sbss}", "available", 0, "why", err[0] ? err : "ncu did not run (is it installed?)");
    }
    free(log);
    return c;
}

static int ensure_device(worker_ctx_t *w, const backend_t *b, char *err, size_t n)
{
    if (w->device && strcmp(w->device_backend, b->name) == 0)
        return 0;
    json_decref(w->device);
    w->device = NULL;
    if (backend_device(b, 0, &w->device, err, n) != 0)
        return -1;
    snprintf(w->device_backend, sizeof w->device_backend, "%s", b->name);
    return 0;
}

json_t *worker_evaluate(worker_ctx_t *w, const json_t *task_json, const char *source, const json_t *options)
{
    double t_start = clock_mono_s();
    eval_state_t e;
    memset(&e, 0, sizeof e);
    e.w = w;
    e.cand.arena_fd = -1;
    e.reply = json_object();
    json_object_set_new(e.reply, "ok", json_true());
    set_status(e.reply, "error", NULL);
    char err[1024];
    const char *bname = json_string_value(json_object_get(task_json, "backend"));
    const backend_t *b = backend_find(bname ? bname : "cpu");
    if (!b) {
        set_status(e.reply, "error", "unknown backend");
        return e.reply;
    }
    if (ensure_device(w, b, err, sizeof err) != 0) {
        set_status(e.reply, "error", err);
        return e.reply;
    }
    int ref_rc = ensure_reference(w, task_json, b);
    if (ref_rc != 0) {
        set_status(e.reply, ref_rc == -2 ? "error" : "reference_invalid", w->ref_error);
        return e.reply;
    }
    e.t = &w->ref_task;
    /* Inputs: fresh entropy by default; a task seed makes them reproducible
     * (the n-th evaluation of a worker draws from seed + n). */
    if (e.t->seed)
        rng_seed(&w->rng, e.t->seed + (uint64_t)w->counter);
    json_object_set(e.reply, "oracle", w->ref_oracle);
    int python = task_reference_is_python(e.t);
    if (python && strcmp(source, e.t->reference_source) == 0) {
        json_decref(e.reply);
        e.reply = reference_python_iteration(&w->py, e.t, w->device, &w->rng, w->ref_oracle);
        json_object_set_new(e.reply, "seconds", json_real(clock_mono_s() - t_start));
        return e.reply;
    }
    char dir[900], so[1000];
    if (make_dir(w, "cand", dir, sizeof dir) != 0) {
        snprintf(err, sizeof err, "cannot prepare %s: %s", dir, strerror(errno));
        set_status(e.reply, "error", err);
        return e.reply;
    }
    json_t *compile = json_object();
    json_object_set_new(e.reply, "compile", compile);
    if (compile_kernel(w, b, e.t, dir, source, json_string_value(json_object_get(task_json, "lang")), compile, so,
                       sizeof so) != 0) {
        const char *why = json_string_value(json_object_get(compile, "error"));
        set_status(e.reply, "compile_error", why ? why : "the kernel does not compile (see compile.log)");
        fs_rm_rf(dir);
        return e.reply;
    }
    json_t *kernels = NULL;
    if (b->inspect(so, dir, &kernels, err, sizeof err) != 0) {
        kernels = json_array();
        json_object_set_new(compile, "inspect_error", json_string(err));
    }
    /* Every input set and its expected output, before the candidate runs:
     * a candidate that grabs all device memory cannot starve the
     * reference, and the reference never runs while a candidate lives. */
    for (int s = 0; s < w->layout.n_slots; s++) {
        if (python ? reference_python_fill(&w->py, e.t, &w->layout, s, &w->rng, w->ref.arena, &w->pristine[s],
                                           w->expected[s], w->ref_error, sizeof w->ref_error) != 0
                   : (draw_inputs(w, e.t, s, w->ref.arena), reference_expect(w, s) != 0)) {
            set_status(e.reply, "reference_invalid", w->ref_error);
            fs_rm_rf(dir);
            json_decref(kernels);
            return e.reply;
        }
    }
    sandbox_limits_t l;
    limits_for(e.t, b, w->uid, &l);
    e.validation = json_object();
    e.checks = json_array();
    json_object_set_new(e.validation, "checks", e.checks);
    json_object_set_new(e.reply, "validation", e.validation);
    int rc = runner_start(&e.cand, b, dir, so, w->layout.total, &l);
    json_t *sb = json_object();
    json_object_set_new(sb, "seccomp", json_boolean(e.cand.seccomp));
    json_object_set_new(sb, "network_isolated", json_boolean(e.cand.proc.net_isolated));
    json_object_set_new(sb, "uid", json_integer(e.cand.uid));
    json_object_set_new(e.reply, "sandbox", sb);
    if (rc != RUNNER_OK) {
        runner_failure(&e, rc, "loading the kernel");
    } else if ((rc = bind_all(w, &e.cand)) != RUNNER_OK) {
        runner_failure(&e, rc, "bind");
    } else {
        /* Only the validation sets now: the timing sets appear in the
         * candidate's arena when timing starts, the held-back set last. */
        for (int s = SLOT_TASK; s <= SLOT_SMALL; s++)
            show_slot(w, &e.cand, s);
        double tol = tolerance(e.t);
        if (validate(&e, tol) == 0) {
            json_object_set_new(e.validation, "ok", json_true());
            if (strcmp(b->name, "cuda") == 0) {
                json_t *launched = launch_report(&e, kernels);
                size_t li;
                json_t *lk;
                json_array_foreach(launched, li, lk) {
                    /* The ABI: all work on the stream given.  Work elsewhere
                     * could overlap the harness's flush and escape the timer. */
                    const char *other = json_string_value(json_object_get(lk, "stream"));
                    if (!other)
                        continue;
                    char msg[512];
                    snprintf(msg, sizeof msg, "the kernel launched %s on the %s stream, not on the stream it was given",
                             json_string_value(json_object_get(lk, "name")), other);
                    set_status(e.reply, "invalid", msg);
                    break;
                }
                if (json_array_size(launched) > 0) {
                    json_decref(kernels);
                    kernels = launched;
                } else {
                    json_decref(launched);
                }
            }
            int timing = !json_is_false(json_object_get(options, "timing"));
            const char *st_now = json_string_value(json_object_get(e.reply, "status"));
            if (st_now && strcmp(st_now, "invalid") == 0) {
                /* rejected after validation (e.g. work on another stream) */
            } else if (!timing || time_kernel(&e, tol, options, kernels, b) == 0) {
                set_status(e.reply, "valid", NULL);
                json_t *rep = json_object_get(e.reply, "report");
                if (rep && json_is_true(json_object_get(options, "counters"))) {
                    json_object_set_new(rep, "counters", counters_pass(&e, b, dir, so));
                    json_object_set_new(rep, "diagnosis", profile_diagnose(rep, w->device, e.t->dtype));
                }
            }
        }
    }
    if (!json_object_get(e.validation, "ok"))
        json_object_set_new(e.validation, "ok", json_false());
    json_decref(kernels);
    runner_stop(&e.cand);
    fs_rm_rf(dir);
    json_object_set_new(e.reply, "seconds", json_real(clock_mono_s() - t_start));
    return e.reply;
}

json_t *worker_devices(worker_ctx_t *w, const char *backend, int remeasure)
{
    (void)w;
    json_t *reply = json_object(), *devs = json_array(), *unavail = json_array();
    const char *names[] = {"cpu", "cuda"};
    for (size_t i = 0; i < 2; i++) {
        if (backend && *backend && strcmp(backend, names[i]) != 0)
            continue;
        const backend_t *b = backend_find(names[i]);
        json_t *d = NULL;
        char err[1024];
        if (backend_device(b, remeasure, &d, err, sizeof err) == 0) {
            json_array_append_new(devs, d);
        } else {
            json_t *u = json_object();
            json_object_set_new(u, "backend", json_string(names[i]));
            json_object_set_new(u, "why", json_string(err));
            json_array_append_new(unavail, u);
        }
    }
    json_object_set_new(reply, "ok", json_true());
    json_object_set_new(reply, "devices", devs);
    json_object_set_new(reply, "unavailable", unavail);
    return reply;
}
