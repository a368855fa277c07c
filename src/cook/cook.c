/* cook.c -- see cook.h: what a cook needs before it starts (agents, pool,
 * device), the runs it creates or resumes, and the threads of a menu. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cook/cook_internal.h"
#include "util/clock.h"
#include "worker/evaluate.h"
#include "worker/worker_client.h"

void cook_emit(struct cook *c, cook_event_kind_t kind, json_t *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&c->event_mu);
    if (c->cfg.on_event)
        c->cfg.on_event(c->cfg.event_ctx, kind, ev);
    pthread_mutex_unlock(&c->event_mu);
    json_decref(ev);
}

void cook_progress(struct cook *c, int64_t run, int iter, int worker, const char *phase,
                   const char *detail, int k, int n)
{
    json_t *ev = cook_event_new(COOK_EVENT_PROGRESS, run);
    json_object_set_new(ev, "phase", json_string(phase));
    if (detail && *detail)
        json_object_set_new(ev, "detail", json_string(detail));
    if (iter >= 0)
        json_object_set_new(ev, "iter", json_integer(iter));
    if (worker >= 0)
        json_object_set_new(ev, "worker", json_integer(worker));
    if (n > 0) {
        json_object_set_new(ev, "k", json_integer(k));
        json_object_set_new(ev, "n", json_integer(n));
    }
    json_object_set_new(ev, "elapsed_s", json_real(0));
    cook_emit(c, COOK_EVENT_PROGRESS, ev);
}

/* The pool's events, through the same serialised callback. */
static void from_pool(void *ctx, cook_event_kind_t kind, const json_t *ev)
{
    cook_emit(ctx, kind, json_incref((json_t *)ev));
}

void cook_task_name(const task_t *t, char *buf, size_t n)
{
    size_t off = (size_t)snprintf(buf, n, "%s", t->op.name);
    for (int i = 0; i < t->params.n && off < n; i++) {
        double v = t->params.values[i];
        /* Sizes and flags name a shape; a derived scale or an epsilon
         * does not. */
        if (v != floor(v) || fabs(v) > 1e15)
            continue;
        off += (size_t)snprintf(buf + off, n - off, " %s=%.0f", t->params.names[i], v);
    }
    if (off < n)
        snprintf(buf + off, n - off, " %s", dtype_name(t->dtype));
}

static double evaluate_timeout(const cook_config_t *cfg, const task_t *t)
{
    if (cfg->worker_timeout_s > 0)
        return cfg->worker_timeout_s;
    return worker_client_evaluate_timeout(t->compile_limit_s, t->time_limit_s);
}

/* The run's agent, when it has iterations to propose: made now, so that
 * what it lacks (an API key, a builtin op's ladder) is said before any
 * work.  A user-defined op without a ladder is no error: the builtin agent
 * stops after the reference, saying so. */
static int make_agent(cook_run_t *r, int needed, char *err, size_t n)
{
    r->ops = agent_find(r->task->agent);
    if (!r->ops) {
        snprintf(err, n, "unknown agent '%s' (builtin, anthropic, openai)", r->task->agent);
        return -1;
    }
    if (!needed)
        return 0;
    char why[1600] = "";
    if (r->ops->create(r->task->agent_config, r->task, &r->agent, why, sizeof why) != 0) {
        snprintf(err, n, "%s", why[0] ? why : "the agent cannot start");
        r->agent = NULL;
        return -1;
    }
    return 0;
}

static cook_t *cook_new(const cook_config_t *cfg, int n_runs, const char *backend)
{
    cook_t *c = calloc(1, sizeof *c);
    if (!c || !(c->runs = calloc((size_t)n_runs, sizeof *c->runs))) {
        free(c);
        return NULL;
    }
    c->cfg = *cfg;
    c->confirm_rounds = cfg->confirm_rounds < 0 ? COOK_CONFIRM_DEFAULT : cfg->confirm_rounds;
    c->n_runs = n_runs;
    snprintf(c->backend, sizeof c->backend, "%s", backend);
    pthread_mutex_init(&c->store_mu, NULL);
    pthread_mutex_init(&c->event_mu, NULL);
    for (int i = 0; i < n_runs; i++) {
        c->runs[i].c = c;
        c->runs[i].best_iter = -1;
        c->runs[i].resumed_at = -1;
    }
    return c;
}

