/*
 * remeasure.c -- one noisy measurement must not decide a run.  A result
 * that would change the run's course (faster than the incumbent) or whose
 * own spread says it is unreliable (noisy_timing) is measured again, on
 * the worker that measured it, alternating with the incumbent -- cand,
 * incumbent, cand, incumbent, ... as autotuners interleave -- so a burst
 * of load on the machine hits both alike.  Its time becomes the median of
 * its measurements; the incumbent's fresh times are kept beside it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cook/cook_internal.h"

static int has_tag(const json_t *report, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(report, "diagnosis"), i, t) {
        const char *s = json_string_value(json_object_get(t, "tag"));
        if (s && strcmp(s, tag) == 0)
            return 1;
    }
    return 0;
}

static double reply_ms(const json_t *reply)
{
    return cook_num(json_object_get(json_object_get(reply, "report"), "time_ms"), "median");
}

static int reply_valid(const json_t *reply)
{
    const char *s = json_string_value(json_object_get(reply, "status"));
    return s && strcmp(s, "valid") == 0 && reply_ms(reply) > 0;
}

const char *cook_remeasure_why(const json_t *reply, double incumbent_ms)
{
    if (!reply_valid(reply))
        return NULL;
    if (has_tag(json_object_get(reply, "report"), "noisy_timing"))
        return "noisy_timing";
    if (incumbent_ms > 0 && reply_ms(reply) < incumbent_ms)
        return "faster than the incumbent";
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cook_median(const json_t *numbers)
{
    size_t n = json_array_size(numbers);
    if (n == 0)
        return NAN;
    double *v = malloc(n * sizeof *v);
    if (!v)
        return NAN;
    for (size_t i = 0; i < n; i++)
        v[i] = json_number_value(json_array_get(numbers, i));
    qsort(v, n, sizeof *v, by_value);
    double m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    free(v);
    return m;
}

/* An "invalid" whose validation passed: the outputs were right, the
 * worker rejected the timing (held-back set, outside clock, roofline). */
static int timing_rejected(const json_t *reply)
{
    const char *s = json_string_value(json_object_get(reply, "status"));
    return s && strcmp(s, "invalid") == 0 &&
           json_is_true(json_object_get(json_object_get(reply, "validation"), "ok"));
}

/* What one job of the chains measures. */
typedef struct sample {
    remeasure_t *rm;
    int incumbent;             /* 1: the incumbent's run, 0: the candidate's */
} sample_t;

void cook_remeasure(cook_run_t *r, remeasure_t *rm, int n, int rounds, int incumbent_iter)
{
    const json_t *inc = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(r->history, i, it)
        if (json_integer_value(json_object_get(it, "iter")) == incumbent_iter)
            inc = it;
    const char *inc_src = json_string_value(json_object_get(inc, "source"));
    /* The reference's own re-measure has no incumbent but itself. */
    int with_incumbent = inc_src && incumbent_iter >= 0;
    int per = with_incumbent ? 2 * rounds : rounds;
    size_t total = (size_t)n * (size_t)per;
    if (total == 0)
        return;
    pool_job_t *jobs = calloc(total, sizeof *jobs);
    sample_t *what = calloc(total, sizeof *what);
    json_t **reqs = calloc(total, sizeof *reqs);
    if (!jobs || !what || !reqs) {
        free(jobs);
        free(what);
        free(reqs);
        return;
    }
    size_t k = 0;
    for (int c = 0; c < n; c++) {
        rm[c].samples = json_array();
        rm[c].incumbent = json_array();
        rm[c].rejected = json_array();
        rm[c].measured = 1;
        json_array_append_new(rm[c].samples, json_real(reply_ms(rm[c].reply)));
        for (int s = 0; s < per; s++, k++) {
            int is_inc = with_incumbent && s % 2 == 1;
            what[k].rm = &rm[c];
            what[k].incumbent = is_inc;
            reqs[k] = json_pack("{sssOs{ss}}", "cmd", "evaluate", "task", r->task_json, "kernel",
                                "source", is_inc ? inc_src : rm[c].source);
            /* The reference (iteration 0) may be in another language than
             * the candidates (CUDA C++ beside Triton). */
            const char *ref_lang = task_reference_kernel_lang(r->task);
            if (reqs[k] && ref_lang && (is_inc ? incumbent_iter : rm[c].iter) == 0)
                json_object_set_new(json_object_get(reqs[k], "kernel"), "lang", json_string(ref_lang));
            jobs[k].request = reqs[k];
            jobs[k].pin = rm[c].slot;          /* same worker: same device, same window */
            jobs[k].timeout_s = r->timeout_s;
            jobs[k].run = r->run;
            jobs[k].iter = rm[c].iter;
            jobs[k].phase = "confirm";
            if (is_inc)
                snprintf(jobs[k].detail, sizeof jobs[k].detail, "the incumbent, iteration %d, "
                         "beside a %s result (%d of %d)", incumbent_iter, rm[c].why, s + 1, per);
            else
                snprintf(jobs[k].detail, sizeof jobs[k].detail, "measuring again: %s (%d of %d)",
                         rm[c].why, s + 1, per);
        }
    }
    pool_run(r->c->pool, jobs, total, NULL, NULL);
    for (k = 0; k < total; k++) {
        remeasure_t *m = what[k].rm;
        const json_t *reply = jobs[k].reply;
        if (!reply || !json_is_true(json_object_get(reply, "ok"))) {
            if (!m->error[0])
                snprintf(m->error, sizeof m->error, "%.590s",
                         reply ? "the worker refused the request" : jobs[k].error);
        } else if (reply_valid(reply)) {
            json_array_append_new(what[k].incumbent ? m->incumbent : m->samples,
                                  json_real(reply_ms(reply)));
            m->measured += !what[k].incumbent;
        } else if (what[k].incumbent) {
            /* The incumbent's figures are only beside the candidate's. */
        } else if (timing_rejected(reply)) {
            const char *e = json_string_value(json_object_get(reply, "error"));
            json_array_append_new(m->rejected, json_string(e ? e : "its timing was rejected"));
            m->measured++;
        } else if (!m->failed) {
            m->failed = json_incref((json_t *)reply);
        }
        pool_job_clear(&jobs[k]);
        json_decref(reqs[k]);
    }
    free(jobs);
    free(what);
    free(reqs);
}

