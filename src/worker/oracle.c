/*
 * oracle.c -- the task's reference kernel as the oracle (see oracle.h).
 *
 * The reference runs in a runner of its own, in a directory of its own,
 * as its own uid when the worker is root (sandbox_reference_uid: never the
 * candidates' uid), in namespaces of its own otherwise.  The worker draws
 * every input itself, copies the pristine inputs and guards into the
 * reference's arena, runs it and keeps its outputs; the candidate's arena
 * later receives the same pristine bytes with its outputs poisoned, never
 * a byte the reference wrote.  A reference runner that dies (killed by
 * whatever) is started again once per set, never blamed on a candidate.
 */
#include "oracle.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "emile.h"
#include "kernel_env.h"
#include "numeric.h"
#include "runner_client.h"
#include "util/fs.h"

typedef struct ref_oracle {
    oracle_t base;
    oracle_env_t env;
    char dir[900], so[1000];
    runner_t run;
    int started;
    json_t *check;             /* the float64 check's result */
} ref_oracle_t;

void oracle_draw_inputs(rng_t *rng, const task_t *t, const slot_layout_t *sl, uint8_t *pristine)
{
    size_t len = sl->end - sl->begin;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t r = rng_next(rng);
        memcpy(pristine + i, &r, 8);
    }
    /* A cheap approximately normal draw (sum of four uniforms) keeps large
     * inputs fast. */
    for (int k = 0; k < sl->n_tensors; k++) {
        if (sl->is_out[k])
            continue;
        double std = (t->op.tensors[k].init_std > 0 ? t->op.tensors[k].init_std : 1.0) *
                     (!num_is_integer(sl->dtype[k]) && sl->input_scale > 0 ? sl->input_scale : 1.0);
        void *base = pristine + (sl->off[k] - sl->begin);
        /* an index the op reads (a position, a length): uniform in its range */
        int64_t lo, hi;
        char why[256];
        int ranged = op_tensor_int_range(&t->op, k, &sl->params, &lo, &hi, why, sizeof why) > 0;
        for (size_t i = 0; i < sl->numel[k]; i++) {
            uint64_t r = rng_next(rng);
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
}

static int start_runner(ref_oracle_t *o, char *err, size_t n)
{
    sandbox_limits_t l;
    kernel_runner_limits(o->env.task, o->env.backend, o->env.uid, &l);
    int rc = runner_start(&o->run, o->env.backend, o->dir, o->so, o->env.layout->total, &l);
    for (int s = 0; s < o->env.layout->n_slots && rc == RUNNER_OK; s++) {
        char *line = layout_bind_line(o->env.layout, s, "");
        /* layout_bind_line writes "bind <nonce> ..."; send the rest. */
        rc = line ? runner_cmd(&o->run, NULL, 0, 0, "bind", line + strlen("bind  ")) : RUNNER_ERR;
        free(line);
    }
    o->started = 1;
    if (rc != RUNNER_OK) {
        snprintf(err, n, "the reference cannot run: %.1800s", o->run.msg);
        return ORACLE_INVALID;
    }
    return ORACLE_OK;
}

/* One run of the reference on slot s (its inputs already in the arena);
 * RUNNER_* and the kernel's return value in *krc. */
static int run_reference(ref_oracle_t *o, int s, int *krc)
{
    const slot_layout_t *sl = &o->env.layout->slots[s];
    char args[64];
    snprintf(args, sizeof args, "%zu %zu", sl->begin, sl->end - sl->begin);
    int rc = runner_cmd(&o->run, NULL, 0, 0, "upload", args);
    if (rc == RUNNER_OK)
        rc = runner_prep(&o->run, s, 0);
    run_result_t res;
    if (rc == RUNNER_OK)
        rc = runner_run(&o->run, s, &res);
    if (rc == RUNNER_OK)
        rc = runner_snap(&o->run, s);
    *krc = rc == RUNNER_OK ? res.rc : 0;
    return rc;
}

static void ref_draw(const oracle_t *base, int s, uint8_t *pristine, rng_t *rng)
{
    const ref_oracle_t *o = (const ref_oracle_t *)base;
    oracle_draw_inputs(rng, o->env.task, &o->env.layout->slots[s], pristine);
}

static int ref_fill(oracle_t *base, int s, const char *set_name, uint8_t *pristine, void **expected, char *err,
                    size_t n)
{
    ref_oracle_t *o = (ref_oracle_t *)base;
    const slot_layout_t *sl = &o->env.layout->slots[s];
    int krc = 0, rc = RUNNER_DIED;
    /* A dead reference runner (whatever killed it) is started again, once:
     * a candidate is never blamed for it, and never sees it. */
    for (int attempt = 0; attempt < 2 && rc == RUNNER_DIED; attempt++) {
        if (attempt > 0 || o->run.dead) {
            runner_stop(&o->run);
            int src = start_runner(o, err, n);
            if (src != ORACLE_OK)
                return src;
        }
        memcpy(o->run.arena + sl->begin, pristine, sl->end - sl->begin);
        rc = run_reference(o, s, &krc);
    }
    if (rc != RUNNER_OK) {
        snprintf(err, n, "the reference failed on set %s%s: %.1800s", set_name,
                 rc == RUNNER_DIED ? " (its runner died twice)" : "", o->run.msg);
        return ORACLE_INVALID;
    }
    if (krc != 0) {
        const char *name = emile_status_str(krc);
        char said[320];
        runner_last_output_line(&o->run, said, sizeof said);
        char params[512] = "";
        size_t pl = 0;
        for (int i = 0; i < sl->params.n && pl < sizeof params - 40; i++)
            pl += (size_t)snprintf(params + pl, sizeof params - pl, "%s%s %g", i ? ", " : "", sl->params.names[i],
                                   sl->params.values[i]);
        snprintf(err, n, "the reference returned %d%s%s%s on set %s (%s)%s%s", krc, name ? " (" : "",
                 name ? name : "", name ? ")" : "", set_name, params, said[0] ? ": it said: " : "", said);
        return ORACLE_INVALID;
    }
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        if (!expected[k] && !(expected[k] = malloc(sl->bytes[k]))) {
            snprintf(err, n, "out of memory for the expected outputs");
            return ORACLE_ERROR;
        }
        memcpy(expected[k], o->run.arena + sl->snap[k] + LAYOUT_GUARD, sl->bytes[k]);
        for (size_t i = 0; i < sl->numel[k]; i++)
            if (!isfinite(num_get(expected[k], sl->dtype[k], i))) {
                snprintf(err, n, "the reference left NaN or Inf in %s on set %s", sl->tname[k], set_name);
                return ORACLE_INVALID;
            }
    }
    return ORACLE_OK;
}

