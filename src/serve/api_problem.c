/* api_problem.c -- a PyTorch problem pasted into the Kitchen, checked before
 * the cook starts: the server never runs the problem itself; a worker
 * describes it (the same describe_problem step as `emile cook PROBLEM.py`,
 * its oracle in a process of its own), and the answer or the error -- with
 * the problem's line number where Python gives one -- goes back to the page.
 *
 *   POST /api/problem {"reference_source": TEXT, "backend"?, "dtype"?,
 *                      "constants"?, "reference_path"?}
 *     200 {"ok": true, "op": NAME, "builtin": bool, "dtype", "tensors": [...],
 *          "flops", "vary": [...]}
 *     400 {"error": MESSAGE, "line": N (when the message names one)}
 *     429 while another problem is being checked (one at a time: each check
 *         starts a Python process).
 * api_cook resolves a pasted problem through serve_problem_resolve. */
#include "serve_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task/task.h"
#include "task/task_py.h"
#include "worker/worker_client.h"

static pthread_mutex_t g_describing = PTHREAD_MUTEX_INITIALIZER;

/* The line number in "NAME:LINE: ..." (the problem's own), else 0. */
static int line_of(const char *msg, const char *name)
{
    const char *p = name && *name ? strstr(msg, name) : NULL;
    if (!p)
        return 0;
    p += strlen(name);
    return *p == ':' ? atoi(p + 1) : 0;
}

int serve_problem_resolve(task_t *t, char *err, size_t n, int *line, int *busy)
{
    *line = 0;
    *busy = 0;
    if (pthread_mutex_trylock(&g_describing) != 0) {
        *busy = 1;
        snprintf(err, n, "another PyTorch problem is being checked; try again in a few seconds");
        return -1;
    }
    worker_client_t w;
    json_t *reply = NULL;
    int rc = -1;
    if (worker_client_open(&w, NULL, err, n) == 0) {
        w.timeout_s = 300 + 30 * t->time_limit_s;
        json_t *req = task_problem_request(t);
        reply = req ? worker_client_call(&w, req, err, n) : NULL;
        json_decref(req);
        worker_client_close(&w);
    }
    if (reply && !json_is_true(json_object_get(reply, "ok"))) {
        const char *msg = json_string_value(json_object_get(reply, "error"));
        snprintf(err, n, "%s", msg ? msg : "the problem could not be described");
    } else if (reply && task_from_problem(t, json_object_get(reply, "problem"), err, n) == 0 &&
               task_finalize(t, err, n) == 0) {
        rc = 0;
    }
    if (rc != 0)
        *line = line_of(err, t->reference_path);
    json_decref(reply);
    pthread_mutex_unlock(&g_describing);
    return rc;
}

static enum MHD_Result refuse(request_t *r, const char *err, int line, int busy)
{
    json_t *o = json_pack("{ss}", "error", err);
    if (line > 0)
        json_object_set_new(o, "line", json_integer(line));
    return respond_json(r, busy ? 429 : 400, o);
}

enum MHD_Result api_problem(request_t *r, int64_t id)
{
    (void)id;
    enum MHD_Result ret;
    json_t *j = request_json_object(r, &ret);
    if (!j)
        return ret;
    const char *src = json_string_value(json_object_get(j, "reference_source"));
    if (!src || !*src) {
        json_decref(j);
        return respond_error(r, 400, "send the problem file's text as \"reference_source\"");
    }
    /* Only what a problem check needs; anything else is the cook's. */
    json_t *tj = json_object();
    json_object_set(tj, "reference_source", json_object_get(j, "reference_source"));
    json_object_set_new(tj, "reference_lang", json_string("py"));
    const char *keys[] = {"backend", "dtype", "constants", "reference_path", "time_limit_s", "memory_limit_mb"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_get(j, keys[i]))
            json_object_set(tj, keys[i], json_object_get(j, keys[i]));
    if (!json_object_get(tj, "reference_path"))
        json_object_set_new(tj, "reference_path", json_string("problem.py"));
    if (json_is_string(json_object_get(j, "op")))
        json_object_set(tj, "op", json_object_get(j, "op"));
    json_decref(j);
    task_t t;
    task_init(&t);
    char err[4096] = "";
    int line = 0, busy = 0;
    int rc = task_from_json(&t, tj, NULL, err, sizeof err);
    json_decref(tj);
    if (rc == 0 && !t.problem_pending) {
        snprintf(err, sizeof err, "not a PyTorch problem");
        rc = -1;
    }
    if (rc == 0)
        rc = serve_problem_resolve(&t, err, sizeof err, &line, &busy);
    if (rc != 0) {
        task_free(&t);
        return refuse(r, err, line, busy);
    }
    json_t *o = json_object(), *tensors = json_array();
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "op", json_string(t.op.name));
    json_object_set_new(o, "builtin", json_boolean(t.op.builtin));
    json_object_set_new(o, "dtype", json_string(dtype_name(t.dtype)));
    json_object_set_new(o, "flops", json_real(op_flops(&t.op, &t.params)));
    for (int k = 0; k < t.op.n_tensors; k++) {
        int64_t shape[EMILE_MAX_DIMS];
        char e2[256];
        json_t *sh = json_array();
        if (op_tensor_shape(&t.op, k, &t.params, shape, e2, sizeof e2) == 0)
            for (int d = 0; d < t.op.tensors[k].ndim; d++)
                json_array_append_new(sh, json_integer(shape[d]));
        json_array_append_new(tensors, json_pack("{sssosssb}", "name", t.op.tensors[k].name, "shape", sh, "dtype",
                                                 dtype_name(op_tensor_dtype(&t.op, k, t.dtype)), "output",
                                                 t.op.tensors[k].is_output));
    }
    json_object_set_new(o, "tensors", tensors);
    json_t *vary = json_array();
    for (int i = 0; i < t.op.n_vary; i++)
        json_array_append_new(vary, json_string(t.op.vary[i]));
    json_object_set_new(o, "vary", vary);
    task_free(&t);
    return respond_json(r, 200, o);
}
