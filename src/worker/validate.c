/* validate.c -- see validate.h. */
#include "validate.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "numeric.h"
#include "task_state.h"
#include "worker_internal.h"

/* The guards around output k in block, against the pristine draw. */
static int guards_intact(const slot_layout_t *sl, int k, const uint8_t *block, const uint8_t *pristine)
{
    const uint8_t *pre = pristine + (sl->off[k] - LAYOUT_GUARD - sl->begin);
    const uint8_t *post = pristine + (sl->off[k] + sl->bytes[k] - sl->begin);
    size_t post_n = sl->off[k] + sl->bytes[k] + LAYOUT_GUARD <= sl->end ? LAYOUT_GUARD : 0;
    return memcmp(block, pre, LAYOUT_GUARD) == 0 && memcmp(block + LAYOUT_GUARD + sl->bytes[k], post, post_n) == 0;
}

int validate_output(const slot_layout_t *sl, int k, const uint8_t *block, const void *expected,
                    const uint8_t *pristine, double tol, const char *name, json_t *checks, double *max_err,
                    char *msg, size_t n)
{
    num_cmp_t c;
    num_compare(block + LAYOUT_GUARD, expected, sl->dtype[k], sl->numel[k], tol, &c);
    msg[0] = 0;
    int pass = c.n_bad == 0;
    if (pass && !guards_intact(sl, k, block, pristine)) {
        snprintf(msg, n, "the kernel wrote out of bounds of output %s on set %s", sl->tname[k], sl->name);
        pass = 0;
    }
    if (!pass && !msg[0]) {
        /* A set drawn wider than the others says so (task_state.h). */
        char wide[160] = "";
        if (sl->input_scale > 1)
            snprintf(wide, sizeof wide, " (this set's inputs are drawn %gx wider than the others': the kernel and the "
                                        "reference part on values out of the usual range)", sl->input_scale);
        if (c.n_nonfinite > 0)
            snprintf(msg, n, "%s check (set %s): %zu of %zu elements of %s are NaN/Inf or unwritten, first at %zu%s",
                     name, sl->name, c.n_nonfinite, sl->numel[k], sl->tname[k], c.first_bad, wide);
        else
            snprintf(msg, n,
                     "%s check (set %s): %s off by %.3g (tolerance %.3g) at element %zu; %zu of %zu elements bad%s",
                     name, sl->name, sl->tname[k], c.max_err, tol, c.worst_index, c.n_bad, sl->numel[k], wide);
    }
    if (checks) {
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
        json_object_set_new(ck, "ok", json_boolean(pass));
        if (!pass)
            json_object_set_new(ck, "message", json_string(msg));
        json_array_append_new(checks, ck);
    }
    if (max_err && isfinite(c.max_err) && c.max_err > *max_err)
        *max_err = c.max_err;
    return pass ? 0 : -1;
}

/* count elements cut into m strata of count / m or count / m + 1 (the
 * remainder spread one element at a time, never all of it in the last),
 * walked in order, one element drawn in each by a multiply-shift, not a
 * division.  A skipped stretch two strata long is always hit, and the
 * reads go forward through memory.  (Independent draws with a division
 * each cost 6.1 ms for 65,536 elements of a 16 MB output on this project's
 * VM, bench/sampled_check.sh; the sample is most of what a timed run's
 * check costs.) */
typedef struct strata {
    size_t q, rem, m, lo, acc;
} strata_t;

static strata_t strata_start(size_t count, size_t m)
{
    return (strata_t){.q = count / m, .rem = count % m, .m = m};
}

/* The next stratum's element, drawn by a multiply-shift. */
static size_t strata_next(strata_t *s, rng_t *rng)
{
    size_t span = s->q + ((s->acc += s->rem) >= s->m ? (s->acc -= s->m, 1) : 0);
    size_t i = s->lo + (size_t)(((rng_next(rng) >> 32) * (uint64_t)span) >> 32);
    s->lo += span;
    return i;
}

