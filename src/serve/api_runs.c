/* api_runs.c -- reading runs from the store: the list, one run with its
 * iterations, its roofline (SVG), its export and its best kernel. */
#include "serve_internal.h"
#include "report/roofline_svg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Store calls share one connection; SQLite serialises, the handle's error
 * message does not, hence the lock around call + message. */
#define STORE_LOCKED(s, stmt)                     \
    do {                                          \
        pthread_mutex_lock(&(s)->store_mu);       \
        stmt;                                     \
        pthread_mutex_unlock(&(s)->store_mu);     \
    } while (0)

/* A failed store read: 404 for a run that is not there, 500 otherwise. */
static enum MHD_Result store_failure(request_t *r, const char *msg)
{
    if (strncmp(msg, "no run ", 7) == 0)
        return respond_error(r, 404, "%s", msg);
    return respond_error(r, 500, "run store: %s", msg);
}

/* Read run `id` and, when iters is non-NULL, its iterations.  On failure
 * the response is queued and -1 returned with *ret set. */
static int load_run(request_t *r, int64_t id, json_t **run, json_t **iters,
                    enum MHD_Result *ret)
{
    serve_t *s = r->s;
    char msg[512] = "";
    int rc;
    *run = NULL;
    if (iters)
        *iters = NULL;
    pthread_mutex_lock(&s->store_mu);
    rc = store_run_get(s->store, id, run);
    if (rc == 0 && iters)
        rc = store_iterations(s->store, id, iters);
    if (rc != 0)
        snprintf(msg, sizeof msg, "%s", store_errmsg(s->store));
    pthread_mutex_unlock(&s->store_mu);
    if (rc != 0) {
        json_decref(*run);
        *run = NULL;
        *ret = store_failure(r, msg);
        return -1;
    }
    return 0;
}

enum MHD_Result api_runs_list(request_t *r, int64_t id)
{
    serve_t *s = r->s;
    const char *ls = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    int limit = ls ? atoi(ls) : 200;
    if (limit <= 0 || limit > 10000)
        limit = 200;
    json_t *runs = NULL;
    char msg[512] = "";
    int rc;
    pthread_mutex_lock(&s->store_mu);
    rc = store_runs_list(s->store, limit, &runs);
    if (rc != 0)
        snprintf(msg, sizeof msg, "%s", store_errmsg(s->store));
    pthread_mutex_unlock(&s->store_mu);
    if (rc != 0)
        return respond_error(r, 500, "run store: %s", msg);
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run) {
        /* The list shows names and numbers; the reference's text can be
         * large and is fetched with the run itself. */
        json_object_del(json_object_get(run, "task"), "reference_source");
        json_t *job = cookq_job_for_run(s->queue, json_integer_value(json_object_get(run, "id")));
        json_object_set_new(run, "job", job ? job : json_null());
    }
    json_t *o = json_object();
    json_object_set_new(o, "runs", runs);
    return respond_json(r, 200, o);
}

enum MHD_Result api_run_get(request_t *r, int64_t id)
{
    json_t *run, *iters;
    enum MHD_Result ret;
    if (load_run(r, id, &run, &iters, &ret) != 0)
        return ret;
    json_t *job = cookq_job_for_run(r->s->queue, id);
    json_t *o = json_object();
    json_object_set_new(o, "run", run);
    json_object_set_new(o, "iterations", iters);
    json_object_set_new(o, "job", job ? job : json_null());
    return respond_json(r, 200, o);
}

static int run_best_iter(const json_t *run)
{
    json_t *b = json_object_get(run, "best_iter");
    return json_is_integer(b) ? (int)json_integer_value(b) : -1;
}

enum MHD_Result api_run_svg(request_t *r, int64_t id)
{
    json_t *run, *iters;
    enum MHD_Result ret;
    if (load_run(r, id, &run, &iters, &ret) != 0)
        return ret;
    const char *dtype = json_string_value(json_object_get(json_object_get(run, "task"), "dtype"));
    char err[256] = "";
    char *svg = roofline_svg(json_object_get(run, "device"), iters, run_best_iter(run), dtype,
                             err, sizeof err);
    json_decref(run);
    json_decref(iters);
    if (!svg)
        return respond_error(r, 500, "roofline: %s", err);
    char name[64];
    const char *dl = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "download");
    snprintf(name, sizeof name, "emile-run-%" PRId64 "-roofline.svg", id);
    ret = respond_bytes(r, 200, "image/svg+xml", svg, strlen(svg), dl ? name : NULL);
    free(svg);
    return ret;
}

enum MHD_Result api_run_export(request_t *r, int64_t id)
{
    serve_t *s = r->s;
    json_t *run, *iters, *msgs = NULL;
    enum MHD_Result ret;
    if (load_run(r, id, &run, &iters, &ret) != 0)
        return ret;
    int rc;
    STORE_LOCKED(s, rc = store_messages(s->store, id, &msgs));
    json_t *o = json_object();
    json_object_set_new(o, "run", run);
    json_object_set_new(o, "iterations", iters);
    json_object_set_new(o, "messages", rc == 0 && msgs ? msgs : json_array());
    char *text = json_dumps(o, JSON_INDENT(1));
    json_decref(o);
    if (!text)
        return respond_error(r, 500, "out of memory");
    char name[64];
    snprintf(name, sizeof name, "emile-run-%" PRId64 ".json", id);
    ret = respond_bytes(r, 200, "application/json", text, strlen(text), name);
    free(text);
    return ret;
}

enum MHD_Result api_run_best(request_t *r, int64_t id)
{
    serve_t *s = r->s;
    json_t *run, *it = NULL;
    enum MHD_Result ret;
    if (load_run(r, id, &run, NULL, &ret) != 0)
        return ret;
    int best = run_best_iter(run);
    json_decref(run);
    if (best < 0)
        return respond_error(r, 404, "run %" PRId64 " has no valid kernel yet", id);
    int rc;
    STORE_LOCKED(s, rc = store_iteration_get(s->store, id, best, &it));
    const char *src = json_string_value(json_object_get(it, "source"));
    if (rc != 0 || !src) {
        json_decref(it);
        return respond_error(r, 404, "run %" PRId64 " iteration %d has no source", id, best);
    }
    const char *lang = json_string_value(json_object_get(it, "lang"));
    char name[64];
    snprintf(name, sizeof name, "emile-run-%" PRId64 "-best.%s", id,
             lang && strcmp(lang, "cu") == 0 ? "cu" : "c");
    /* text/plain and nosniff: a kernel holding "<script>" stays text. */
    ret = respond_bytes(r, 200, "text/plain; charset=utf-8", src, strlen(src), name);
    json_decref(it);
    return ret;
}
