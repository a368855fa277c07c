/* cook.c -- see cook.h. */
#include "cook.h"

#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "backend/backend.h"
#include "backend/lang.h"
#include "cli.h"
#include "report/iteration_line.h"
#include "store/store.h"
#include "worker/evaluate.h"
#include "worker/worker_client.h"
#include "util/clock.h"

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct cook {
    const cook_options_t *o;
    store_t *store;
    worker_client_t worker;
    int64_t run;
    task_t *task;
    json_t *task_json;
    json_t *device;
    json_t *history;
    int best_iter;
    double ref_ms;
} cook_t;

static void event(cook_t *c, const char *name, json_t *extra)
{
    if (!c->o->events) {
        json_decref(extra);
        return;
    }
    json_t *e = extra ? extra : json_object();
    json_object_set_new(e, "event", json_string(name));
    json_object_set_new(e, "run", json_integer(c->run));
    char *s = json_dumps(e, JSON_COMPACT);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(e);
}

static void say(cook_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(cook_t *c, const char *fmt, ...)
{
    if (c->o->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->o->events ? stderr : stdout, fmt, ap);
    va_end(ap);
    fflush(c->o->events ? stderr : stdout);
}

/* The agents' evaluate tool: the same worker call, not recorded. */
/* lang: the source's language when it is not the task's (the reference). */
static int evaluate_in(cook_t *c, const char *source, const char *lang, const json_t *options, json_t **reply,
                       char *err, size_t n)
{
    json_t *req = json_object();
    json_object_set_new(req, "cmd", json_string("evaluate"));
    json_object_set(req, "task", c->task_json);
    json_object_set_new(req, "kernel", json_pack("{ss}", "source", source));
    if (lang)
        json_object_set_new(json_object_get(req, "kernel"), "lang", json_string(lang));
    if (options)
        json_object_set(req, "options", (json_t *)options);
    *reply = worker_client_call(&c->worker, req, err, n);
    json_decref(req);
    return *reply ? 0 : -1;
}

static int tool_evaluate(void *ctx, const char *source, const json_t *options, json_t **reply, char *err, size_t n)
{
    return evaluate_in(ctx, source, NULL, options, reply, err, n);
}

static void tool_record(void *ctx, const char *role, const json_t *content, long long tin, long long tout)
{
    cook_t *c = ctx;
    int iter = (int)json_array_size(c->history);
    store_message_add(c->store, c->run, iter, role, content, tin, tout);
}

static json_t *iteration_from_reply(int iter, const char *label, const char *reason, const char *source,
                                    const char *lang, json_t *params, json_t *reply, double elapsed,
                                    double ref_ms)
{
    json_t *it = json_object();
    json_object_set_new(it, "iter", json_integer(iter));
    json_object_set_new(it, "label", json_string(label ? label : ""));
    json_object_set_new(it, "reason", json_string(reason ? reason : ""));
    json_object_set_new(it, "source", json_string(source));
    json_object_set_new(it, "lang", json_string(lang));
    json_object_set(it, "params", params ? params : json_null());
    const char *status = json_string_value(json_object_get(reply, "status"));
    json_object_set_new(it, "status", json_string(status ? status : "error"));
    json_t *e = json_object_get(reply, "error");
    json_object_set(it, "error", e ? e : json_null());
    const char *log = json_string_value(json_object_get(json_object_get(reply, "compile"), "log"));
    json_object_set_new(it, "compile_log", json_string(log ? log : ""));
    json_t *rep = json_object_get(reply, "report");
    json_object_set(it, "report", rep ? rep : json_null());
    if (rep) {
        double t = json_number_value(json_object_get(json_object_get(rep, "time_ms"), "median"));
        json_object_set_new(it, "time_ms", json_real(t));
        json_object_set(it, "gflops", json_object_get(rep, "gflops"));
        json_object_set(it, "roofline_pct", json_object_get(rep, "roofline_pct"));
        json_object_set_new(it, "speedup", json_real(ref_ms > 0 && t > 0 ? ref_ms / t : (iter == 0 ? 1.0 : 0)));
    }
    json_object_set_new(it, "elapsed_s", json_real(elapsed));
    return it;
}

static int is_valid(const json_t *it)
{
    const char *s = json_string_value(json_object_get(it, "status"));
    return s && strcmp(s, "valid") == 0;
}

static double it_num(const json_t *it, const char *k)
{
    return json_number_value(json_object_get(it, k));
}

static void recompute_best(cook_t *c)
{
    size_t i;
    json_t *it;
    double best = INFINITY;
    c->best_iter = -1;
    json_array_foreach(c->history, i, it) {
        if (is_valid(it) && it_num(it, "time_ms") > 0 && it_num(it, "time_ms") < best) {
            best = it_num(it, "time_ms");
            c->best_iter = (int)json_integer_value(json_object_get(it, "iter"));
        }
        if (json_integer_value(json_object_get(it, "iter")) == 0 && is_valid(it))
            c->ref_ms = it_num(it, "time_ms");
    }
}

static const json_t *iteration_at(const cook_t *c, int iter)
{
    size_t i;
    json_t *it;
    json_array_foreach(c->history, i, it) if (json_integer_value(json_object_get(it, "iter")) == iter) return it;
    return NULL;
}

/* Stores an iteration and shows it; -1 with err set (the store's words)
 * when it cannot be stored. */
static int record(cook_t *c, json_t *it, char *err, size_t n)
{
    if (store_iteration_add(c->store, c->run, it) != 0) {
        snprintf(err, n, "cannot record iteration %lld: %s", (long long)json_integer_value(json_object_get(it, "iter")),
                 store_errmsg(c->store));
        return -1;
    }
    json_array_append(c->history, it);
    int old = c->best_iter;
    recompute_best(c);
    if (c->best_iter != old && c->best_iter >= 0)
        store_run_set_best(c->store, c->run, c->best_iter);
    char line[1024];
    iteration_line(line, sizeof line, it, c->ref_ms);
    say(c, "%s\n", line);
    const char *reason = json_string_value(json_object_get(it, "reason"));
    if (reason && *reason && json_integer_value(json_object_get(it, "iter")) > 0)
        say(c, "      why: %s\n", reason);
    event(c, "iteration", json_pack("{sO}", "iteration", it));
    return 0;
}

static json_t *evaluate(cook_t *c, const char *source, const char *lang, char *err, size_t n)
{
    json_t *reply = NULL;
    if (evaluate_in(c, source, lang, NULL, &reply, err, n) != 0)
        return NULL;
    if (!json_is_true(json_object_get(reply, "ok"))) {
        snprintf(err, n, "the worker refused the request: %s",
                 json_string_value(json_object_get(reply, "error")) ? json_string_value(json_object_get(reply, "error")) : "?");
        json_decref(reply);
        return NULL;
    }
    return reply;
}

static void summary(cook_t *c, const char *status, const char *note)
{
    const json_t *best = c->best_iter >= 0 ? iteration_at(c, c->best_iter) : NULL;
    say(c, "\n%s: %s\n", status, note);
    if (best) {
        const json_t *rep = json_object_get(best, "report");
        say(c, "best: iteration %d (%s): %.4g ms, %.4g GFLOP/s, %.1f%% of roofline, %.2fx the reference\n",
            c->best_iter, json_string_value(json_object_get(best, "label")), it_num(best, "time_ms"),
            it_num(rep, "gflops"), it_num(rep, "roofline_pct"), c->ref_ms / it_num(best, "time_ms"));
        char floors[512];
        if (cli_floors_note(c->history, best, floors, sizeof floors))
            say(c, "%s\n", floors);
    }
    /* LLM runs: tokens and the estimated cost (store_message_add keeps the
     * run's token totals; each assistant message carries its cost). */
    json_t *msgs = NULL, *rj = NULL;
    double cost = 0;
    if (store_messages(c->store, c->run, &msgs) == 0) {
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m) cost += json_number_value(json_object_get(json_object_get(m, "content"), "cost_usd"));
    }
    if (json_array_size(msgs) > 0 && store_run_get(c->store, c->run, &rj) == 0)
        say(c, "LLM: %lld tokens in, %lld out, estimated cost $%.4f\n",
            (long long)json_integer_value(json_object_get(rj, "tokens_in")),
            (long long)json_integer_value(json_object_get(rj, "tokens_out")), cost);
    json_decref(msgs);
    json_decref(rj);
    say(c, "run %lld in %s  (emile show %lld; emile export %lld DIR)\n", (long long)c->run,
        c->o->store_path ? c->o->store_path : "the default store", (long long)c->run, (long long)c->run);
}

