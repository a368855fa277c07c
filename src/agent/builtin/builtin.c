/*
 * builtin.c -- the builtin agent: an expert policy that needs no network.
 *
 * It climbs a ladder of parameterised templates (ladder.h) and tunes the
 * parameters of the best rung, moved along by the measured profile:
 *
 *   1. Climb.  Among the rungs above the best kernel's rung that have not
 *      been tried, take the lowest one whose "addresses" list names a
 *      diagnosis tag of the best kernel (the bottleneck it fixes); if none
 *      does, the next rung up.  Rungs the device or task cannot run are
 *      skipped, and the reason is said.
 *   2. Tune.  When no rung is left to climb, walk the parameters of the
 *      best rung one step at a time (parameters that address the best's
 *      tags first; up before down), keeping every step that helps: a
 *      coordinate search that ends somewhere else on another machine or
 *      task.  When the best rung's neighbourhood is exhausted, the next
 *      best rung's is searched.
 *   3. Done when every neighbour of every valid rung has been measured.
 *
 * Batches (the cook asks for one candidate per worker): the history then
 * ends with the candidates already proposed ("pending").  A batch climbs
 * first: after a pending climb to a rung not measured yet comes the climb
 * to a rung above it (the policy of step 1 from there), and only when no
 * rung is left above, the top pending rung's parameter sweep (one step up
 * and down of each parameter around its defaults): a higher rung's default
 * point gains more than a step of a lower rung's parameters (on the H100 an
 * 8-worker cook of decode attention spent its five iterations sweeping
 * rung 1 and never reached rungs 2 and 3).  Otherwise the policy above
 * runs with the pending candidates counted as tried, so a tuning batch is
 * the best point's other neighbours.
 *
 * The policy is a function of the history alone (each proposal records its
 * rung and parameters), so a resumed run continues where it stopped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "backend/lang.h"
#include "ladder.h"

struct agent {
    ladder_t ladder;
    char no_ladder[1400];      /* the op has no ladder: why, said when asked to propose */
};

static int builtin_create(const json_t *config, const task_t *task, agent_t **out, char *err, size_t n)
{
    (void)config;
    agent_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    /* The ladder of the task's language (kernels/<op>/<ladder_dir>/).  A
     * user-defined op without one (a PyTorch problem's own op) still gets
     * its reference measured, floors and roofline included; the agent
     * then says why it stops (docs/PYTORCH.md).  A builtin op without one
     * for this backend or language is said before any work, as is a
     * ladder that cannot be read. */
    const lang_t *lg = lang_for(task->backend, task->lang, err, n);
    int lrc = lg ? ladder_load(&a->ladder, task->op.name, lg->ladder_dir, err, n) : -1;
    if (lrc == LADDER_NONE && !task->op.builtin) {
        snprintf(a->no_ladder, sizeof a->no_ladder,
                 "%.1000s: it measured the reference; --agent anthropic or --agent openai writes kernels for any op",
                 err);
        err[0] = '\0';
        *out = a;
        return 0;
    }
    if (lrc != 0) {
        free(a);
        return -1;
    }
    ladder_bind(&a->ladder, task);
    *out = a;
    return 0;
}

static void builtin_destroy(agent_t *a)
{
    if (!a)
        return;
    ladder_free(&a->ladder);
    free(a);
}

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int is_pending(const json_t *it)
{
    const char *s = json_string_value(json_object_get(it, "status"));
    return s && strcmp(s, "pending") == 0;
}

static int is_valid(const json_t *it)
{
    const char *s = json_string_value(json_object_get(it, "status"));
    return s && strcmp(s, "valid") == 0 && num(it, "time_ms") > 0;
}

static char *signature(const char *rung, const json_t *params)
{
    json_t *p = json_deep_copy(params);
    json_object_set_new(p, "rung", json_string(rung));
    char *s = json_dumps(p, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(p);
    return s;
}

static int tried(const json_t *history, const char *sig)
{
    size_t i;
    json_t *it;
    json_array_foreach(history, i, it) {
        const json_t *p = json_object_get(it, "params");
        const char *rung = json_string_value(json_object_get(p, "rung"));
        if (!rung)
            continue;
        json_t *q = json_deep_copy(p);
        json_object_del(q, "rung");
        char *s = signature(rung, q);
        json_decref(q);
        int same = s && strcmp(s, sig) == 0;
        free(s);
        if (same)
            return 1;
    }
    return 0;
}

static int rung_index(const ladder_t *l, const char *id)
{
    size_t i;
    json_t *r;
    if (!id)
        return -1;
    json_array_foreach(l->rungs, i, r) {
        const char *rid = json_string_value(json_object_get(r, "id"));
        if (rid && strcmp(rid, id) == 0)
            return (int)i;
    }
    return -1;
}

static int has_tag(const json_t *tags, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) {
        const char *s = json_string_value(json_object_get(t, "tag"));
        if (s && strcmp(s, tag) == 0)
            return 1;
    }
    return 0;
}

