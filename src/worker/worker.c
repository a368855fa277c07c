/* worker.c -- see worker.h.  A malformed request gets {"ok":false,...} and
 * the worker goes on; nothing a request says can stop it but end of input. */
#include "worker.h"

#include <jansson.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/lang.h"
#include "evaluate.h"
#include "worker/reference_python.h"

static json_t *error_reply(json_t *id, const char *msg)
{
    json_t *r = json_object();
    if (id)
        json_object_set(r, "id", id);
    json_object_set_new(r, "ok", json_false());
    json_object_set_new(r, "error", json_string(msg));
    return r;
}

/* Progress events of the request being answered: one line each on the
 * worker's output, before the reply, carrying the request's id (only for
 * requests that ask, with "progress": true). */
typedef struct progress_sink {
    FILE *out;
    json_t *id;
} progress_sink_t;

static void write_progress(const json_t *event, void *user)
{
    progress_sink_t *p = user;
    json_t *ev = json_deep_copy(event);
    if (!ev)
        return;
    if (p->id)
        json_object_set(ev, "id", p->id);
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (text) {
        fprintf(p->out, "%s\n", text);
        fflush(p->out);
        free(text);
    }
}

static json_t *handle(worker_ctx_t *w, const json_t *req, FILE *out)
{
    json_t *id = json_object_get(req, "id");
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_t *reply;
    if (!cmd)
        return error_reply(id, "request has no \"cmd\"");
    if (strcmp(cmd, "hello") == 0) {
        reply = json_object();
        json_object_set_new(reply, "ok", json_true());
        json_object_set_new(reply, "protocol", json_integer(WORKER_PROTOCOL));
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        json_object_set_new(reply, "host", json_string(host));
        json_t *avail = json_array();
        for (const backend_t *const *b = backend_all(); *b; b++) {
            char why[256];
            if ((*b)->available(why, sizeof why) == 0)
                json_array_append_new(avail, json_string((*b)->name));
        }
        json_object_set_new(reply, "backends", avail);
    } else if (strcmp(cmd, "devices") == 0) {
        reply = worker_devices(w, json_string_value(json_object_get(req, "backend")),
                               json_is_true(json_object_get(req, "remeasure")));
    } else if (strcmp(cmd, "evaluate") == 0) {
        const json_t *task = json_object_get(req, "task");
        const char *src = json_string_value(json_object_get(json_object_get(req, "kernel"), "source"));
        if (!json_is_object(task) || !src)
            return error_reply(id, "evaluate needs \"task\" (object) and \"kernel\": {\"source\": ...}");
        /* "kernel": {"lang": ...} names the source's language when it is not
         * the task's (a cook's iteration 0, the reference, in CUDA C on a
         * Triton task); the task's "lang" is the candidates'. */
        const char *lang = json_string_value(json_object_get(json_object_get(req, "kernel"), "lang"));
        /* A PyTorch problem's reference comes without one (the cook asks
         * task_reference_kernel_lang): the oracle answers for it. */
        json_t *as = lang && lang_find(lang) ? json_deep_copy(task) : NULL;
        if (as)
            json_object_set_new(as, "lang", json_string(lang));
        progress_sink_t sink = {out, id};
        worker_ctx_set_progress(w, json_is_true(json_object_get(req, "progress")) ? write_progress : NULL, &sink);
        json_t *options = json_deep_copy(json_object_get(req, "options"));
        if (!options)
            options = json_object();
        /* How compile errors name the source: the request's display name. */
        const char *name = json_string_value(json_object_get(json_object_get(req, "kernel"), "source_name"));
        if (name && !json_object_get(options, "source_name"))
            json_object_set_new(options, "source_name", json_string(name));
        reply = worker_evaluate(w, as ? as : task, src, options);
        json_decref(options);
        json_decref(as);
        worker_ctx_set_progress(w, NULL, NULL);
    } else if (strcmp(cmd, "describe_problem") == 0) {
        reply = reference_python_describe(req);
    } else {
        return error_reply(id, "unknown cmd (hello, devices, evaluate, describe_problem)");
    }
    if (id)
        json_object_set(reply, "id", id);
    return reply;
}

int worker_serve(FILE *in, FILE *out)
{
    char err[512];
    /* A dying runner must not take us with it through a broken socket. */
    signal(SIGPIPE, SIG_IGN);
    /* Ctrl-C is the cook's to handle (it stops after the current
     * candidate); the worker ends when its input ends. */
    signal(SIGINT, SIG_IGN);
    /* Our memory holds every expected output: no process of the same user
     * (a candidate, when we are not root) may read /proc/PID/mem. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    worker_ctx_t *w = worker_ctx_new(err, sizeof err);
    if (!w) {
        fprintf(stderr, "emile worker: %s\n", err);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, in)) >= 0) {
        if (len == 0 || line[0] == '\n')
            continue;
        json_error_t je;
        json_t *req = json_loads(line, 0, &je);
        json_t *reply;
        if (!req || !json_is_object(req)) {
            char msg[300];
            snprintf(msg, sizeof msg, "request is not a JSON object: %s", req ? "not an object" : je.text);
            reply = error_reply(NULL, msg);
        } else {
            reply = handle(w, req, out);
        }
        json_decref(req);
        char *text = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        fprintf(out, "%s\n", text ? text : "{\"ok\":false,\"error\":\"out of memory\"}");
        fflush(out);
        free(text);
    }
    free(line);
    worker_ctx_free(w);
    return 0;
}