/* Start the pool; its device into c->device.  0, or -1 with err. */
static int open_pool(cook_t *c, char *err, size_t n)
{
    int per = c->cfg.per_worker > 0 ? c->cfg.per_worker : 1;
    int total = per * (c->cfg.n_workers > 0 ? c->cfg.n_workers : 1);
    char what[200];
    snprintf(what, sizeof what, "starting %d worker%s and asking for the %s device", total,
             total == 1 ? "" : "s", c->backend);
    cook_progress(c, 0, -1, -1, "device", what, 0, 0);
    pool_options_t o = {.templates = c->cfg.workers, .n_templates = c->cfg.n_workers,
                        .per_template = per, .backend = c->backend,
                        .start_timeout_s = c->cfg.start_timeout_s, .on_event = from_pool, .ctx = c};
    c->pool = pool_open(&o, &c->device, err, n);
    return c->pool ? 0 : -1;
}

cook_t *cook_prepare(task_t *const *tasks, int n_tasks, const cook_config_t *cfg, int *status,
                     char *err, size_t n)
{
    *status = COOK_BAD_INPUT;
    if (n_tasks < 1) {
        snprintf(err, n, "nothing to cook");
        return NULL;
    }
    for (int i = 1; i < n_tasks; i++)
        if (strcmp(tasks[i]->backend, tasks[0]->backend) != 0) {
            snprintf(err, n, "a menu cooks on one backend: task %d wants %s, task 1 %s", i + 1,
                     tasks[i]->backend, tasks[0]->backend);
            return NULL;
        }
    cook_t *c = cook_new(cfg, n_tasks, tasks[0]->backend);
    if (!c) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n_tasks; i++) {
        cook_run_t *r = &c->runs[i];
        r->task = tasks[i];
        if (!r->task->name[0])
            cook_task_name(r->task, r->task->name, sizeof r->task->name);
        r->timeout_s = evaluate_timeout(cfg, r->task);
        char why[1800];
        if (make_agent(r, r->task->max_iters > 0, why, sizeof why) != 0) {
            if (n_tasks > 1)
                snprintf(err, n, "task %d (%s): %s", i + 1, r->task->name, why);
            else
                snprintf(err, n, "%s", why);
            cook_free(c);
            return NULL;
        }
    }
    if (open_pool(c, err, n) != 0) {
        *status = COOK_FAILED;
        cook_free(c);
        return NULL;
    }
    for (int i = 0; i < n_tasks; i++) {
        char why[1024];
        if (worker_task_fits(tasks[i], c->device, why, sizeof why) != 0) {
            if (n_tasks > 1)
                snprintf(err, n, "task %d (%s): %s", i + 1, tasks[i]->name, why);
            else
                snprintf(err, n, "%s", why);
            cook_free(c);
            return NULL;
        }
    }
    *status = COOK_OK;
    return c;
}

static void *run_thread(void *arg)
{
    cook_loop(arg);
    return NULL;
}

/* Cook every run of c (threads for a menu); the exit status. */
static int cook_all(cook_t *c, char *err, size_t n)
{
    if (c->n_runs == 1) {
        cook_loop(&c->runs[0]);
    } else {
        for (int i = 0; i < c->n_runs; i++)
            c->runs[i].threaded = pthread_create(&c->runs[i].thread, NULL, run_thread, &c->runs[i]) == 0;
        for (int i = 0; i < c->n_runs; i++)
            if (c->runs[i].threaded)
                pthread_join(c->runs[i].thread, NULL);
            else
                cook_loop(&c->runs[i]);      /* no thread: in turn, here */
        json_t *ev = cook_event_new(COOK_EVENT_MENU, 0);
        json_t *rows = json_array();
        for (int i = 0; i < c->n_runs; i++) {
            cook_run_t *r = &c->runs[i];
            const json_t *best = NULL;
            size_t k;
            json_t *it;
            json_array_foreach(r->history, k, it)
                if (json_integer_value(json_object_get(it, "iter")) == r->best_iter)
                    best = it;
            json_t *row = json_pack("{sIsssssisi}", "run", (json_int_t)r->run, "name", r->task->name,
                                    "status", r->status, "best_iter", r->best_iter, "n_iters",
                                    (int)json_array_size(r->history));
            if (best) {
                json_object_set_new(row, "time_ms", json_real(cook_num(best, "time_ms")));
                json_object_set_new(row, "roofline_pct", json_real(cook_num(best, "roofline_pct")));
                json_object_set_new(row, "speedup", json_real(cook_num(best, "speedup")));
                json_object_set_new(row, "label", json_string(json_string_value(json_object_get(best, "label"))
                                                                  ? json_string_value(json_object_get(best, "label"))
                                                                  : ""));
            }
            json_array_append_new(rows, row);
        }
        json_object_set_new(ev, "runs", rows);
        cook_emit(c, COOK_EVENT_MENU, ev);
    }
    int rc = COOK_OK;
    for (int i = 0; i < c->n_runs; i++)
        if (c->runs[i].rc != COOK_OK && rc == COOK_OK) {
            rc = COOK_FAILED;
            snprintf(err, n, "%s", c->runs[i].note);
        }
    pool_close(c->pool);
    c->pool = NULL;
    return rc;
}