static double tolerance(const task_t *t)
{
    return t->tolerance > 0 ? t->tolerance : op_tolerance(&t->op, t->dtype);
}

/* The reference against the op's float64 oracle on the small set. */
static int float64_check(ref_oracle_t *o, int small, char *err, size_t n)
{
    const task_t *t = o->env.task;
    o->check = json_object();
    if (!t->op.eval_f64) {
        json_object_set_new(o->check, "checked", json_false());
        json_object_set_new(o->check, "why", json_string("the op has no float64 oracle: the reference is the oracle"));
        return ORACLE_OK;
    }
    const slot_layout_t *sl = &o->env.layout->slots[small];
    uint8_t *pristine = malloc(sl->end - sl->begin);
    void *expected[OP_MAX_TENSORS] = {0};
    double *bufs[OP_MAX_TENSORS] = {0};
    /* At the others' spread, as this check always was: the small set's
     * wider draw tests candidates, and a reference whose answer leaves
     * the dtype's range there keeps the others' spread (task_state.c:
     * probe_wide), rather than being refused here. */
    slot_layout_t narrow = *sl;
    narrow.input_scale = 1;
    if (pristine)
        oracle_draw_inputs(o->env.rng, t, &narrow, pristine);
    int rc = pristine ? ref_fill(&o->base, small, sl->name, pristine, expected, err, n) : ORACLE_ERROR;
    for (int k = 0; k < sl->n_tensors && rc == ORACLE_OK; k++) {
        bufs[k] = malloc(sizeof(double) * sl->numel[k]);
        if (!bufs[k]) {
            snprintf(err, n, "out of memory for the float64 check");
            rc = ORACLE_ERROR;
            break;
        }
        if (!sl->is_out[k])
            for (size_t i = 0; i < sl->numel[k]; i++)
                bufs[k][i] = num_get(pristine + (sl->off[k] - sl->begin), sl->dtype[k], i);
    }
    if (rc == ORACLE_OK && t->op.eval_f64(&t->op, &sl->params, bufs) != 0) {
        snprintf(err, n, "the float64 oracle failed (out of memory?)");
        rc = ORACLE_ERROR;
    }
    double tol = tolerance(t), worst = 0;
    for (int k = 0; k < sl->n_tensors && rc == ORACLE_OK; k++) {
        if (!sl->is_out[k])
            continue;
        num_cmp_t c;
        num_compare_f64(expected[k], sl->dtype[k], bufs[k], sl->numel[k], tol, &c);
        if (c.max_err > worst)
            worst = c.max_err;
        if (c.n_bad > 0) {
            snprintf(err, n,
                     "the reference is itself wrong: output %s differs from the float64 evaluation by %.3g "
                     "(tolerance %.3g) at element %zu on the small set",
                     sl->tname[k], c.max_err, tol, c.worst_index);
            rc = ORACLE_INVALID;
        }
    }
    for (int k = 0; k < sl->n_tensors; k++) {
        free(bufs[k]);
        free(expected[k]);
    }
    free(pristine);
    json_object_set_new(o->check, "checked", json_true());
    json_object_set_new(o->check, "max_err", json_real(worst));
    json_object_set_new(o->check, "tol", json_real(tol));
    json_t *pj = json_object();
    for (int i = 0; i < sl->params.n; i++)
        json_object_set_new(pj, sl->params.names[i], json_real(sl->params.values[i]));
    json_object_set_new(o->check, "params", pj);
    return rc;
}

