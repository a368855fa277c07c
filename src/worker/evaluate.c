/*
 * evaluate.c -- compile, validate and profile one kernel (see evaluate.h):
 * the orchestration only.
 *
 *   1. the task (once while it stays the same): its layout, its oracle
 *      (oracle.c: the reference built, started and checked against the
 *      op's float64 evaluation) and the yardstick (calibrate.c);
 *   2. the candidate compiled in the compile sandbox (compile.c);
 *   3. every input set of this evaluation drawn and answered by the
 *      oracle before the candidate starts: the candidate can neither
 *      starve the reference nor ever meet it;
 *   4. the candidate's runner started (candidate.c) and validated on three
 *      sets (the task's sizes, a ragged size, a small size with another
 *      batch): every element within tolerance, none NaN, the guards and
 *      the inputs untouched (validate.c); then the first set again, which
 *      must agree with the first run;
 *   5. timed (timing.c): warm-up, timed runs on two sets it had never seen,
 *      the outside clock's verdict, the roofline, the held-back sets;
 *   6. on cuda, launch facts and, on request, hardware counters
 *      (device_facts.c).
 */
#include "evaluate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calibrate.h"
#include "compile.h"
#include "device_facts.h"
#include "kernel_env.h"
#include "profile/report.h"
#include "runner/cache_size.h"
#include "sandbox/sandbox.h"
#include "timing.h"
#include "util/clock.h"
#include "util/fs.h"
#include "validate.h"
#include "worker_internal.h"

/* ---- the context ---------------------------------------------------------- */

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
    /* Others may pass through (the sandbox users) but not list it. */
    chmod(w->base, 0711);
    w->cand_uid = sandbox_untrusted_uid();
    w->ref_uid = sandbox_reference_uid();
    rng_seed(&w->rng, rng_entropy());
    return w;
}

void worker_ctx_set_progress(worker_ctx_t *w, worker_progress_fn fn, void *user)
{
    w->progress = fn;
    w->progress_user = user;
}

static void free_task(worker_ctx_t *w)
{
    calibrate_stop(w);
    if (w->oracle)
        w->oracle->ops->free(w->oracle);
    w->oracle = NULL;
    if (w->task_loaded)
        task_free(&w->task);
    w->task_loaded = 0;
    for (int s = 0; s < N_SETS; s++) {
        free(w->sets[s].pristine);
        for (int k = 0; k < OP_MAX_TENSORS; k++)
            free(w->sets[s].expected[k]);
        memset(&w->sets[s], 0, sizeof w->sets[s]);
    }
    json_decref(w->oracle_check);
    w->oracle_check = NULL;
    free(w->task_key);
    w->task_key = NULL;
}

void worker_ctx_free(worker_ctx_t *w)
{
    if (!w)
        return;
    free_task(w);
    json_decref(w->device);
    free(w->flush_buf);
    fs_rm_rf(w->base);
    free(w);
}

/* ---- status and progress ---------------------------------------------------- */

void eval_set_status(json_t *reply, const char *status, const char *error)
{
    json_object_set_new(reply, "status", json_string(status));
    json_object_set_new(reply, "error", error ? json_string(error) : json_null());
}

void eval_runner_failure(eval_state_t *e, int rc, const char *when)
{
    char msg[2048];
    snprintf(msg, sizeof msg, "%s: %.1900s", when, e->cand.msg);
    const char *status = e->cand.forged || rc != RUNNER_DIED ? "invalid" : e->cand.proc.timed_out ? "timeout" : "crashed";
    eval_set_status(e->reply, status, msg);
}

static void progress(worker_ctx_t *w, const char *phase, const char *detail, int k, int n)
{
    if (!w->progress)
        return;
    json_t *ev = json_pack("{sssssssisisf}", "event", "progress", "phase", phase, "detail", detail ? detail : "", "k",
                           k, "n", n, "elapsed_s", clock_mono_s() - w->eval_start);
    if (ev)
        w->progress(ev, w->progress_user);
    json_decref(ev);
}

void eval_progress(eval_state_t *e, const char *phase, const char *detail, int k, int n)
{
    progress(e->w, phase, detail, k, n);
}

/* ---- the device and the task ------------------------------------------------ */

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

static char *task_key(const json_t *task_json)
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

