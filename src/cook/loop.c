/* loop.c -- one run's loop: the reference, then batches of proposals
 * evaluated by the pool, re-measured where one figure would decide,
 * recorded in order.  See cook.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/lang.h"
#include "cook/cook_internal.h"
#include "util/clock.h"

static const json_t *iteration_at(const cook_run_t *r, int iter)
{
    size_t i;
    json_t *it;
    json_array_foreach(r->history, i, it)
        if (json_integer_value(json_object_get(it, "iter")) == iter)
            return it;
    return NULL;
}

static void recompute_best(cook_run_t *r)
{
    size_t i;
    json_t *it;
    double best = INFINITY;
    r->best_iter = -1;
    json_array_foreach(r->history, i, it) {
        double t = cook_num(it, "time_ms");
        if (cook_iteration_valid(it) && t > 0 && t < best) {
            best = t;
            r->best_iter = (int)json_integer_value(json_object_get(it, "iter"));
        }
        if (json_integer_value(json_object_get(it, "iter")) == 0 && cook_iteration_valid(it))
            r->ref_ms = t;
    }
}

/* The tag of the candidates' language (an iteration's "lang"). */
static const char *lang_of(const cook_run_t *r)
{
    const lang_t *lg = lang_for(r->task->backend, r->task->lang, NULL, 0);
    return lg ? lg->tag : "c";
}

/* An evaluate request; lang: the source's language when it is not the
 * task's (the reference may be CUDA C++ for a Triton task). */
static json_t *evaluate_request(const cook_run_t *r, const char *source, const char *lang,
                                const json_t *options)
{
    json_t *req = json_pack("{sssOs{ss}}", "cmd", "evaluate", "task", r->task_json, "kernel", "source",
                            source);
    if (req && lang)
        json_object_set_new(json_object_get(req, "kernel"), "lang", json_string(lang));
    if (req && options)
        json_object_set(req, "options", (json_t *)options);
    return req;
}

static void init_job(pool_job_t *j, const cook_run_t *r, const json_t *req, int iter,
                     const char *phase)
{
    memset(j, 0, sizeof *j);
    j->request = req;
    j->pin = -1;
    j->timeout_s = r->timeout_s;
    j->run = r->run;
    j->iter = iter;
    j->phase = phase;
    j->slot = -1;
    j->avoid = -1;
}

/* ---- the store ----------------------------------------------------------- */

/* Record it (with words on where its compiler's log is), show it.  0, or
 * -1 with err (the store's words). */
static int record(cook_run_t *r, json_t *it, char *err, size_t n)
{
    cook_t *c = r->c;
    cook_iteration_log_words(it, r->run);
    pthread_mutex_lock(&c->store_mu);
    int rc = store_iteration_add(c->store, r->run, it);
    if (rc != 0)
        snprintf(err, n, "cannot record iteration %lld: %s",
                 (long long)json_integer_value(json_object_get(it, "iter")), store_errmsg(c->store));
    pthread_mutex_unlock(&c->store_mu);
    if (rc != 0)
        return -1;
    json_array_append(r->history, it);
    int old = r->best_iter;
    recompute_best(r);
    if (r->best_iter != old && r->best_iter >= 0) {
        pthread_mutex_lock(&c->store_mu);
        store_run_set_best(c->store, r->run, r->best_iter);
        pthread_mutex_unlock(&c->store_mu);
    }
    json_t *ev = cook_event_new(COOK_EVENT_ITERATION, r->run);
    json_object_set(ev, "iteration", it);
    cook_emit(c, COOK_EVENT_ITERATION, ev);
    return 0;
}

/* An LLM run's tokens and estimated cost ({"tokens_in","tokens_out",
 * "cost_usd"}), NULL for a run without messages: store_message_add keeps
 * the run's token totals, each assistant message carries its cost. */
