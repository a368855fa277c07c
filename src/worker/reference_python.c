/* reference_python.c -- see reference_python.h. */
#include "worker/reference_python.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "profile/report.h"
#include "task/task_py.h"
#include "worker/numeric.h"

/* Bounds on one oracle call, from the task's limits: a safety net for a
 * hanging reference, not a performance limit.  Loading imports torch and
 * runs the file (tens of seconds when cold); describing runs the forward a
 * few times per varied constant; the floors include torch.compile. */
static double load_timeout(const task_t *t) { return 120 + 2 * t->time_limit_s; }
static double fill_timeout(const task_t *t) { return 60 + 4 * t->time_limit_s; }
static double floors_timeout(const task_t *t) { return 120 + 4 * t->compile_limit_s + 60 * t->time_limit_s; }

/* PyTorch's device for the oracle on that backend (backend.h). */
static const char *device_of(const char *backend)
{
    const backend_t *b = backend_find(backend);
    return b && b->torch_device ? b->torch_device : backend_default()->torch_device;
}

static int check_f64(const task_t *t, const slot_layout_t *sl, const uint8_t *arena, void **expected,
                     json_t *check, char *err, size_t n);

static const char *kind_name(int rc)
{
    return rc == ORACLE_PY_PROBLEM ? "problem" : rc == ORACLE_PY_MISSING ? "missing" : "failed";
}

/* The task the client will build from desc, with op (a builtin name, or
 * NULL: the request's or the problem's own choice). */
static int build_task(task_t *t, const json_t *req, const json_t *desc, const char *op, char *err, size_t n)
{
    task_init(t);
    const char *s;
    t->reference_source = strdup(json_string_value(json_object_get(req, "source")));
    snprintf(t->reference_path, sizeof t->reference_path, "%s",
             (s = json_string_value(json_object_get(req, "filename"))) ? s : "problem.py");
    snprintf(t->reference_lang, sizeof t->reference_lang, "py");
    const backend_t *b = backend_find(json_string_value(json_object_get(req, "backend")));
    snprintf(t->backend, sizeof t->backend, "%s", (b ? b : backend_default())->name);
    if (op || (op = json_string_value(json_object_get(req, "op"))))
        snprintf(t->problem_op, sizeof t->problem_op, "%s", op);
    if ((s = json_string_value(json_object_get(req, "dtype")))) {
        t->dtype = dtype_from_name(s);
        t->dtype_set = 1;
    }
    if (json_is_number(json_object_get(req, "tolerance")))
        t->tolerance = json_number_value(json_object_get(req, "tolerance"));
    if (json_is_number(json_object_get(req, "time_limit_s")))
        t->time_limit_s = json_number_value(json_object_get(req, "time_limit_s"));
    t->problem_pending = 1;
    if (task_from_problem(t, desc, err, n) != 0 || task_finalize(t, err, n) != 0)
        return ORACLE_PY_PROBLEM;
    return ORACLE_PY_OK;
}

/* The PyTorch reference against t's float64 evaluation on the small set. */
static int f64_check(reference_python_t *r, const task_t *t, char *err, size_t n)
{
    arena_layout_t a;
    op_params_t ragged, small;
    op_validation_params(&t->op, &t->params, &ragged, &small);
    memset(&a, 0, sizeof a);
    uint8_t *arena = NULL, *pristine = NULL;
    void *expected[OP_MAX_TENSORS] = {0};
    rng_t g;
    rng_seed(&g, rng_entropy());
    json_t *check = json_object();
    int rc = ORACLE_PY_OK;
    if (layout_add_slot(&a, "small", &t->op, &small, t->dtype, err, n) != 0 || !(arena = malloc(a.total)))
        rc = ORACLE_PY_FAILED;
    if (rc == ORACLE_PY_OK)
        rc = reference_python_fill(r, t, &a, 0, &g, arena, &pristine, expected, err, n);
    if (rc == ORACLE_PY_OK && check_f64(t, &a.slots[0], arena, expected, check, err, n) != 0)
        rc = ORACLE_PY_PROBLEM;
    json_decref(check);
    free(arena);
    free(pristine);
    for (int k = 0; k < OP_MAX_TENSORS; k++)
        free(expected[k]);
    return rc;
}

/* Above this many FLOPs of the small set, a builtin op is not tried
 * automatically: its float64 evaluation would take more than a second or so. */
#define AUTO_MATCH_MAX_FLOPS 2e9