int worker_task_fits(const task_t *t, const json_t *device, char *err, size_t n)
{
    double mem = json_number_value(json_object_get(device, "memory_bytes"));
    double bytes = 0, out = 0;
    for (int k = 0; k < t->op.n_tensors; k++) {
        double b = (double)op_tensor_numel(&t->op, k, &t->params) *
                   (double)emile_dtype_size(op_tensor_dtype(&t->op, k, t->dtype));
        bytes += b;
        if (t->op.tensors[k].is_output)
            out += b;
    }
    /* Two arenas (the reference's, the candidate's) of six slots, each
     * with its outputs' snapshots. */
    double need = 12 * (bytes + out);
    if (mem > 0 && need > mem) {
        snprintf(err, n, "the task's tensors take %.3g GB (about %.3g GB with the harness's copies): more memory "
                         "than this %s device has (%.3g GB); reduce the sizes",
                 bytes / 1e9, need / 1e9, t->backend, mem / 1e9);
        return -1;
    }
    return 0;
}

static int build_layout(const task_t *t, arena_layout_t *a, char *err, size_t n)
{
    memset(a, 0, sizeof *a);
    op_params_t ragged, small;
    op_validation_params(&t->op, &t->params, &ragged, &small);
    static const char *names[N_SLOTS] = {"task", "ragged", "small", "timing", "timing2", "held"};
    for (int s = 0; s < N_SLOTS; s++) {
        const op_params_t *p = s == SLOT_RAGGED ? &ragged : s == SLOT_SMALL ? &small : &t->params;
        if (layout_add_slot(a, names[s], &t->op, p, t->dtype, err, n) != 0)
            return -1;
    }
    return 0;
}

static int alloc_sets(worker_ctx_t *w)
{
    static const struct { int slot; const char *name; } def[N_SETS] = {
        {SLOT_TASK, "task"},     {SLOT_RAGGED, "ragged"}, {SLOT_SMALL, "small"}, {SLOT_TIMING, "timing"},
        {SLOT_TIMING2, "timing2"}, {SLOT_HELD, "held-1"}, {SLOT_HELD, "held-2"}, {SLOT_HELD, "held-3"}};
    for (int s = 0; s < N_SETS; s++) {
        const slot_layout_t *sl = &w->layout.slots[def[s].slot];
        w->sets[s].slot = def[s].slot;
        snprintf(w->sets[s].name, sizeof w->sets[s].name, "%s", def[s].name);
        if (!(w->sets[s].pristine = malloc(sl->end - sl->begin)))
            return -1;
    }
    return 0;
}

/* The task's state, kept while the task stays the same: 0, or the
 * ORACLE_* code with w->task_error. */
static int ensure_task(worker_ctx_t *w, const json_t *task_json, const backend_t *b)
{
    char *key = task_key(task_json);
    if (w->task_key && key && strcmp(key, w->task_key) == 0) {
        free(key);
        return w->task_status;
    }
    free_task(w);
    w->task_key = key;
    w->task_status = ORACLE_INVALID;
    w->task_error[0] = 0;
    w->backend = b;
    task_init(&w->task);
    w->task_loaded = 1;
    char err[1024];
    if (task_from_json(&w->task, task_json, NULL, err, sizeof err) != 0 ||
        task_finalize(&w->task, err, sizeof err) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "bad task: %s", err);
        return w->task_status;
    }
    if (worker_task_fits(&w->task, w->device, err, sizeof err) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "%s", err);
        return w->task_status = ORACLE_ERROR;
    }
    if (build_layout(&w->task, &w->layout, err, sizeof err) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "bad task: %s", err);
        return w->task_status;
    }
    if (alloc_sets(w) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "out of memory for the input sets");
        return w->task_status = ORACLE_ERROR;
    }
    progress(w, "reference", "building and checking the reference", 0, 0);
    oracle_env_t env = {.task = &w->task, .layout = &w->layout, .backend = b, .base = w->base,
                        .counter = &w->counter, .uid = w->ref_uid, .rng = &w->rng};
    w->oracle = oracle_reference_new(&env);
    if (!w->oracle) {
        snprintf(w->task_error, sizeof w->task_error, "out of memory");
        return w->task_status = ORACLE_ERROR;
    }
    int rc = w->oracle->ops->prepare(w->oracle, w->task_error, sizeof w->task_error);
    w->oracle_check = w->oracle->ops->describe(w->oracle);
    if (rc != ORACLE_OK)
        return w->task_status = rc;
    /* The yardstick for this task's commands on this machine; without it
     * the timing policy uses a fixed, looser bound (and says so). */
    if (calibrate_task(w, err, sizeof err) != 0)
        fprintf(stderr, "emile worker: %s\n", err);
    if (!b->host_mem_limit || w->flush_buf) {
        w->task_status = ORACLE_OK;
        return 0;
    }
    char src[200];
    w->flush_bytes = cache_flush_bytes("/sys", 0, src, sizeof src);
    w->flush_buf = calloc(1, w->flush_bytes);
    if (!w->flush_buf)
        w->flush_bytes = 0;
    w->task_status = ORACLE_OK;
    return 0;
}