/* First diagnosis tag of `tags` named in `addresses`, or NULL. */
static const char *addressed(const json_t *addresses, const json_t *tags)
{
    size_t i;
    json_t *a;
    json_array_foreach(addresses, i, a) {
        const char *s = json_string_value(a);
        if (s && has_tag(tags, s))
            return s;
    }
    return NULL;
}

static const char *tag_detail(const json_t *tags, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) {
        const char *s = json_string_value(json_object_get(t, "tag"));
        if (s && strcmp(s, tag) == 0)
            return json_string_value(json_object_get(t, "detail"));
    }
    return "";
}

static void describe_best(const json_t *best, char *buf, size_t n)
{
    const json_t *rep = json_object_get(best, "report");
    const json_t *tags = json_object_get(rep, "diagnosis");
    char tagbuf[256] = "";
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) {
        const char *s = json_string_value(json_object_get(t, "tag"));
        if (s && strlen(tagbuf) + strlen(s) + 3 < sizeof tagbuf) {
            if (tagbuf[0])
                strcat(tagbuf, ", ");
            strcat(tagbuf, s);
        }
    }
    snprintf(buf, n, "best so far: iteration %lld (%s) %.3f ms, %.2f GFLOP/s, %.1f%% of roofline; diagnosis: %s",
             (long long)json_integer_value(json_object_get(best, "iter")),
             json_string_value(json_object_get(best, "label")) ? json_string_value(json_object_get(best, "label")) : "?",
             num(best, "time_ms"), isnan(num(best, "gflops")) ? num(rep, "gflops") : num(best, "gflops"),
             isnan(num(best, "roofline_pct")) ? num(rep, "roofline_pct") : num(best, "roofline_pct"),
             tagbuf[0] ? tagbuf : "none");
}

static void make_label(const char *rung, const json_t *params, char *buf, size_t n)
{
    size_t off = (size_t)snprintf(buf, n, "%s", rung);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v) {
        const char *short_k = strncmp(k, "EMILE_", 6) == 0 ? k + 6 : k;
        if (json_is_integer(v))
            off += (size_t)snprintf(buf + off, off < n ? n - off : 0, " %s=%lld", short_k, (long long)json_integer_value(v));
        else if (json_is_string(v))
            off += (size_t)snprintf(buf + off, off < n ? n - off : 0, " %s=%s", short_k, json_string_value(v));
        if (off >= n)
            break;
    }
}

static int emit(agent_t *a, const json_t *rung, json_t *params, const char *reason, agent_proposal_t *out,
                char *err, size_t n)
{
    const char *id = json_string_value(json_object_get(rung, "id"));
    out->source = ladder_render(&a->ladder, rung, params, err, n);
    if (!out->source) {
        json_decref(params);
        return AGENT_ERROR;
    }
    char label[256];
    make_label(id, params, label, sizeof label);
    out->label = strdup(label);
    out->reason = strdup(reason);
    json_object_set_new(params, "rung", json_string(id));
    out->params = params;
    return AGENT_OK;
}

