/*
 * evaluate.c -- compile, validate and profile one kernel (see evaluate.h):
 * the orchestration only.
 *
 *   1. the task (task_state.c, once while it stays the same): its layout,
 *      its oracle (oracle.c: the reference built, started and checked
 *      against the op's float64 evaluation) and the yardstick
 *      (calibrate.c);
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

#include "compile.h"
#include "device_facts.h"
#include "kernel_env.h"
#include "oracle_pytorch.h"
#include "profile/report.h"
#include "sandbox/sandbox.h"
#include "task_state.h"
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

void worker_ctx_free(worker_ctx_t *w)
{
    if (!w)
        return;
    task_state_free(w);
    device_turn_close(&w->turn);
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

void worker_progress(worker_ctx_t *w, const char *phase, const char *detail, int k, int n)
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
    worker_progress(e->w, phase, detail, k, n);
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
    if ((rc = cand_bind(e)) != RUNNER_OK) {
        eval_runner_failure(e, rc, "bind");
        return;
    }
    e->cpu_mark = runner_cpu_ns(&e->cand);
    char err[1300];
    if (device_turn_take(&e->w->turn, DEVICE_PHASE_RUN, "validate", "validating", err, sizeof err) != 0) {
        eval_set_status(e->reply, "error", err);
        return;
    }
    int vrc = validate_candidate(e);
    device_turn_give(&e->w->turn, DEVICE_PHASE_RUN);
    if (vrc != 0)
        return;
    json_object_set_new(e->validation, "ok", json_true());
    if ((e->b->caps & BACKEND_CAP_LAUNCHES) && check_launches(e, kernels) != 0)
        return;
    if (!json_is_false(json_object_get(options, "timing")) && timing_run(e, options, *kernels) != 0)
        return;
    eval_set_status(e->reply, "valid", NULL);
    json_t *rep = json_object_get(e->reply, "report");
    if (rep && json_is_true(json_object_get(options, "counters"))) {
        worker_progress(e->w, "counters", "one more run under Nsight Compute", 0, 0);
        if (device_turn_take(&e->w->turn, DEVICE_PHASE_TIME, "counters", "counters under Nsight Compute", err,
                             sizeof err) != 0) {
            eval_set_status(e->reply, "error", err);
            return;
        }
        json_object_set_new(rep, "counters", device_counters(e, dir, so));
        device_turn_give(&e->w->turn, DEVICE_PHASE_TIME);
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
    e.b = bname ? backend_find(bname) : backend_default();
    if (!e.b) {
        eval_set_status(e.reply, "error", "unknown backend");
        return e.reply;
    }
    e.cuda = e.b->device_memory;
    if (ensure_device(w, e.b, err, sizeof err) != 0) {
        eval_set_status(e.reply, "error", err);
        return e.reply;
    }
    int trc = task_state_ensure(w, task_json, e.b);
    if (trc != ORACLE_OK) {
        eval_set_status(e.reply, trc == ORACLE_ERROR ? "error" : "reference_invalid", w->task_error);
        return e.reply;
    }
    e.t = &w->task;
    e.tol = e.t->tolerance > 0 ? e.t->tolerance : op_tolerance(&e.t->op, e.t->dtype);
    /* Inputs: fresh entropy by default; a task seed makes them reproducible
     * (the n-th evaluation of a worker draws the sets it draws, the kept
     * ones at its first evaluation of the task, from seed + n). */
    if (e.t->seed)
        rng_seed(&w->rng, e.t->seed + (uint64_t)w->counter);
    json_object_set(e.reply, "oracle", w->oracle_check);
    /* A PyTorch problem's reference is no kernel: its own iteration is the
     * oracle's eager run, with both floors (eager, torch.compile). */
    if (task_reference_is_python(e.t) && strcmp(source, e.t->reference_source) == 0) {
        if (device_turn_take(&w->turn, DEVICE_PHASE_TIME, "reference", "timing the PyTorch reference", err,
                             sizeof err) != 0) {
            eval_set_status(e.reply, "error", err);
            return e.reply;
        }
        json_decref(e.reply);
        e.reply = oracle_pytorch_iteration(w->oracle, w->device);
        device_turn_give(&w->turn, DEVICE_PHASE_TIME);
        json_object_set_new(e.reply, "seconds", json_real(clock_mono_s() - w->eval_start));
        return e.reply;
    }
    char dir[900] = "", so[1000];
    if (kernel_dir_make(w->base, "cand", &w->counter, &w->rng, w->cand_uid, dir, sizeof dir) != 0) {
        snprintf(err, sizeof err, "cannot prepare %s: %s", dir, strerror(errno));
        eval_set_status(e.reply, "error", err);
        return e.reply;
    }
    worker_progress(w, "compile", json_string_value(json_object_get(options, "source_name")), 0, 0);
    json_t *compile = json_object();
    json_object_set_new(e.reply, "compile", compile);
    e.validation = json_object();
    e.checks = json_array();
    json_object_set_new(e.validation, "checks", e.checks);
    json_t *kernels = NULL;
    if (compile_kernel(&w->cenv, e.b, e.t, w->cand_uid, dir, source,
                       json_string_value(json_object_get(task_json, "lang")),
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
    int frc = task_state_fill(w, err, sizeof err);
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
    for (const backend_t *const *all = backend_all(); *all; all++) {
        const backend_t *b = *all;
        if (backend && *backend && strcmp(backend, b->name) != 0)
            continue;
        json_t *d = NULL;
        char err[1024];
        if (backend_device(b, remeasure, &d, err, sizeof err) == 0) {
            json_array_append_new(devs, d);
        } else {
            json_t *u = json_object();
            json_object_set_new(u, "backend", json_string(b->name));
            json_object_set_new(u, "why", json_string(err));
            json_array_append_new(unavail, u);
        }
    }
    json_object_set_new(reply, "ok", json_true());
    json_object_set_new(reply, "devices", devs);
    json_object_set_new(reply, "unavailable", unavail);
    return reply;
}