int cook_run_new(cook_t *c, store_t *store, char *err, size_t n)
{
    c->store = store;
    for (int i = 0; i < c->n_runs; i++) {
        cook_run_t *r = &c->runs[i];
        r->task_json = task_to_json(r->task);
        r->history = json_array();
        if (!r->task_json || !r->history) {
            snprintf(err, n, "out of memory");
            return COOK_FAILED;
        }
        if (store_run_create(store, r->task_json, r->task->backend, r->task->agent, c->device,
                             &r->run) != 0) {
            snprintf(err, n, "%s", store_errmsg(store));
            /* Runs created before this one would stay "running". */
            for (int k = 0; k < i; k++)
                store_run_set_status(store, c->runs[k].run, "failed", err);
            pool_close(c->pool);
            c->pool = NULL;
            return COOK_FAILED;
        }
    }
    return cook_all(c, err, n);
}

void cook_free(cook_t *c)
{
    if (!c)
        return;
    pool_close(c->pool);
    for (int i = 0; i < c->n_runs; i++) {
        cook_run_t *r = &c->runs[i];
        if (r->agent && r->ops)
            r->ops->destroy(r->agent);
        json_decref(r->task_json);
        json_decref(r->history);
        if (r->owns_task)
            task_free(&r->own_task);
    }
    json_decref(c->device);
    pthread_mutex_destroy(&c->store_mu);
    pthread_mutex_destroy(&c->event_mu);
    free(c->runs);
    free(c);
}

/* Whether run r, as its history stands, still has work: no reference yet,
 * or iterations left and the target not reached. */
static int has_work(const cook_run_t *r)
{
    if (json_array_size(r->history) == 0)
        return 1;
    if ((int)json_array_size(r->history) > r->task->max_iters)
        return 0;
    double best_pct = 0;
    size_t i;
    json_t *it;
    json_array_foreach(r->history, i, it)
        if (cook_iteration_valid(it) && cook_num(it, "roofline_pct") > best_pct)
            best_pct = cook_num(it, "roofline_pct");
    return best_pct < r->task->target_pct;
}

int cook_resume(store_t *store, int64_t run, int max_iters, const cook_config_t *cfg, char *err,
                size_t n)
{
    json_t *rj = NULL;
    if (store_run_get(store, run, &rj) != 0) {
        snprintf(err, n, "%s", store_errmsg(store));
        return COOK_FAILED;
    }
    const char *backend = json_string_value(json_object_get(rj, "backend"));
    cook_t *c = cook_new(cfg, 1, backend ? backend : backend_default()->name);
    if (!c) {
        json_decref(rj);
        snprintf(err, n, "out of memory");
        return COOK_FAILED;
    }
    c->store = store;
    cook_run_t *r = &c->runs[0];
    r->run = run;
    r->task = &r->own_task;
    r->owns_task = 1;
    task_init(r->task);
    int rc = COOK_FAILED;
    char why[1800];
    if (task_from_json(r->task, json_object_get(rj, "task"), NULL, why, sizeof why) != 0 ||
        task_finalize(r->task, why, sizeof why) != 0) {
        snprintf(err, n, "run %lld has an unusable task: %s", (long long)run, why);
        goto out;
    }
    if (max_iters >= 0)
        r->task->max_iters = max_iters;
    r->task_json = task_to_json(r->task);
    r->timeout_s = evaluate_timeout(cfg, r->task);
    if (store_iterations(store, run, &r->history) != 0) {
        snprintf(err, n, "%s", store_errmsg(store));
        goto out;
    }
    r->resumed_at = (int)json_array_size(r->history);
    int work = has_work(r);
    if (make_agent(r, work && r->resumed_at <= r->task->max_iters, why, sizeof why) != 0) {
        snprintf(err, n, "%s", why);
        rc = COOK_BAD_INPUT;
        goto out;
    }
    const json_t *stored = json_object_get(rj, "device");
    if (work) {
        if (open_pool(c, err, n) != 0)
            goto out;
        const char *had = json_string_value(json_object_get(stored, "name"));
        const char *have = json_string_value(json_object_get(c->device, "name"));
        if (had && have && strcmp(had, have) != 0) {
            snprintf(err, n, "run %lld was cooked on %s; the workers here have %s, whose times "
                     "would not compare with its iterations (cook a new run here)", (long long)run,
                     had, have);
            rc = COOK_BAD_INPUT;
            goto out;
        }
    }
    json_decref(c->device);
    c->device = json_incref((json_t *)stored);
    if (work)
        store_run_set_status(store, run, "running", NULL);
    rc = cook_all(c, err, n);
out:
    json_decref(rj);
    cook_free(c);
    return rc;
}