/* Step 1: climb. */
static int climb(agent_t *a, const agent_context_t *ctx, const json_t *best, int best_idx, agent_proposal_t *out,
                 char *err, size_t n)
{
    const json_t *tags = json_object_get(json_object_get(best, "report"), "diagnosis");
    char desc[600], skipped[1024] = "", why[256];
    describe_best(best, desc, sizeof desc);
    int pick = -1;
    const char *fixes = NULL;
    size_t nr = json_array_size(a->ladder.rungs);
    for (int pass = 0; pass < 2 && pick < 0; pass++)
        for (size_t i = (size_t)(best_idx + 1); i < nr && pick < 0; i++) {
            const json_t *r = json_array_get(a->ladder.rungs, i);
            const char *id = json_string_value(json_object_get(r, "id"));
            const char *unmet = ladder_unmet(r, ctx->device, ctx->task_json, why, sizeof why);
            if (unmet) {
                if (pass == 0 && strlen(skipped) + strlen(id) + strlen(unmet) + 16 < sizeof skipped) {
                    size_t len = strlen(skipped);
                    snprintf(skipped + len, sizeof skipped - len, "%sskipped %s (%s)", len ? "; " : "", id, unmet);
                }
                continue;
            }
            json_t *d = ladder_defaults(r);
            char *sig = signature(id, d);
            int seen = tried(ctx->history, sig);
            free(sig);
            json_decref(d);
            if (seen)
                continue;
            const char *tag = addressed(json_object_get(r, "addresses"), tags);
            if (pass == 0 && tag) {
                pick = (int)i;
                fixes = tag;
            } else if (pass == 1) {
                pick = (int)i;
            }
        }
    if (pick < 0)
        return AGENT_DONE;
    const json_t *r = json_array_get(a->ladder.rungs, (size_t)pick);
    const char *id = json_string_value(json_object_get(r, "id"));
    const char *idea = json_string_value(json_object_get(r, "idea"));
    const char *gain = json_string_value(json_object_get(r, "expected_gain"));
    char reason[2400];
    if (fixes)
        snprintf(reason, sizeof reason, "%s. It shows %s (%s); rung %s addresses it: %s Expected: %s%s%s", desc, fixes,
                 tag_detail(tags, fixes), id, idea ? idea : "", gain ? gain : "?", skipped[0] ? ". " : "", skipped);
    else
        snprintf(reason, sizeof reason, "%s. Climbing to the next rung, %s: %s Expected: %s%s%s", desc, id,
                 idea ? idea : "", gain ? gain : "?", skipped[0] ? ". " : "", skipped);
    return emit(a, r, ladder_defaults(r), reason, out, err, n);
}

/* Step 2: one parameter step around the best point of a rung. */
static int tune(agent_t *a, const agent_context_t *ctx, const json_t *around, agent_proposal_t *out, char *err,
                size_t n)
{
    const json_t *p = json_object_get(around, "params");
    const char *id = json_string_value(json_object_get(p, "rung"));
    int idx = rung_index(&a->ladder, id);
    if (idx < 0)
        return AGENT_DONE;
    const json_t *r = json_array_get(a->ladder.rungs, (size_t)idx);
    const json_t *tags = json_object_get(json_object_get(around, "report"), "diagnosis");
    const json_t *specs = json_object_get(r, "params");
    char desc[600];
    if (is_pending(around))
        snprintf(desc, sizeof desc, "Rung %s's parameter sweep while its default point (iteration %lld, "
                 "proposed in this batch) is measured", id, (long long)json_integer_value(json_object_get(around, "iter")));
    else
        describe_best(around, desc, sizeof desc);
    /* Parameters that address a current tag first. */
    for (int pass = 0; pass < 2; pass++) {
        const char *k;
        json_t *spec;
        json_object_foreach((json_t *)specs, k, spec) {
            const char *tag = addressed(json_object_get(spec, "addresses"), tags);
            if ((pass == 0) != (tag != NULL))
                continue;
            const json_t *vals = json_object_get(spec, "values");
            const json_t *cur = json_object_get(p, k);
            size_t nv = json_array_size(vals), ci = nv;
            for (size_t i = 0; i < nv; i++)
                if (json_equal(json_array_get(vals, i), (json_t *)cur))
                    ci = i;
            if (ci == nv)
                continue;
            /* The manifest may say which way helps for this tag ("raise",
             * "lower") or which value to jump to. */
            long steps[3] = {+1, -1, 0};
            int nsteps = 2;
            const json_t *pref = tag ? json_object_get(json_object_get(spec, "prefer"), tag) : NULL;
            if (json_is_string(pref) && strcmp(json_string_value(pref), "lower") == 0) {
                steps[0] = -1;
                steps[1] = +1;
            } else if (json_is_integer(pref)) {
                for (size_t i = 0; i < nv; i++)
                    if (json_integer_value(json_array_get(vals, i)) == json_integer_value(pref) && i != ci) {
                        steps[0] = (long)i - (long)ci;
                        steps[1] = +1;
                        steps[2] = -1;
                        nsteps = 3;
                    }
            }
            for (int d = 0; d < nsteps; d++) {
                long ni = (long)ci + steps[d];
                if (ni < 0 || ni >= (long)nv)
                    continue;
                json_t *cand = json_deep_copy(p);
                json_object_del(cand, "rung");
                json_object_set(cand, k, json_array_get(vals, (size_t)ni));
                char *sig = signature(id, cand);
                int seen = tried(ctx->history, sig);
                free(sig);
                if (seen) {
                    json_decref(cand);
                    continue;
                }
                char reason[1800], from[64], to[64];
                char *f = json_dumps(cur, JSON_ENCODE_ANY), *t = json_dumps(json_array_get(vals, (size_t)ni), JSON_ENCODE_ANY);
                snprintf(from, sizeof from, "%s", f ? f : "?");
                snprintf(to, sizeof to, "%s", t ? t : "?");
                free(f);
                free(t);
                const char *why = json_string_value(json_object_get(spec, "why"));
                if (tag)
                    snprintf(reason, sizeof reason, "%s. Tuning %s: %s %s -> %s, because %s (%s)%s%s", desc, id, k,
                             from, to, tag, tag_detail(tags, tag), why ? "; " : "", why ? why : "");
                else
                    snprintf(reason, sizeof reason, "%s. Tuning %s: %s %s -> %s (%s)%s%s", desc, id, k, from, to,
                             is_pending(around) ? "one step of the sweep, measured beside the others"
                                                : "coordinate search around the best point",
                             why ? "; " : "", why ? why : "");
                return emit(a, r, cand, reason, out, err, n);
            }
        }
    }
    return AGENT_DONE;
}