/* A problem that names no builtin op is matched to one by its shapes
 * (task_py.h's rules) and verified by that op's float64 evaluation: the
 * first builtin op that fits and agrees is written into desc as emile_op
 * (with "emile_op_auto": true), so the builtin agent's ladder applies to
 * KernelBench problems that never heard of Emile. */
static void auto_match(reference_python_t *r, const json_t *req, json_t *desc)
{
    const op_t **ops;
    int nb;
    op_list_builtin(&ops, &nb);
    for (int i = 0; i < nb; i++) {
        if (ops[i]->n_tensors != (int)json_array_size(json_object_get(desc, "tensors")) || !ops[i]->eval_f64)
            continue;
        task_t t;
        char err[1024];
        int ok = build_task(&t, req, desc, ops[i]->name, err, sizeof err) == ORACLE_PY_OK;
        if (ok) {
            op_params_t ragged, small;
            op_validation_params(&t.op, &t.params, &ragged, &small);
            ok = op_flops(&t.op, &small) <= AUTO_MATCH_MAX_FLOPS && f64_check(r, &t, err, sizeof err) == ORACLE_PY_OK;
        }
        task_free(&t);
        if (ok) {
            json_object_set_new(desc, "emile_op", json_string(ops[i]->name));
            json_object_set_new(desc, "emile_op_auto", json_true());
            return;
        }
    }
}

/* The task the client will build, built here too: an emile_op that does
 * not fit, or a reference that is not the op it names (the float64 check),
 * is found before any run exists. */
static int check_task(reference_python_t *r, const json_t *req, json_t *desc, char *err, size_t n)
{
    if (!json_string_value(json_object_get(req, "op")) && !json_string_value(json_object_get(desc, "emile_op")))
        auto_match(r, req, desc);
    task_t t;
    int rc = build_task(&t, req, desc, NULL, err, n);
    if (rc == ORACLE_PY_OK && t.op.eval_f64)
        rc = f64_check(r, &t, err, n);
    task_free(&t);
    return rc;
}

json_t *reference_python_describe(const json_t *req)
{
    char err[4096] = "";
    const char *source = json_string_value(json_object_get(req, "source"));
    const char *filename = json_string_value(json_object_get(req, "filename"));
    double mem = json_number_value(json_object_get(req, "memory_limit_mb"));
    double tl = json_number_value(json_object_get(req, "time_limit_s"));
    if (!source)
        return json_pack("{sbssss}", "ok", 0, "kind", "problem", "error", "describe_problem needs \"source\"");
    if (!(tl > 0))
        tl = 60;
    reference_python_t r;
    memset(&r, 0, sizeof r);
    int rc = oracle_python_start(&r.proc, source, filename ? filename : "problem.py",
                                 device_of(json_string_value(json_object_get(req, "backend"))),
                                 json_string_value(json_object_get(req, "dtype")), json_object_get(req, "constants"),
                                 mem > 0 ? mem : 4096, 120 + 2 * tl, err, sizeof err);
    json_t *reply = NULL;
    if (rc == ORACLE_PY_OK) {
        r.started = 1;
        /* The per-dtype defaults a candidate is held to (op.c). */
        op_t none;
        memset(&none, 0, sizeof none);
        json_t *tols = json_object();
        const char *names[] = {"f32", "f16", "bf16", "f64"};
        for (int d = 0; d < 4; d++)
            json_object_set_new(tols, names[d], json_real(op_tolerance(&none, dtype_from_name(names[d]))));
        rng_t g;
        rng_seed(&g, rng_entropy());
        json_t *dreq = json_pack("{sssIso}", "cmd", "describe", "seed", (json_int_t)(rng_next(&g) >> 12),
                                 "tolerances", tols);
        json_t *tol = json_object_get(req, "tolerance");
        if (json_is_number(tol))
            json_object_set(dreq, "tolerance", tol);
        json_t *desc = NULL;
        rc = oracle_python_call(&r.proc, dreq, 120 + 20 * tl, &desc, err, sizeof err);
        json_decref(dreq);
        if (rc == ORACLE_PY_OK) {
            json_object_del(desc, "ok");
            rc = check_task(&r, req, desc, err, sizeof err);
            if (rc == ORACLE_PY_OK) {
                reply = json_pack("{sbsO}", "ok", 1, "problem", desc);
                json_object_set_new(reply, "python", json_string(r.proc.python));
            }
            json_decref(desc);
        }
        reference_python_stop(&r);
    }
    if (!reply)
        reply = json_pack("{sbssss}", "ok", 0, "kind", kind_name(rc), "error", err);
    return reply;
}