/* Every set of this evaluation drawn and answered.  0, or the ORACLE_*
 * code with err. */
static int fill_sets(worker_ctx_t *w, char *err, size_t n)
{
    for (int s = 0; s < N_SETS; s++) {
        char detail[64];
        snprintf(detail, sizeof detail, "set %s (%d of %d)", w->sets[s].name, s + 1, N_SETS);
        progress(w, "reference", detail, s + 1, N_SETS);
        int rc = w->oracle->ops->fill(w->oracle, w->sets[s].slot, w->sets[s].name, w->sets[s].pristine,
                                      w->sets[s].expected, err, n);
        if (rc != ORACLE_OK)
            return rc;
    }
    return ORACLE_OK;
}

/* ---- validation ---------------------------------------------------------------- */

static int bind_all(eval_state_t *e)
{
    for (int s = 0; s < e->w->layout.n_slots; s++) {
        char *line = layout_bind_line(&e->w->layout, s, "");
        int rc = line ? runner_cmd(&e->cand, NULL, 0, 0, "bind", line + strlen("bind  ")) : RUNNER_ERR;
        free(line);
        if (rc != RUNNER_OK)
            return rc;
    }
    return RUNNER_OK;
}

/* Full checks of the last run's outputs against set s (or against `against`
 * when given, with tolerance tol: the repeat run). */
static int check_outputs(eval_state_t *e, int set, const char *name, void *const *against, double tol)
{
    const input_set_t *is = &e->w->sets[set];
    const slot_layout_t *sl = &e->w->layout.slots[is->slot];
    char msg[512];
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        const void *exp = against ? against[k] : is->expected[k];
        if (validate_output(sl, k, e->out[k], exp, is->pristine, tol, name, e->checks, against ? NULL : &e->max_err,
                            msg, sizeof msg) != 0) {
            eval_set_status(e->reply, "invalid", msg);
            return -1;
        }
    }
    return 0;
}

/* The inputs and guards as drawn after a run (cuda: fetched back first). */
static int check_inputs(eval_state_t *e, int set)
{
    const input_set_t *is = &e->w->sets[set];
    const slot_layout_t *sl = &e->w->layout.slots[is->slot];
    if (e->cuda) {
        char args[64];
        snprintf(args, sizeof args, "%zu %zu", sl->begin, sl->end - sl->begin);
        int rc = runner_cmd(&e->cand, NULL, 0, 0, "fetch", args);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, "fetch");
            return -1;
        }
    }
    char msg[512];
    if (validate_inputs_and_guards(sl, e->cand.arena + sl->begin, is->pristine, msg, sizeof msg) != 0) {
        eval_set_status(e->reply, "invalid", msg);
        return -1;
    }
    return 0;
}

/* The outputs of the last run's data (no guards), copied. */
static int keep_outputs(eval_state_t *e, void **keep)
{
    const slot_layout_t *sl = &e->w->layout.slots[e->out_slot];
    for (int k = 0; k < sl->n_tensors; k++)
        if (sl->is_out[k]) {
            if (!(keep[k] = malloc(sl->bytes[k])))
                return -1;
            memcpy(keep[k], e->out[k] + LAYOUT_GUARD, sl->bytes[k]);
        }
    return 0;
}