static int ref_prepare(oracle_t *base, char *err, size_t n)
{
    ref_oracle_t *o = (ref_oracle_t *)base;
    if (kernel_dir_make(o->env.base, "ref", o->env.counter, o->env.rng, o->env.uid, o->dir, sizeof o->dir) != 0) {
        snprintf(err, n, "cannot prepare %s: %s", o->dir, strerror(errno));
        return ORACLE_ERROR;
    }
    json_t *compile = json_object();
    const char *name = o->env.task->reference_path[0] ? o->env.task->reference_path : NULL;
    if (compile_kernel(o->env.compile, o->env.backend, o->env.task, o->env.uid, o->dir,
                       o->env.task->reference_source, o->env.task->reference_lang, name, compile, o->so,
                       sizeof o->so) != 0) {
        const char *log = json_string_value(json_object_get(compile, "log"));
        const char *why = json_string_value(json_object_get(compile, "error"));
        snprintf(err, n, "the reference does not compile%s%s:\n%.1500s", why ? ": " : "", why ? why : "",
                 log ? log : "");
        json_decref(compile);
        return ORACLE_INVALID;
    }
    json_decref(compile);
    int rc = start_runner(o, err, n);
    if (rc != ORACLE_OK)
        return rc;
    /* The small set is the last validation slot (layout order: task,
     * ragged, small, ...). */
    return float64_check(o, 2, err, n);
}

static json_t *ref_describe(oracle_t *base)
{
    ref_oracle_t *o = (ref_oracle_t *)base;
    return o->check ? json_deep_copy(o->check) : json_pack("{sb}", "checked", 0);
}

static void ref_free(oracle_t *base)
{
    ref_oracle_t *o = (ref_oracle_t *)base;
    if (!o)
        return;
    if (o->started)
        runner_stop(&o->run);
    json_decref(o->check);
    if (o->dir[0])
        fs_rm_rf(o->dir);
    free(o);
}

static const oracle_ops_t ref_ops = {
    .name = "reference",
    .prepare = ref_prepare,
    .draw = ref_draw,
    .fill = ref_fill,
    .describe = ref_describe,
    .free = ref_free,
};

oracle_t *oracle_reference_new(const oracle_env_t *env)
{
    ref_oracle_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->base.ops = &ref_ops;
    o->env = *env;
    o->run.arena_fd = -1;
    o->run.proc.pid = -1;
    o->run.proc.ctl = -1;
    return &o->base;
}
