/* api_cook.c -- starting, stopping and resuming cooks, and the queue. */
#include "serve_internal.h"
#include "backend/backend.h"
#include "task/task.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* name in lower case, malloc'd (NULL when out of memory). */
static char *lower_dup(const char *name)
{
    char *low = strdup(name);
    for (char *p = low; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return low;
}

/* 1 when a config field name looks like a credential (or out of memory:
 * refusing is the safe answer).  Keys live in the server's environment; a
 * page must never send one (it would be stored with the run and shown
 * back).  "max_tokens" is a count, not a token. */
int serve_looks_secret(const char *name)
{
    char *low = lower_dup(name);
    if (!low)
        return 1;
    static const char *const anywhere[] = {"secret", "password", "passwd", "authorization",
                                           "api_key", "apikey", "credential", "private"};
    int hit = 0;
    for (size_t w = 0; w < sizeof anywhere / sizeof anywhere[0]; w++)
        hit |= strstr(low, anywhere[w]) != NULL;
    hit |= strcmp(low, "key") == 0 || ends_with(low, "_key") || strcmp(low, "token") == 0 ||
           ends_with(low, "_token") || strcmp(low, "bearer") == 0;
    free(low);
    return hit;
}

/* The page's agent_config, checked before anything of it reaches the CLI
 * (which honours every key of a task file: the user's own machine).  The
 * server's environment holds its API keys, so a page may not pick
 *   - a variable to read the key from ("api_key_env", any "*_env"): any
 *     of the server's variables would be sent as the key;
 *   - where the key is sent ("base_url"), unless the server was started
 *     with --llm-base-url and the page sends exactly such a URL;
 *   - anything named like a credential.
 * 0 when the config may go on; otherwise -1 with the 400's words in msg. */
static int check_agent_config(const serve_t *s, json_t *cfg, char *msg, size_t n)
{
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v) {
        char *low = lower_dup(k);
        int env = !low || ends_with(low, "_env") || strcmp(low, "env") == 0;
        int url = low && strcmp(low, "base_url") == 0;
        free(low);
        if (env) {
            snprintf(msg, n, "\"agent_config\" may not hold \"%.100s\": it names a variable of "
                             "the server's environment, whose value would be sent as the API "
                             "key; the server reads each agent's own (ANTHROPIC_API_KEY, "
                             "OPENAI_API_KEY)", k);
            return -1;
        }
        if (serve_looks_secret(k)) {
            snprintf(msg, n, "\"agent_config\" may not hold \"%.100s\": API keys are read "
                             "from the server's environment", k);
            return -1;
        }
        if (!url || json_is_null(v))
            continue;
        if (s->n_llm_base_urls == 0) {
            snprintf(msg, n, "\"agent_config\" may not hold \"%.100s\": this server sends its "
                             "API keys only to the agents' own endpoints (start it with "
                             "--llm-base-url URL to let the page use URL)", k);
            return -1;
        }
        const char *val = json_string_value(v);
        int allowed = 0;
        for (size_t i = 0; val && i < s->n_llm_base_urls; i++)
            allowed |= strcmp(val, s->llm_base_urls[i]) == 0;
        if (allowed)
            continue;
        size_t off = (size_t)snprintf(msg, n, "\"agent_config.%.100s\" must be left out or be "
                                              "exactly %s this server was started with "
                                              "(--llm-base-url):", k,
                                      s->n_llm_base_urls > 1 ? "one of the URLs" : "the URL");
        for (size_t i = 0; i < s->n_llm_base_urls && off < n; i++)
            off += (size_t)snprintf(msg + off, n - off, "%s %s", i ? "," : "",
                                    s->llm_base_urls[i]);
        return -1;
    }
    return 0;
}

static enum MHD_Result queue_refusal(request_t *r, int rc, const char *err)
{
    switch (rc) {
    case COOKQ_FULL: return respond_error(r, 429, "%s", err);
    case COOKQ_BUSY: return respond_error(r, 409, "%s", err);
    default: return respond_error(r, 503, "%s", err);
    }
}