static int validate_sets(eval_state_t *e)
{
    const int sets[] = {SET_TASK, SET_RAGGED, SET_SMALL};
    char msg[512];
    void *first[OP_MAX_TENSORS] = {0};
    int ret = 0;
    for (int i = 0; i < 3 && ret == 0; i++) {
        int s = sets[i];
        progress(e->w, "validate", e->w->sets[s].name, i + 1, 4);
        run_result_t res;
        int rc = cand_show(e, s);
        if (rc == RUNNER_OK)
            rc = cand_run(e, e->w->sets[s].slot, 0, &res);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, e->w->sets[s].name);
            ret = -1;
        } else if (res.rc != 0) {
            const char *name = emile_status_str(res.rc);
            snprintf(msg, sizeof msg, "the kernel returned %d%s%s%s on set %s", res.rc, name ? " (" : "",
                     name ? name : "", name ? ")" : "", e->w->sets[s].name);
            eval_set_status(e->reply, "invalid", msg);
            ret = -1;
        } else if (check_outputs(e, s, e->w->sets[s].name, NULL, e->tol) != 0 || check_inputs(e, s) != 0) {
            ret = -1;
        } else if (s == SET_TASK && keep_outputs(e, first) != 0) {
            eval_set_status(e->reply, "error", "out of memory");
            ret = -1;
        }
    }
    /* The first set again (its inputs are still in place): a race or a read
     * of memory nothing wrote shows as a different answer. */
    if (ret == 0) {
        progress(e->w, "validate", "repeat", 4, 4);
        run_result_t res;
        int rc = cand_run(e, SLOT_TASK, 0, &res);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, "repeat run");
            ret = -1;
        } else if (check_outputs(e, SET_TASK, "repeat", first, e->tol / 4) != 0) {
            const char *m = json_string_value(json_object_get(e->reply, "error"));
            snprintf(msg, sizeof msg, "a repeated run on the same inputs disagrees with the first (a race, or a "
                                      "read of memory nothing wrote): %s", m ? m : "");
            eval_set_status(e->reply, "invalid", msg);
            ret = -1;
        } else if ((rc = cand_settle(e)) != RUNNER_OK) {
            eval_runner_failure(e, rc, "after validation");
            ret = -1;
        }
    }
    for (int k = 0; k < OP_MAX_TENSORS; k++)
        free(first[k]);
    return ret;
}

/* cuda: the launches of the last run; work on another stream than the
 * one given is invalid (it could overlap the harness's flush and escape
 * the timer).  Replaces *kernels when launches were seen. */
static int check_launches(eval_state_t *e, json_t **kernels)
{
    json_t *launched = device_launch_report(e, *kernels);
    size_t li;
    json_t *lk;
    int bad = 0;
    json_array_foreach(launched, li, lk) {
        const char *other = json_string_value(json_object_get(lk, "stream"));
        if (!other || bad)
            continue;
        char msg[512];
        snprintf(msg, sizeof msg, "the kernel launched %s on the %s stream, not on the stream it was given",
                 json_string_value(json_object_get(lk, "name")), other);
        eval_set_status(e->reply, "invalid", msg);
        bad = 1;
    }
    if (json_array_size(launched) > 0) {
        json_decref(*kernels);
        *kernels = launched;
    } else {
        json_decref(launched);
    }
    return bad ? -1 : 0;
}

static json_t *sandbox_object(const eval_state_t *e)
{
    json_t *sb = json_object();
    char lay[128];
    sandbox_describe_layers(e->cand.proc.layers | (e->cand.landlock > 0 ? SANDBOX_LANDLOCK : 0), lay, sizeof lay);
    json_object_set_new(sb, "seccomp", json_boolean(e->cand.seccomp));
    json_object_set_new(sb, "network_isolated", json_boolean(e->cand.proc.net_isolated));
    json_object_set_new(sb, "uid", json_integer(e->cand.uid));
    json_object_set_new(sb, "layers", json_string(lay));
    json_object_set_new(sb, "landlock_abi", json_integer(e->cand.landlock));
    json_object_set_new(sb, "pid_namespace", json_boolean((e->cand.proc.layers & SANDBOX_PID) != 0));
    json_object_set_new(sb, "user_namespace", json_boolean((e->cand.proc.layers & SANDBOX_USER) != 0));
    json_object_set_new(sb, "private_proc", json_boolean((e->cand.proc.layers & SANDBOX_PROC) != 0));
    if (e->w->ref_uid >= 0)
        json_object_set_new(sb, "reference_uid", json_integer(e->w->ref_uid));
    return sb;
}

/* ---- the evaluation -------------------------------------------------------------- */

static void finish(eval_state_t *e, const char *dir, json_t *kernels)
{
    if (!json_object_get(e->validation, "ok"))
        json_object_set_new(e->validation, "ok", json_false());
    json_decref(kernels);
    runner_stop(&e->cand);
    for (int k = 0; k < OP_MAX_TENSORS; k++)
        free(e->out[k]);
    if (dir && dir[0])
        fs_rm_rf(dir);
    json_object_set_new(e->reply, "seconds", json_real(clock_mono_s() - e->w->eval_start));
}