int reference_python_fill_slot(reference_python_t *r, const task_t *t, const slot_layout_t *sl, rng_t *rng,
                               uint8_t *dst, void **expected, char *err, size_t n)
{
    size_t len = sl->end - sl->begin;
    /* Guards (and the output regions) random, then the oracle's inputs. */
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t x = rng_next(rng);
        memcpy(dst + i, &x, 8);
    }
    int rc = oracle_python_fill(&r->proc, sl, rng_next(rng), dst, sl->begin, expected, fill_timeout(t), err, n);
    if (rc != ORACLE_PY_OK) {
        char tmp[2048];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, n, "the PyTorch reference failed on set %s: %s", sl->name, tmp);
    }
    return rc;
}

int reference_python_fill(reference_python_t *r, const task_t *t, const arena_layout_t *a, int s, rng_t *rng,
                          uint8_t *arena, uint8_t **pristine, void **expected, char *err, size_t n)
{
    const slot_layout_t *sl = &a->slots[s];
    size_t len = sl->end - sl->begin;
    int rc = reference_python_fill_slot(r, t, sl, rng, arena + sl->begin, expected, err, n);
    if (rc != ORACLE_PY_OK)
        return rc;
    if (!*pristine && !(*pristine = malloc(len ? len : 1))) {
        snprintf(err, n, "out of memory for set %s", sl->name);
        return ORACLE_PY_FAILED;
    }
    memcpy(*pristine, arena + sl->begin, len);
    return ORACLE_PY_OK;
}

/* The PyTorch reference against the op's float64 evaluation on slot s. */
static int check_f64(const task_t *t, const slot_layout_t *sl, const uint8_t *arena, void **expected,
                     json_t *check, char *err, size_t n)
{
    double *bufs[OP_MAX_TENSORS] = {0};
    int rc = 0;
    for (int k = 0; k < sl->n_tensors && rc == 0; k++) {
        bufs[k] = malloc(sizeof(double) * (sl->numel[k] ? sl->numel[k] : 1));
        if (!bufs[k])
            rc = -1;
        else if (!sl->is_out[k])
            for (size_t i = 0; i < sl->numel[k]; i++)
                bufs[k][i] = num_get(arena + sl->off[k], sl->dtype[k], i);
    }
    if (rc == 0 && t->op.eval_f64(&t->op, &sl->params, bufs) != 0)
        rc = -1;
    double tol = t->tolerance > 0 ? t->tolerance : op_tolerance(&t->op, t->dtype), worst = 0;
    for (int k = 0; k < sl->n_tensors && rc == 0; k++) {
        if (!sl->is_out[k])
            continue;
        num_cmp_t c;
        num_compare_f64(expected[k], sl->dtype[k], bufs[k], sl->numel[k], tol, &c);
        worst = c.max_err > worst ? c.max_err : worst;
        if (c.n_bad > 0) {
            snprintf(err, n, "the PyTorch reference is not op %s: its output %s differs from the float64 "
                             "evaluation of %s by %.3g (tolerance %.3g) at element %zu on the small set",
                     t->op.name, sl->tname[k], t->op.name, c.max_err, tol, c.worst_index);
            rc = -2;
        }
    }
    for (int k = 0; k < sl->n_tensors; k++)
        free(bufs[k]);
    if (rc == -1)
        snprintf(err, n, "the float64 evaluation failed (out of memory?)");
    json_object_set_new(check, "checked", json_true());
    json_object_set_new(check, "max_err", json_real(worst));
    json_object_set_new(check, "tol", json_real(tol));
    json_t *pj = json_object();
    for (int i = 0; i < sl->params.n; i++)
        json_object_set_new(pj, sl->params.names[i], json_real(sl->params.values[i]));
    json_object_set_new(check, "params", pj);
    return rc;
}

int reference_python_prepare(reference_python_t *r, const task_t *t, const arena_layout_t *a, int small,
                             rng_t *rng, uint8_t *arena, uint8_t **pristine, void **expected,
                             json_t **oracle_check, char *err, size_t n)
{
    reference_python_stop(r);
    *oracle_check = json_object();
    int rc = oracle_python_start(&r->proc, t->reference_source, t->reference_path[0] ? t->reference_path : "problem.py",
                                 device_of(t->backend), dtype_name(t->dtype), t->constants, t->memory_limit_mb,
                                 load_timeout(t), err, n);
    if (rc != ORACLE_PY_OK)
        return rc;
    r->started = 1;
    if (!t->op.eval_f64) {
        json_object_set_new(*oracle_check, "checked", json_false());
        json_object_set_new(*oracle_check, "why", json_string("the op has no float64 evaluation: the PyTorch "
                                                              "reference is the oracle"));
        return ORACLE_PY_OK;
    }
    rc = reference_python_fill(r, t, a, small, rng, arena, pristine, expected, err, n);
    if (rc == ORACLE_PY_OK && check_f64(t, &a->slots[small], arena, expected, *oracle_check, err, n) != 0)
        rc = ORACLE_PY_PROBLEM;
    return rc;
}