void cook_remeasure_apply(json_t *it, const remeasure_t *rm, int incumbent_iter,
                          double incumbent_ms, double ref_ms)
{
    double first = cook_num(it, "time_ms");
    json_t *o = json_object();
    json_object_set_new(o, "why", json_string(rm->why));
    json_object_set_new(o, "first_ms", json_real(first));
    json_object_set(o, "samples_ms", rm->samples);
    if (json_array_size(rm->incumbent) > 0) {
        json_t *inc = json_object();
        json_object_set_new(inc, "iter", json_integer(incumbent_iter));
        json_object_set_new(inc, "stored_ms", json_real(incumbent_ms));
        json_object_set(inc, "samples_ms", rm->incumbent);
        json_object_set_new(inc, "median_ms", json_real(cook_median(rm->incumbent)));
        json_object_set_new(o, "incumbent", inc);
    }
    if (rm->error[0])
        json_object_set_new(o, "error", json_string(rm->error));
    if (json_array_size(rm->rejected) > 0)
        json_object_set(o, "rejected", rm->rejected);
    json_object_set_new(it, "remeasure", o);
    size_t nrej = json_array_size(rm->rejected);
    if (!rm->failed && nrej > 0 && 2 * nrej > (size_t)rm->measured) {
        char msg[1400];
        snprintf(msg, sizeof msg, "valid when first measured, then its timing was rejected in %zu of %d "
                 "measurements: %.1200s", nrej, rm->measured, json_string_value(json_array_get(rm->rejected, 0)));
        json_object_set_new(it, "status", json_string("invalid"));
        json_object_set_new(it, "error", json_string(msg));
        return;
    }
    if (rm->failed) {
        /* Valid once, not again: a kernel that fails one run in a few is
         * not a kernel to build on. */
        const char *st = json_string_value(json_object_get(rm->failed, "status"));
        const char *e = json_string_value(json_object_get(rm->failed, "error"));
        char msg[1400];
        snprintf(msg, sizeof msg, "valid when first measured, then %s when measured again: %.1200s",
                 st ? st : "error", e ? e : "no reason given");
        json_object_set_new(it, "status", json_string(st && strcmp(st, "valid") ? st : "invalid"));
        json_object_set_new(it, "error", json_string(msg));
        return;
    }
    double t = cook_median(rm->samples);
    if (!(t > 0) || !(first > 0))
        return;
    double scale = first / t;
    json_object_set_new(it, "time_ms", json_real(t));
    json_object_set_new(it, "gflops", json_real(cook_num(it, "gflops") * scale));
    json_object_set_new(it, "roofline_pct", json_real(cook_num(it, "roofline_pct") * scale));
    if (ref_ms > 0)
        json_object_set_new(it, "speedup", json_real(ref_ms / t));
    /* A PyTorch reference's time is its eager floor: one figure, so the
     * best quoted against eager is 1.00x when the reference is the best. */
    json_t *floors = json_object_get(json_object_get(it, "report"), "floors");
    if (json_is_object(floors) && json_is_number(json_object_get(floors, "eager_ms")))
        json_object_set_new(floors, "eager_ms", json_real(t));
}

void cook_remeasure_free(remeasure_t *rm)
{
    json_decref(rm->samples);
    json_decref(rm->incumbent);
    json_decref(rm->failed);
    json_decref(rm->rejected);
    rm->samples = rm->incumbent = rm->failed = rm->rejected = NULL;
}