/* Validate, time and profile the compiled candidate in dir (so). */
static void run_candidate(eval_state_t *e, const json_t *options, const char *dir, const char *so, json_t **kernels)
{
    sandbox_limits_t l;
    kernel_runner_limits(e->t, e->b, e->w->cand_uid, &l);
    int rc = runner_start(&e->cand, e->b, dir, so, e->w->layout.total, &l);
    json_object_set_new(e->reply, "sandbox", sandbox_object(e));
    if (rc != RUNNER_OK) {
        eval_runner_failure(e, rc, "loading the kernel");
        return;
    }
    if ((rc = bind_all(e)) != RUNNER_OK) {
        eval_runner_failure(e, rc, "bind");
        return;
    }
    e->cpu_mark = runner_cpu_ns(&e->cand);
    if (validate_sets(e) != 0)
        return;
    json_object_set_new(e->validation, "ok", json_true());
    if (e->cuda && check_launches(e, kernels) != 0)
        return;
    if (!json_is_false(json_object_get(options, "timing")) && timing_run(e, options, *kernels) != 0)
        return;
    eval_set_status(e->reply, "valid", NULL);
    json_t *rep = json_object_get(e->reply, "report");
    if (rep && json_is_true(json_object_get(options, "counters"))) {
        progress(e->w, "counters", "one more run under Nsight Compute", 0, 0);
        json_object_set_new(rep, "counters", device_counters(e, dir, so));
        json_object_set_new(rep, "diagnosis", profile_diagnose(rep, e->w->device, e->t->dtype));
    }
}

json_t *worker_evaluate(worker_ctx_t *w, const json_t *task_json, const char *source, const json_t *options)
{
    w->eval_start = clock_mono_s();
    eval_state_t e;
    memset(&e, 0, sizeof e);
    e.w = w;
    e.cand.arena_fd = -1;
    e.cand.proc.pid = -1;
    e.cand.proc.ctl = -1;
    e.reply = json_object();
    json_object_set_new(e.reply, "ok", json_true());
    eval_set_status(e.reply, "error", NULL);
    char err[2048];
    const char *bname = json_string_value(json_object_get(task_json, "backend"));
    e.b = backend_find(bname ? bname : "cpu");
    if (!e.b) {
        eval_set_status(e.reply, "error", "unknown backend");
        return e.reply;
    }
    e.cuda = strcmp(e.b->name, "cuda") == 0;
    if (ensure_device(w, e.b, err, sizeof err) != 0) {
        eval_set_status(e.reply, "error", err);
        return e.reply;
    }
    int trc = ensure_task(w, task_json, e.b);
    if (trc != ORACLE_OK) {
        eval_set_status(e.reply, trc == ORACLE_ERROR ? "error" : "reference_invalid", w->task_error);
        return e.reply;
    }
    e.t = &w->task;
    e.tol = e.t->tolerance > 0 ? e.t->tolerance : op_tolerance(&e.t->op, e.t->dtype);
    /* Inputs: fresh entropy by default; a task seed makes them reproducible
     * (the n-th evaluation of a worker draws from seed + n). */
    if (e.t->seed)
        rng_seed(&w->rng, e.t->seed + (uint64_t)w->counter);
    json_object_set(e.reply, "oracle", w->oracle_check);
    char dir[900] = "", so[1000];
    if (kernel_dir_make(w->base, "cand", &w->counter, &w->rng, w->cand_uid, dir, sizeof dir) != 0) {
        snprintf(err, sizeof err, "cannot prepare %s: %s", dir, strerror(errno));
        eval_set_status(e.reply, "error", err);
        return e.reply;
    }
    progress(w, "compile", json_string_value(json_object_get(options, "source_name")), 0, 0);
    json_t *compile = json_object();
    json_object_set_new(e.reply, "compile", compile);
    e.validation = json_object();
    e.checks = json_array();
    json_object_set_new(e.validation, "checks", e.checks);
    json_t *kernels = NULL;
    if (compile_kernel(e.b, e.t, w->cand_uid, dir, source, json_string_value(json_object_get(task_json, "lang")),
                       json_string_value(json_object_get(options, "source_name")), compile, so, sizeof so) != 0) {
        const char *why = json_string_value(json_object_get(compile, "error"));
        eval_set_status(e.reply, "compile_error", why ? why : "the kernel does not compile (the reply's compile.log "
                                                              "holds the compiler's messages)");
        json_decref(e.validation);
        e.validation = NULL;
        fs_rm_rf(dir);
        json_object_set_new(e.reply, "seconds", json_real(clock_mono_s() - w->eval_start));
        return e.reply;
    }
    json_object_set_new(e.reply, "validation", e.validation);
    if (e.b->inspect(so, dir, &kernels, err, sizeof err) != 0) {
        kernels = json_array();
        json_object_set_new(compile, "inspect_error", json_string(err));
    }
    int frc = fill_sets(w, err, sizeof err);
    if (frc != ORACLE_OK)
        eval_set_status(e.reply, frc == ORACLE_ERROR ? "error" : "reference_invalid", err);
    else
        run_candidate(&e, options, dir, so, &kernels);
    finish(&e, dir, kernels);
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