enum MHD_Result api_cook(request_t *r, int64_t id)
{
    enum MHD_Result ret;
    json_t *j = request_json_object(r, &ret);
    if (!j)
        return ret;
    if (json_object_get(j, "reference")) {
        json_decref(j);
        return respond_error(r, 400, "send the reference kernel's text as \"reference_source\"; "
                                     "the server does not read paths for the page");
    }
    if (!json_is_string(json_object_get(j, "reference_source"))) {
        json_decref(j);
        return respond_error(r, 400, "the task needs \"reference_source\", the reference "
                                     "kernel's text");
    }
    char msg[1024];
    if (check_agent_config(r->s, json_object_get(j, "agent_config"), msg, sizeof msg) != 0) {
        json_decref(j);
        return respond_error(r, 400, "%s", msg);
    }
    task_t t;
    task_init(&t);
    char err[512] = "";
    int rc = task_from_json(&t, j, NULL, err, sizeof err);
    json_decref(j);
    /* A pasted PyTorch problem: described by a worker first (api_problem.c). */
    if (rc == 0 && t.problem_pending) {
        char perr[4096];
        int line = 0, busy = 0;
        if (serve_problem_resolve(&t, perr, sizeof perr, &line, &busy) != 0) {
            task_free(&t);
            json_t *o = json_pack("{ss}", "error", perr);
            if (line > 0)
                json_object_set_new(o, "line", json_integer(line));
            return respond_json(r, busy ? 429 : 400, o);
        }
    } else if (rc == 0) {
        rc = task_finalize(&t, err, sizeof err);
    }
    if (rc != 0) {
        task_free(&t);
        return respond_error(r, 400, "bad task: %s", err[0] ? err : "invalid");
    }
    json_t *canon = task_to_json(&t);
    task_free(&t);
    if (!canon)
        return respond_error(r, 500, "out of memory");
    json_t *reply = NULL;
    rc = cookq_submit_cook(r->s->queue, canon, &reply, err, sizeof err);
    json_decref(canon);
    if (rc != COOKQ_OK)
        return queue_refusal(r, rc, err);
    return respond_json(r, 202, reply);
}

enum MHD_Result api_run_stop(request_t *r, int64_t id)
{
    json_t *reply;
    if (cookq_stop_run(r->s->queue, id, &reply) != COOKQ_OK)
        return respond_error(r, 409, "run %" PRId64 " is not cooking in this server", id);
    return respond_json(r, 202, reply);
}

enum MHD_Result api_run_resume(request_t *r, int64_t id)
{
    serve_t *s = r->s;
    json_t *run = NULL;
    char msg[512] = "";
    pthread_mutex_lock(&s->store_mu);
    int rc = store_run_get(s->store, id, &run);
    if (rc != 0)
        snprintf(msg, sizeof msg, "%s", store_errmsg(s->store));
    pthread_mutex_unlock(&s->store_mu);
    if (rc != 0)
        return respond_error(r, strncmp(msg, "no run ", 7) == 0 ? 404 : 500, "%s", msg);
    /* Whether a run can go on (stopped, failed, out of budget) is the
     * CLI's call; its answer comes back as the job's "done" event. */
    const char *backend = json_string_value(json_object_get(run, "backend"));
    char b[16];
    snprintf(b, sizeof b, "%s", backend ? backend : backend_default()->name);
    json_decref(run);
    json_t *reply = NULL;
    char err[512] = "";
    rc = cookq_submit_resume(s->queue, id, b, &reply, err, sizeof err);
    if (rc != COOKQ_OK)
        return queue_refusal(r, rc, err);
    return respond_json(r, 202, reply);
}

enum MHD_Result api_jobs(request_t *r, int64_t id)
{
    json_t *o = json_object();
    json_object_set_new(o, "jobs", cookq_jobs(r->s->queue));
    return respond_json(r, 200, o);
}

enum MHD_Result api_job_stop(request_t *r, int64_t id)
{
    json_t *reply;
    if (cookq_stop_job(r->s->queue, id, &reply) != COOKQ_OK)
        return respond_error(r, 404, "no active job %" PRId64, id);
    return respond_json(r, 202, reply);
}
