/* cli_problem.c -- a task whose reference is a PyTorch problem file: the
 * worker describes it (its oracle runs the problem; this process never
 * does), then the task's op is built from the description (task_py.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "task/task_py.h"
#include "worker/worker_client.h"

/* Describing imports torch and runs the forward a few times per varied
 * constant: a bound for a hung worker, not a performance limit. */
static double describe_timeout(const task_t *t)
{
    return 300 + 30 * t->time_limit_s;
}

int cli_problem_resolve(task_t *t, const char *worker_cmd)
{
    char err[4096];
    worker_client_t w;
    if (worker_client_open(&w, worker_cmd, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        return 1;
    }
    w.timeout_s = describe_timeout(t);
    json_t *req = task_problem_request(t);
    json_t *reply = req ? worker_client_call(&w, req, err, sizeof err) : NULL;
    json_decref(req);
    worker_client_close(&w);
    if (!reply) {
        fprintf(stderr, "emile: cannot describe %s: %s\n", t->reference_path, err);
        return 1;
    }
    int rc = 0;
    if (!json_is_true(json_object_get(reply, "ok"))) {
        const char *kind = json_string_value(json_object_get(reply, "kind"));
        const char *msg = json_string_value(json_object_get(reply, "error"));
        /* The problem file, or a missing Python/torch, is the user's to fix. */
        int bad_input = kind && (strcmp(kind, "problem") == 0 || strcmp(kind, "missing") == 0);
        fprintf(stderr, "emile: %s%s\n", bad_input ? "" : "the PyTorch oracle failed: ", msg ? msg : "?");
        rc = bad_input ? 2 : 1;
    } else if (task_from_problem(t, json_object_get(reply, "problem"), err, sizeof err) != 0 ||
               task_finalize(t, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        rc = 2;
    }
    json_decref(reply);
    return rc;
}