static int by_time(const void *x, const void *y)
{
    double a = num(*(json_t *const *)x, "time_ms"), b = num(*(json_t *const *)y, "time_ms");
    return (a > b) - (a < b);
}

/* Whether a pending candidate climbs: the first of its rung in the
 * history, and that rung has no measured point yet. */
static int is_pending_climb(const json_t *history, const json_t *cand)
{
    const char *rung = json_string_value(json_object_get(json_object_get(cand, "params"), "rung"));
    if (!is_pending(cand) || !rung)
        return 0;
    size_t i;
    json_t *it;
    json_array_foreach(history, i, it) {
        const char *r = json_string_value(json_object_get(json_object_get(it, "params"), "rung"));
        if (!r || strcmp(r, rung) != 0)
            continue;
        if (is_valid(it))
            return 0;
        return it == cand;             /* the rung's first proposal */
    }
    return 0;
}

/* The pending climb to the highest rung (*idx its index), else NULL. */
static const json_t *pending_top_climb(const agent_t *a, const json_t *history, int *idx)
{
    const json_t *top = NULL;
    *idx = -1;
    size_t i;
    json_t *it;
    json_array_foreach(history, i, it) if (is_pending_climb(history, it)) {
        int k = rung_index(&a->ladder, json_string_value(json_object_get(json_object_get(it, "params"), "rung")));
        if (k > *idx) {
            *idx = k;
            top = it;
        }
    }
    return top;
}

static int builtin_propose(agent_t *a, const agent_context_t *ctx, agent_proposal_t *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    if (a->no_ladder[0]) {
        snprintf(err, n, "%s", a->no_ladder);
        return AGENT_DONE;
    }
    size_t nh = json_array_size(ctx->history);
    json_t **valid = calloc(nh + 1, sizeof *valid);
    size_t nv = 0, i;
    json_t *it;
    json_array_foreach(ctx->history, i, it) if (is_valid(it)) valid[nv++] = it;
    if (nv == 0) {
        free(valid);
        snprintf(err, n, "no valid kernel in the history (not even the reference)");
        return AGENT_ERROR;
    }
    qsort(valid, nv, sizeof *valid, by_time);
    const json_t *best = valid[0];
    int top_idx, rc = AGENT_DONE;
    const json_t *climbing = pending_top_climb(a, ctx->history, &top_idx);
    if (climbing) {
        /* A batch: the rungs above the top one in flight, then its sweep. */
        rc = climb(a, ctx, best, top_idx, out, err, n);
        if (rc == AGENT_DONE)
            rc = tune(a, ctx, climbing, out, err, n);
        if (rc != AGENT_DONE) {
            free(valid);
            return rc;
        }
    }
    int best_idx = rung_index(&a->ladder, json_string_value(json_object_get(json_object_get(best, "params"), "rung")));
    rc = climb(a, ctx, best, best_idx, out, err, n);
    /* Tune around the best point of each rung, best rung first. */
    for (size_t k = 0; rc == AGENT_DONE && k < nv; k++) {
        const char *rung = json_string_value(json_object_get(json_object_get(valid[k], "params"), "rung"));
        int first = 1;
        for (size_t j = 0; j < k && first; j++) {
            const char *o = json_string_value(json_object_get(json_object_get(valid[j], "params"), "rung"));
            first = !(o && rung && strcmp(o, rung) == 0);
        }
        if (rung && first)
            rc = tune(a, ctx, valid[k], out, err, n);
    }
    free(valid);
    return rc;
}

const agent_ops_t agent_builtin_ops = {
    .name = "builtin",
    .summary = "expert policy: climbs a ladder of kernel templates and tunes their parameters by the diagnosis",
    .create = builtin_create,
    .propose = builtin_propose,
    .destroy = builtin_destroy,
    .batch = 1,
};