/* The floors of this evaluation.  The eager one is timed on every call:
 * a re-measure of the reference (a noisy first timing) must be a new
 * measurement, not the first one again.  The torch.compile floor, whose
 * compilation takes seconds, is measured at the first call and kept. */
static json_t *floors_of(reference_python_t *r, const task_t *t, rng_t *rng, char *err, size_t n)
{
    int again = r->floors != NULL;
    json_t *req = json_pack("{ss s[II] sb}", "cmd", "floors", "seeds", (json_int_t)(rng_next(rng) >> 12),
                            (json_int_t)(rng_next(rng) >> 12), "compile", !again && !t->no_compile_floor);
    json_t *reply = NULL;
    if (oracle_python_call(&r->proc, req, floors_timeout(t), &reply, err, n) != ORACLE_PY_OK)
        reply = NULL;
    json_decref(req);
    if (!reply)
        return NULL;
    if (again) {
        json_t *comp = json_object_get(r->floors, "compile");
        if (comp)
            json_object_set(reply, "compile", comp);
        json_decref(r->floors);
    }
    r->floors = reply;
    return r->floors;
}

static double median_ms(const json_t *floor)
{
    return json_number_value(json_object_get(floor, "median_ms"));
}

json_t *reference_python_iteration(reference_python_t *r, const task_t *t, const json_t *device, rng_t *rng,
                                   const json_t *oracle_check)
{
    char err[2048] = "";
    json_t *reply = json_pack("{sbssso}", "ok", 1, "status", "error", "error", json_null());
    if (oracle_check)
        json_object_set(reply, "oracle", (json_t *)oracle_check);
    json_object_set_new(reply, "compile", json_pack("{sbss}", "ok", 1, "log",
                                                    "the PyTorch reference runs in the trusted oracle"));
    json_object_set_new(reply, "validation", json_pack("{sbs[]}", "ok", 1, "checks"));
    const json_t *floors = floors_of(r, t, rng, err, sizeof err);
    const json_t *eager = json_object_get(floors, "eager");
    const json_t *times = json_object_get(eager, "times_ns");
    size_t reps = json_array_size(times);
    if (!floors || reps == 0) {
        json_object_set_new(reply, "status", json_string("reference_invalid"));
        json_object_set_new(reply, "error", json_string(err[0] ? err : "the oracle measured no eager time"));
        return reply;
    }
    double *el = calloc(reps, sizeof(double));
    for (size_t i = 0; el && i < reps; i++)
        el[i] = json_number_value(json_array_get(times, i));
    profile_input_t in = {
        .backend = t->backend,
        .device = device,
        .dtype = t->dtype,
        .flops = op_flops(&t->op, &t->params),
        .bytes = op_bytes(&t->op, &t->params, t->dtype),
        .elapsed_ns = el,
        .reps = (int)reps,
        .warmup = (int)json_integer_value(json_object_get(eager, "warmup")),
    };
    json_t *rep = el ? profile_report(&in) : NULL;
    free(el);
    if (!rep) {
        json_object_set_new(reply, "error", json_string("out of memory"));
        return reply;
    }
    json_t *fl = json_object();
    json_object_set_new(fl, "eager_ms", json_real(median_ms(eager)));
    const json_t *comp = json_object_get(floors, "compile");
    if (json_is_number(json_object_get(comp, "median_ms"))) {
        json_object_set_new(fl, "compile_ms", json_real(median_ms(comp)));
        json_object_set(fl, "compile_s", json_object_get(comp, "compile_s"));
    } else if (json_string_value(json_object_get(comp, "error"))) {
        json_object_set(fl, "compile_error", json_object_get(comp, "error"));
    }
    json_object_set_new(rep, "floors", fl);
    json_object_set_new(rep, "reference", json_string("pytorch"));
    json_object_set_new(reply, "report", rep);
    json_object_set_new(reply, "status", json_string("valid"));
    return reply;
}

void reference_python_stop(reference_python_t *r)
{
    if (r->started)
        oracle_python_stop(&r->proc);
    r->started = 0;
    json_decref(r->floors);
    r->floors = NULL;
}