int validate_output_sampled(const slot_layout_t *sl, int k, const uint8_t *block, const void *expected,
                            const uint8_t *pristine, double tol, rng_t *rng, const char *what, int run_index,
                            char *msg, size_t n)
{
    const uint8_t *out = block + LAYOUT_GUARD;
    size_t count = sl->numel[k];
    size_t m = count < VALIDATE_SAMPLE_N ? count : VALIDATE_SAMPLE_N;
    /* The scale of the relative error: the RMS of the finite expected
     * values at 4096 elements drawn the same way (evenly spaced ones could
     * line up with the tensor's shape: one column, one head). */
    size_t m_rms = count < 4096 ? count : 4096, n_rms = 0;
    strata_t st = strata_start(count, m_rms);
    double ss = 0;
    for (size_t j = 0; j < m_rms; j++) {
        double b = num_get(expected, sl->dtype[k], strata_next(&st, rng));
        if (isfinite(b)) {
            ss += b * b;
            n_rms++;
        }
    }
    double rms = sqrt(ss / (double)(n_rms ? n_rms : 1));
    st = strata_start(count, m);
    for (size_t j = 0; j < m; j++) {
        size_t i = strata_next(&st, rng);
        double a = num_get(out, sl->dtype[k], i), b = num_get(expected, sl->dtype[k], i);
        double err = isfinite(a) ? fabs(a - b) / (fabs(b) + rms + 1e-30) : INFINITY;
        int exact = num_is_integer(sl->dtype[k]);
        if (!(err <= (exact ? 0 : tol))) {
            snprintf(msg, n,
                     "%s run %d: output %s wrong at element %zu (%.6g, expected %.6g): every timed run is "
                     "checked, not just the first",
                     what, run_index, sl->tname[k], i, a, b);
            return -1;
        }
    }
    if (!guards_intact(sl, k, block, pristine)) {
        snprintf(msg, n, "the kernel wrote out of bounds of output %s during a %s run", sl->tname[k], what);
        return -1;
    }
    return 0;
}

int validate_inputs_and_guards(const slot_layout_t *sl, const uint8_t *arena_slot, const uint8_t *pristine,
                               char *msg, size_t n)
{
    /* Walk [begin, end) in ranges that skip the output tensors' data. */
    size_t pos = sl->begin;
    while (pos < sl->end) {
        size_t stop = sl->end, skip_to = sl->end;
        for (int k = 0; k < sl->n_tensors; k++)
            if (sl->is_out[k] && sl->off[k] >= pos && sl->off[k] < stop) {
                stop = sl->off[k];
                skip_to = sl->off[k] + sl->bytes[k];
            }
        const uint8_t *a = arena_slot + (pos - sl->begin), *q = pristine + (pos - sl->begin);
        if (stop > pos && memcmp(a, q, stop - pos) != 0) {
            size_t at = 0;
            while (pos + at < stop && a[at] == q[at])
                at++;
            size_t abs = pos + at;
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

/* ---- the candidate validated ------------------------------------------------ */

/* Full checks of the last run's outputs against set s (or against `against`
 * when given, with tolerance tol: the repeat run).  A wide set's error is
 * not the kernel's reported max error, which stays comparable across runs. */
static int check_outputs(eval_state_t *e, int set, const char *name, void *const *against, double tol)
{
    const input_set_t *is = &e->w->sets[set];
    const slot_layout_t *sl = &e->w->layout.slots[is->slot];
    char msg[512];
    /* On a set drawn wider than the others (task_state.h) a score of an
     * attention is scale^2 times larger, and so is its rounding, which a
     * softmax passes on (an honest f32 kernel was 7.8e-5 off the reference
     * at 8x, against 1e-4).  That set is there for values out of range --
     * Inf, NaN, garbage -- which are off by far more than TASK_WIDE_TOL;
     * the other sets judge rounding at the task's tolerance. */
    int wide = !against && sl->input_scale > 1;
    if (wide && tol < TASK_WIDE_TOL)
        tol = TASK_WIDE_TOL;
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        const void *exp = against ? against[k] : is->expected[k];
        if (validate_output(sl, k, e->out[k], exp, is->pristine, tol, name, e->checks,
                            against || wide ? NULL : &e->max_err, msg, sizeof msg) != 0) {
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

int validate_candidate(eval_state_t *e)
{
    const int sets[] = {SET_TASK, SET_RAGGED, SET_SMALL};
    char msg[512];
    void *first[OP_MAX_TENSORS] = {0};
    int ret = 0;
    /* The small set's spread (task_state.h: TASK_WIDE_SCALE), and why not
     * where it is not wide. */
    const slot_layout_t *small = &e->w->layout.slots[SLOT_SMALL];
    json_t *wide = json_pack("{sf}", "scale", small->input_scale > 0 ? small->input_scale : 1.0);
    if (e->w->small_note[0])
        json_object_set_new(wide, "note", json_string(e->w->small_note));
    json_object_set_new(e->validation, "small_inputs", wide);
    for (int i = 0; i < 3 && ret == 0; i++) {
        int s = sets[i];
        eval_progress(e, "validate", e->w->sets[s].name, i + 1, 4);
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
        eval_progress(e, "validate", "repeat", 4, 4);
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