static int loop(cook_t *c)
{
    char err[2048];
    int rc = 0;
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    if (worker_client_open(&c->worker, c->o->worker_cmd, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        store_run_set_status(c->store, c->run, "failed", err);
        return 1;
    }
    c->worker.timeout_s = worker_client_evaluate_timeout(c->task->compile_limit_s,
                                                         c->task->time_limit_s);
    event(c, "run", NULL);
    char hdr[512];
    iteration_line_header(hdr, sizeof hdr);
    say(c, "%s\n", hdr);
    recompute_best(c);
    if (!iteration_at(c, 0)) {
        double t0 = clock_mono_s();
        json_t *reply = evaluate(c, c->task->reference_source, c->task->reference_lang, err, sizeof err);
        if (!reply) {
            fprintf(stderr, "emile: %s\n", err);
            store_run_set_status(c->store, c->run, "failed", err);
            worker_client_close(&c->worker);
            return 1;
        }
        json_t *it = iteration_from_reply(0, "reference", "the reference: the oracle and the floor",
                                          c->task->reference_source, c->task->reference_lang, NULL, reply,
                                          clock_mono_s() - t0, 0);
        json_decref(reply);
        rc = record(c, it, err, sizeof err);
        int valid = is_valid(it);
        char msg[2048];
        if (rc != 0)
            snprintf(msg, sizeof msg, "%s", err);
        else
            snprintf(msg, sizeof msg, "the reference is not usable (%s): %.1800s",
                     json_string_value(json_object_get(it, "status")),
                     json_string_value(json_object_get(it, "error")) ? json_string_value(json_object_get(it, "error")) : "");
        json_decref(it);
        if (rc != 0 || !valid) {
            fprintf(stderr, "emile: %s\n", msg);
            store_run_set_status(c->store, c->run, "failed", msg);
            event(c, "done", json_pack("{sssi}", "status", "failed", "best_iter", -1));
            worker_client_close(&c->worker);
            return 1;
        }
    }
    const agent_ops_t *ops = agent_find(c->task->agent);
    agent_t *agent = NULL;
    if (!ops) {
        snprintf(err, sizeof err, "unknown agent '%s' (builtin, anthropic, openai)", c->task->agent);
        rc = -1;
    } else if (ops->create(c->task->agent_config, c->task, &agent, err, sizeof err) != 0) {
        rc = -1;
    }
    const char *status = "done", *note = "the iteration budget is spent";
    char notebuf[2200];
    agent_tools_t tools = {.ctx = c, .evaluate = tool_evaluate, .record_message = tool_record};
    json_t *messages = NULL;
    store_messages(c->store, c->run, &messages);
    int next = (int)json_array_size(c->history);
    while (rc == 0) {
        const json_t *best = iteration_at(c, c->best_iter);
        double pct = best ? it_num(json_object_get(best, "report"), "roofline_pct") : 0;
        if (pct >= c->task->target_pct) {
            snprintf(notebuf, sizeof notebuf, "target reached: %.1f%% of roofline >= %.1f%%", pct, c->task->target_pct);
            note = notebuf;
            break;
        }
        if (next > c->task->max_iters)
            break;
        if (g_stop) {
            status = "stopped";
            note = "stopped on request";
            break;
        }
        agent_context_t ctx = {.task = c->task, .task_json = c->task_json, .device = c->device,
                               .history = c->history, .messages = messages, .next_iter = next,
                               .best_iter = c->best_iter, .tools = &tools};
        agent_proposal_t p;
        memset(&p, 0, sizeof p);
        err[0] = 0;
        int arc = ops->propose(agent, &ctx, &p, err, sizeof err);
        if (arc == AGENT_DONE) {
            /* An LLM agent says why it stopped (budget, refusal, no tool call). */
            snprintf(notebuf, sizeof notebuf, "%s", err[0] ? err : "the agent has nothing left to try");
            note = notebuf;
            agent_proposal_free(&p);
            break;
        }
        if (arc != AGENT_OK) {
            rc = -1;
            agent_proposal_free(&p);
            break;
        }
        double t0 = clock_mono_s();
        json_t *reply = evaluate(c, p.source, NULL, err, sizeof err);
        if (!reply) {
            agent_proposal_free(&p);
            rc = -1;
            break;
        }
        const lang_t *lg = lang_for(c->task->backend, c->task->lang, NULL, 0);
        json_t *it = iteration_from_reply(next, p.label, p.reason, p.source, lg ? lg->tag : "c", p.params, reply,
                                          clock_mono_s() - t0, c->ref_ms);
        json_decref(reply);
        agent_proposal_free(&p);
        rc = record(c, it, err, sizeof err);
        json_decref(it);
        next++;
        json_decref(messages);
        messages = NULL;
        store_messages(c->store, c->run, &messages);
    }
    json_decref(messages);
    if (ops && agent)
        ops->destroy(agent);
    worker_client_close(&c->worker);
    if (rc != 0) {
        status = "failed";
        snprintf(notebuf, sizeof notebuf, "%s", err);
        note = notebuf;
        fprintf(stderr, "emile: %s\n", err);
    }
    store_run_set_status(c->store, c->run, status, note);
    summary(c, status, note);
    event(c, "done", json_pack("{sssi}", "status", status, "best_iter", c->best_iter));
    return rc == 0 ? 0 : 1;
}

json_t *cook_fetch_device(const cook_options_t *o, const char *backend, char *err, size_t n)
{
    worker_client_t w;
    if (worker_client_open(&w, o->worker_cmd, err, n) != 0)
        return NULL;
    w.timeout_s = WORKER_CLIENT_DEVICES_TIMEOUT_S;
    json_t *req = json_pack("{ssss}", "cmd", "devices", "backend", backend);
    json_t *reply = worker_client_call(&w, req, err, n);
    json_decref(req);
    worker_client_close(&w);
    json_t *dev = json_incref(json_array_get(json_object_get(reply, "devices"), 0));
    if (!dev) {
        const char *why = json_string_value(json_object_get(json_array_get(json_object_get(reply, "unavailable"), 0), "why"));
        /* No reply is the worker's failure, not the backend's. */
        char prev[1024];
        snprintf(prev, sizeof prev, "%.1000s", err);
        if (!reply)
            snprintf(err, n, "cannot ask the worker about backend %s: %.1000s", backend, prev);
        else
            snprintf(err, n, "backend %s is not available: %.1000s", backend,
                     why ? why : "the worker named no reason");
    }
    json_decref(reply);
    return dev;
}

/* Frees what cook_start and cook_resume gathered in c (NULL members are
 * fine). */
static void cook_free(cook_t *c)
{
    json_decref(c->task_json);
    json_decref(c->device);
    json_decref(c->history);
    store_close(c->store);
}

int cook_start(task_t *task, const cook_options_t *o)
{
    cook_t c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.task = task;
    char err[2048];
    int rc = 1;
    if (!agent_find(task->agent)) {
        fprintf(stderr, "emile: unknown agent '%s' (builtin, anthropic, openai)\n", task->agent);
        return 2;
    }
    c.device = cook_fetch_device(o, task->backend, err, sizeof err);
    if (!c.device) {
        fprintf(stderr, "emile: %s\n", err);
        goto out;
    }
    if (worker_task_fits(task, c.device, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        rc = 2;
        goto out;
    }
    if (cli_store_open(o->store_path, CLI_STORE_WRITE, &c.store) != 0)
        goto out;
    c.task_json = task_to_json(task);
    c.history = json_array();
    if (!c.task_json || !c.history) {
        fprintf(stderr, "emile: out of memory\n");
        goto out;
    }
    if (store_run_create(c.store, c.task_json, task->backend, task->agent, c.device, &c.run) != 0) {
        fprintf(stderr, "emile: %s\n", store_errmsg(c.store));
        goto out;
    }
    const backend_t *be = backend_find(task->backend);
    int other_lang = be && be->langs && strcmp(be->langs[0], task->lang) != 0;
    say(&c, "run %lld: %s %s on %s (%s%s%s), target %.0f%% of roofline, up to %d iterations, agent %s\n",
        (long long)c.run, task->op.name, task->name[0] ? task->name : "",
        json_string_value(json_object_get(c.device, "name")), task->backend, other_lang ? ", " : "",
        other_lang ? task->lang : "", task->target_pct, task->max_iters, task->agent);
    rc = loop(&c);
out:
    cook_free(&c);
    return rc;
}

int cook_resume(int64_t run, int max_iters, const cook_options_t *o)
{
    cook_t c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.run = run;
    json_t *rj = NULL;
    task_t task;
    task_init(&task);
    char err[1024];
    int rc = 1;
    /* A run to resume lives in a store that exists: none is created. */
    if (cli_store_open(o->store_path, CLI_STORE_READ, &c.store) != 0)
        goto out;
    if (store_run_get(c.store, run, &rj) != 0) {
        fprintf(stderr, "emile: %s\n", store_errmsg(c.store));
        goto out;
    }
    if (task_from_json(&task, json_object_get(rj, "task"), NULL, err, sizeof err) != 0 ||
        task_finalize(&task, err, sizeof err) != 0) {
        fprintf(stderr, "emile: run %lld has an unusable task: %s\n", (long long)run, err);
        goto out;
    }
    if (max_iters >= 0)
        task.max_iters = max_iters;
    c.task = &task;
    c.task_json = task_to_json(&task);
    c.device = json_incref(json_object_get(rj, "device"));
    if (store_iterations(c.store, run, &c.history) != 0) {
        fprintf(stderr, "emile: %s\n", store_errmsg(c.store));
        goto out;
    }
    store_run_set_status(c.store, run, "running", NULL);
    say(&c, "resuming run %lld at iteration %zu of %d\n", (long long)run, json_array_size(c.history), task.max_iters);
    rc = loop(&c);
out:
    json_decref(rj);
    task_free(&task);
    cook_free(&c);
    return rc;
}
