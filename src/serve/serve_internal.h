/*
 * serve_internal.h -- what the files of src/serve/ share: the server, one
 * request, the route handlers and the response helpers.  Not for use
 * outside src/serve/ (the public face is serve.h).
 */
#ifndef EMILE_SERVE_INTERNAL_H
#define EMILE_SERVE_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "cook_queue.h"
#include "events.h"
#include "serve.h"
#include "store/store.h"

struct serve {
    char *host, *store_path, *emile_path, *examples_dir;
    char token[128];             /* "" when none is required */
    int port;
    int quiet;
    size_t max_body;
    double stop_grace_s;
    double taste_timeout_s;
    struct MHD_Daemon *daemon;
    struct conn_table *conns;    /* the open connections and their limits */
    unsigned idle_timeout_s;     /* an idle connection is closed after this */
    store_t *store;              /* shared by request threads, under store_mu */
    pthread_mutex_t store_mu;
    event_hub_t *hub;
    cook_queue_t *queue;
    char *model_dir;             /* the Tasting Room's checkpoint, or NULL */
    char **llm_base_urls;        /* base_url values a page may send (--llm-base-url) */
    size_t n_llm_base_urls;
    pthread_mutex_t taste_mu;    /* guards the four below */
    int engine_state;            /* 0 unknown, 1 `emile taste` answers, -1 not */
    int tasting;                 /* a tasting is running (one at a time) */
    pid_t taste_pid;             /* its child, to end at shutdown */
};

/* One HTTP request, from its headers to its response. */
typedef struct request {
    serve_t *s;
    struct MHD_Connection *conn;
    const char *method, *url;
    char *body;                  /* NUL-terminated once complete */
    size_t len, cap;
    int too_large;
} request_t;

typedef enum MHD_Result (*route_fn)(request_t *r, int64_t id);

/* Route r (method + url) to its handler; 404/405 when none. */
enum MHD_Result routes_dispatch(request_t *r);

/* ---- responses (respond.c): every one carries the security headers ---- */

/* Send body (stolen, may be NULL for an empty object) as JSON. */
enum MHD_Result respond_json(request_t *r, unsigned status, json_t *body);
/* {"error": message} with the given 4xx/5xx status. */
enum MHD_Result respond_error(request_t *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Bytes with a content type; copied.  attachment: a file name to offer
 * as a download (Content-Disposition), or NULL. */
enum MHD_Result respond_bytes(request_t *r, unsigned status, const char *type,
                              const void *data, size_t len, const char *attachment);
/* The security headers every response gets (exposed for the SSE stream). */
void respond_add_headers(struct MHD_Response *resp, const char *type);

/* ---- the body as JSON ---- */

/* Parse r->body as a JSON object; on failure respond 400 and return NULL
 * with *sent set to the MHD result to return. */
json_t *request_json_object(request_t *r, enum MHD_Result *sent);

/* ---- handlers ---- */

/* api_runs.c */
enum MHD_Result api_runs_list(request_t *r, int64_t id);
enum MHD_Result api_run_get(request_t *r, int64_t id);
enum MHD_Result api_run_svg(request_t *r, int64_t id);
enum MHD_Result api_run_export(request_t *r, int64_t id);
enum MHD_Result api_run_best(request_t *r, int64_t id);
/* api_cook.c */
/* 1 when an agent_config field name looks like a credential. */
int serve_looks_secret(const char *name);
enum MHD_Result api_cook(request_t *r, int64_t id);
enum MHD_Result api_run_stop(request_t *r, int64_t id);
enum MHD_Result api_run_resume(request_t *r, int64_t id);
enum MHD_Result api_jobs(request_t *r, int64_t id);
enum MHD_Result api_job_stop(request_t *r, int64_t id);
/* api_problem.c: a pasted PyTorch problem, described by a worker */
enum MHD_Result api_problem(request_t *r, int64_t id);
struct task;
/* Describe t's pending problem and build its op (task_py.h); 0, or -1 with
 * err, *line (the problem's line, 0 when none is named) and *busy (another
 * check is running). */
int serve_problem_resolve(struct task *t, char *err, size_t n, int *line, int *busy);
/* api_info.c */
enum MHD_Result api_examples(request_t *r, int64_t id);
enum MHD_Result api_ops(request_t *r, int64_t id);
enum MHD_Result api_backends(request_t *r, int64_t id);
enum MHD_Result api_health(request_t *r, int64_t id);
/* api_taste.c */
enum MHD_Result api_taste(request_t *r, int64_t id);
enum MHD_Result api_taste_run(request_t *r, int64_t id);
/* End a running tasting's child (shutdown). */
void serve_taste_stop(serve_t *s);
/* api_events.c */
enum MHD_Result api_events(request_t *r, int64_t id);
/* static_assets.c */
enum MHD_Result serve_asset(request_t *r, const char *path);

#endif