static json_t *llm_totals(cook_run_t *r)
{
    cook_t *c = r->c;
    json_t *msgs = NULL, *rj = NULL, *out = NULL;
    pthread_mutex_lock(&c->store_mu);
    if (store_messages(c->store, r->run, &msgs) == 0 && json_array_size(msgs) > 0 &&
        store_run_get(c->store, r->run, &rj) == 0) {
        double cost = 0;
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m)
            cost += cook_num(json_object_get(m, "content"), "cost_usd");
        out = json_pack("{sIsIsf}", "tokens_in", json_integer_value(json_object_get(rj, "tokens_in")),
                        "tokens_out", json_integer_value(json_object_get(rj, "tokens_out")), "cost_usd",
                        cost);
    }
    pthread_mutex_unlock(&c->store_mu);
    json_decref(msgs);
    json_decref(rj);
    return out;
}

static void finish(cook_run_t *r, const char *status, const char *note)
{
    cook_t *c = r->c;
    snprintf(r->status, sizeof r->status, "%s", status);
    if (note != r->note)
        snprintf(r->note, sizeof r->note, "%s", note);
    r->rc = strcmp(status, "failed") == 0 ? COOK_FAILED : COOK_OK;
    pthread_mutex_lock(&c->store_mu);
    store_run_set_status(c->store, r->run, status, r->note);
    pthread_mutex_unlock(&c->store_mu);
    json_t *ev = cook_event_new(COOK_EVENT_DONE, r->run);
    json_object_set_new(ev, "status", json_string(status));
    json_object_set_new(ev, "note", json_string(r->note));
    json_object_set_new(ev, "best_iter", json_integer(r->best_iter));
    const json_t *best = iteration_at(r, r->best_iter);
    if (best) {
        json_t *b = json_object();
        static const char *const keys[] = {"iter", "label", "time_ms", "gflops", "roofline_pct", "speedup"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (json_object_get(best, keys[i]))
                json_object_set(b, keys[i], json_object_get(best, keys[i]));
        if (r->ref_ms > 0 && cook_num(best, "time_ms") > 0)
            json_object_set_new(b, "speedup", json_real(r->ref_ms / cook_num(best, "time_ms")));
        json_object_set_new(ev, "best", b);
    }
    /* A PyTorch reference's two floors (eager, torch.compile), measured with
     * iteration 0: the best is quoted against both. */
    const json_t *floors = json_object_get(json_object_get(iteration_at(r, 0), "report"), "floors");
    if (json_is_object(floors))
        json_object_set(ev, "floors", (json_t *)floors);
    json_t *llm = llm_totals(r);
    if (llm)
        json_object_set_new(ev, "llm", llm);
    cook_emit(c, COOK_EVENT_DONE, ev);
}

/* ---- the agents' tools --------------------------------------------------- */

/* The agents' evaluate tool: one job on any worker, not recorded. */
static int tool_evaluate(void *ctx, const char *source, const json_t *options, json_t **reply,
                         char *err, size_t n)
{
    cook_run_t *r = ctx;
    json_t *req = evaluate_request(r, source, NULL, options);
    pool_job_t j;
    init_job(&j, r, req, -1, "evaluate");
    snprintf(j.detail, sizeof j.detail, "a kernel the agent asked to profile");
    pool_run(r->c->pool, &j, 1, NULL, NULL);
    json_decref(req);
    *reply = j.reply;
    j.reply = NULL;
    if (!*reply)
        snprintf(err, n, "%s", j.error);
    pool_job_clear(&j);
    return *reply ? 0 : -1;
}

static void tool_record(void *ctx, const char *role, const json_t *content, long long tin,
                        long long tout)
{
    cook_run_t *r = ctx;
    int iter = (int)json_array_size(r->history);
    pthread_mutex_lock(&r->c->store_mu);
    store_message_add(r->c->store, r->run, iter, role, content, tin, tout);
    pthread_mutex_unlock(&r->c->store_mu);
}

/* ---- the reference ------------------------------------------------------- */

/* Measure the reference alone `rounds` more times when its figure is
 * noisy: every speedup of the run divides by it. */
static void settle_reference(cook_run_t *r, json_t *it, const json_t *reply, int slot)
{
    if (r->c->confirm_rounds <= 0 || !cook_remeasure_why(reply, 0))
        return;
    remeasure_t rm = {.index = 0, .iter = 0, .why = "noisy_timing",
                      .source = r->task->reference_source, .slot = slot, .reply = (json_t *)reply};
    cook_remeasure(r, &rm, 1, r->c->confirm_rounds, -1);
    cook_remeasure_apply(it, &rm, -1, 0, 0);
    json_object_set_new(it, "speedup", json_real(1.0));
    cook_remeasure_free(&rm);
}

/* Iteration 0.  0, or -1 with the run finished as failed. */
static int cook_reference(cook_run_t *r)
{
    char err[2048];
    json_t *req = evaluate_request(r, r->task->reference_source, task_reference_kernel_lang(r->task), NULL);
    pool_job_t j;
    init_job(&j, r, req, 0, "reference");
    snprintf(j.detail, sizeof j.detail, "compile, check against float64, validate, profile");
    double t0 = clock_mono_s();
    pool_run(r->c->pool, &j, 1, NULL, NULL);
    json_decref(req);
    if (!j.reply || !json_is_true(json_object_get(j.reply, "ok"))) {
        const char *e = j.reply ? json_string_value(json_object_get(j.reply, "error")) : NULL;
        if (j.reply)
            snprintf(err, sizeof err, "the worker refused the request: %.1900s", e ? e : "?");
        else
            snprintf(err, sizeof err, "%s", j.error);
        pool_job_clear(&j);
        finish(r, "failed", err);
        return -1;
    }
    json_t *it = cook_iteration(0, "reference", "the reference: the oracle and the floor",
                                r->task->reference_source, r->task->reference_lang, NULL, j.reply,
                                0, 0);
    json_object_set_new(it, "worker", json_integer(j.slot + 1));
    settle_reference(r, it, j.reply, j.slot);
    json_object_set_new(it, "elapsed_s", json_real(clock_mono_s() - t0));
    pool_job_clear(&j);
    int rc = record(r, it, err, sizeof err);
    if (rc == 0 && !cook_iteration_valid(it)) {
        const char *e = json_string_value(json_object_get(it, "error"));
        snprintf(err, sizeof err, "the reference is not usable (%s): %.1800s",
                 json_string_value(json_object_get(it, "status")), e ? e : "");
        rc = -1;
    }
    json_decref(it);
    if (rc != 0)
        finish(r, "failed", err);
    return rc;
}

/* ---- a batch --------------------------------------------------------------- */

typedef struct batch {
    agent_proposal_t p[64];
    int n;
    pool_job_t jobs[64];
    json_t *reqs[64];
    double t0, elapsed[64];
} batch_t;

static void batch_free(batch_t *b)
{
    for (int k = 0; k < b->n; k++) {
        agent_proposal_free(&b->p[k]);
        pool_job_clear(&b->jobs[k]);
        json_decref(b->reqs[k]);
    }
    b->n = 0;
}

/* How many candidates to ask for: one per worker for an agent that can
 * propose a batch, never past the budget. */
static int batch_size(const cook_run_t *r, int next)
{
    int n = r->ops->batch ? pool_size(r->c->pool) : 1;
    int left = r->task->max_iters - next + 1;
    if (n > left)
        n = left;
    if (n > 64)
        n = 64;
    return n < 1 ? 1 : n;
}

/* Ask the agent for up to batch_size candidates.  AGENT_OK with b->n >=
 * 1, AGENT_DONE (note in err), or AGENT_ERROR (err). */
static int propose(cook_run_t *r, int next, batch_t *b, char *err, size_t n)
{
    cook_t *c = r->c;
    int want = batch_size(r, next);
    agent_tools_t tools = {.ctx = r, .evaluate = tool_evaluate, .record_message = tool_record};
    json_t *messages = NULL;
    pthread_mutex_lock(&c->store_mu);
    store_messages(c->store, r->run, &messages);
    pthread_mutex_unlock(&c->store_mu);
    /* Candidates proposed but not measured yet, as "pending" iterations:
     * an agent that proposes batches skips what is already in flight. */
    json_t *view = json_array();
    json_array_extend(view, r->history);
    char what[160];
    snprintf(what, sizeof what, want > 1 ? "the agent chooses %d candidates" : "the agent chooses a candidate",
             want);
    cook_progress(c, r->run, next, -1, "propose", what, 0, 0);
    int rc = AGENT_OK;
    b->n = 0;
    while (b->n < want) {
        agent_context_t ctx = {.task = r->task, .task_json = r->task_json, .device = c->device,
                               .history = view, .messages = messages, .next_iter = next + b->n,
                               .best_iter = r->best_iter, .tools = &tools};
        agent_proposal_t *p = &b->p[b->n];
        memset(p, 0, sizeof *p);
        err[0] = '\0';
        int arc = r->ops->propose(r->agent, &ctx, p, err, n);
        if (arc != AGENT_OK) {
            agent_proposal_free(p);
            if (arc == AGENT_DONE && b->n > 0)
                break;                     /* a smaller batch */
            rc = arc;
            if (arc == AGENT_DONE && !err[0])
                snprintf(err, n, "the agent has nothing left to try");
            break;
        }
        json_array_append_new(view, json_pack("{sisssssO}", "iter", next + b->n, "status", "pending",
                                              "label", p->label ? p->label : "", "params",
                                              p->params ? p->params : json_null()));
        b->n++;
    }
    json_decref(view);
    json_decref(messages);
    return rc;
}

static void job_done(void *ctx, pool_job_t *j)
{
    batch_t *b = ctx;
    b->elapsed[j - b->jobs] = clock_mono_s() - b->t0;
}

/* Evaluate the batch, re-measure what must be, record in order.  0, or -1
 * with the run finished as failed. */
static int cook_batch(cook_run_t *r, int next, batch_t *b)
{
    cook_t *c = r->c;
    char err[2048];
    for (int k = 0; k < b->n; k++) {
        b->reqs[k] = evaluate_request(r, b->p[k].source, NULL, NULL);
        init_job(&b->jobs[k], r, b->reqs[k], next + k, "evaluate");
        if (b->n > 1)
            snprintf(b->jobs[k].detail, sizeof b->jobs[k].detail, "%.120s (%d of %d)",
                     b->p[k].label ? b->p[k].label : "", k + 1, b->n);
        else
            snprintf(b->jobs[k].detail, sizeof b->jobs[k].detail, "%.150s",
                     b->p[k].label ? b->p[k].label : "");
    }
    b->t0 = clock_mono_s();
    pool_run(c->pool, b->jobs, (size_t)b->n, job_done, b);

    /* Results that must be measured again, beside the incumbent. */
    const json_t *inc = iteration_at(r, r->best_iter);
    double inc_ms = cook_num(inc, "time_ms");
    remeasure_t rm[64];
    int nrm = 0;
    for (int k = 0; k < b->n && c->confirm_rounds > 0; k++) {
        const char *why = b->jobs[k].reply ? cook_remeasure_why(b->jobs[k].reply, inc_ms) : NULL;
        if (why)
            rm[nrm++] = (remeasure_t){.index = k, .iter = next + k, .why = why,
                                      .source = b->p[k].source, .slot = b->jobs[k].slot,
                                      .reply = b->jobs[k].reply};
    }
    if (nrm > 0) {
        double t1 = clock_mono_s();
        cook_remeasure(r, rm, nrm, c->confirm_rounds, r->best_iter);
        for (int i = 0; i < nrm; i++)
            b->elapsed[rm[i].index] += clock_mono_s() - t1;
    }

    int rc = 0;
    for (int k = 0; k < b->n && rc == 0; k++) {
        pool_job_t *j = &b->jobs[k];
        agent_proposal_t *p = &b->p[k];
        json_t *it;
        if (!j->reply) {
            if (strncmp(j->error, "no worker is left", 17) == 0) {
                snprintf(err, sizeof err, "%s", j->error);
                rc = -1;
                break;
            }
            it = cook_iteration_failed(next + k, p->label, p->reason, p->source, lang_of(r), p->params,
                                       j->error, b->elapsed[k]);
        } else if (!json_is_true(json_object_get(j->reply, "ok"))) {
            const char *e = json_string_value(json_object_get(j->reply, "error"));
            snprintf(err, sizeof err, "the worker refused the request: %.1900s", e ? e : "?");
            rc = -1;
            break;
        } else {
            it = cook_iteration(next + k, p->label, p->reason, p->source, lang_of(r), p->params,
                                j->reply, b->elapsed[k], r->ref_ms);
            json_object_set_new(it, "worker", json_integer(j->slot + 1));
            for (int i = 0; i < nrm; i++)
                if (rm[i].index == k)
                    cook_remeasure_apply(it, &rm[i], r->best_iter, inc_ms, r->ref_ms);
        }
        if (j->lost)
            json_object_set(it, "lost", j->lost);
        rc = record(r, it, err, sizeof err);
        json_decref(it);
    }
    for (int i = 0; i < nrm; i++)
        cook_remeasure_free(&rm[i]);
    if (rc != 0)
        finish(r, "failed", err);
    return rc;
}

/* ---- the loop -------------------------------------------------------------- */

static void emit_run(cook_run_t *r)
{
    cook_t *c = r->c;
    json_t *ev = cook_event_new(COOK_EVENT_RUN, r->run);
    json_object_set_new(ev, "name", json_string(r->task->name));
    json_object_set_new(ev, "op", json_string(r->task->op.name));
    json_object_set_new(ev, "device", json_string(json_string_value(json_object_get(c->device, "name"))
                                                      ? json_string_value(json_object_get(c->device, "name"))
                                                      : "?"));
    json_object_set_new(ev, "backend", json_string(r->task->backend));
    /* The language, when it is not the backend's first (CUDA C++ on cuda). */
    const backend_t *be = backend_find(r->task->backend);
    if (be && be->langs && strcmp(be->langs[0], r->task->lang) != 0)
        json_object_set_new(ev, "lang", json_string(r->task->lang));
    json_object_set_new(ev, "target", json_real(r->task->target_pct));
    json_object_set_new(ev, "max_iters", json_integer(r->task->max_iters));
    json_object_set_new(ev, "agent", json_string(r->task->agent));
    json_object_set_new(ev, "workers", json_integer(pool_size(c->pool)));
    if (r->resumed_at >= 0)
        json_object_set_new(ev, "resumed_at", json_integer(r->resumed_at));
    cook_emit(c, COOK_EVENT_RUN, ev);
}

void cook_loop(cook_run_t *r)
{
    cook_t *c = r->c;
    char err[2048], note[2400];
    emit_run(r);
    recompute_best(r);
    if (!iteration_at(r, 0) && cook_reference(r) != 0)
        return;
    int next = (int)json_array_size(r->history);
    for (;;) {
        const json_t *best = iteration_at(r, r->best_iter);
        double pct = best ? cook_num(best, "roofline_pct") : 0;
        if (pct >= r->task->target_pct) {
            snprintf(note, sizeof note, "target reached: %.1f%% of roofline >= %.1f%%", pct,
                     r->task->target_pct);
            finish(r, "done", note);
            return;
        }
        if (next > r->task->max_iters) {
            finish(r, "done", "the iteration budget is spent");
            return;
        }
        if (c->cfg.stop && *c->cfg.stop) {
            finish(r, "stopped", "stopped on request");
            return;
        }
        if (!r->agent) {
            /* Only a run with nothing left to propose has none. */
            finish(r, "done", "the iteration budget is spent");
            return;
        }
        batch_t *b = calloc(1, sizeof *b);
        if (!b) {
            finish(r, "failed", "out of memory");
            return;
        }
        int arc = propose(r, next, b, err, sizeof err);
        if (arc == AGENT_DONE) {
            batch_free(b);
            free(b);
            finish(r, "done", err);
            return;
        }
        if (arc != AGENT_OK) {
            batch_free(b);
            free(b);
            finish(r, "failed", err[0] ? err : "the agent failed without a word");
            return;
        }
        int rc = cook_batch(r, next, b);
        next += b->n;
        batch_free(b);
        free(b);
        if (rc != 0)
            return;
    }
}
