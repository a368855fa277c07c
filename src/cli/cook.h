/* cook.h -- the cook loop: reference as iteration 0, then agent proposal ->
 * worker evaluation -> store, until the target share of the roofline is
 * reached, the budget is spent, the agent has nothing left, or a stop is
 * requested (SIGINT/SIGTERM: the current candidate finishes first). */
#ifndef EMILE_COOK_H
#define EMILE_COOK_H

#include <stdint.h>

#include "task/task.h"

typedef struct cook_options {
    const char *store_path;    /* NULL: the default (store_default_location) */
    const char *worker_cmd;    /* NULL: this binary's worker */
    int events;                /* NDJSON events on stdout instead of lines */
    int quiet;
} cook_options_t;

/* The device object of backend from the worker; NULL with err. */
#include <jansson.h>
json_t *cook_fetch_device(const cook_options_t *o, const char *backend, char *err, size_t n);

/* Start a new run for task.  Returns the process exit status. */
int cook_start(task_t *task, const cook_options_t *o);
/* Continue run `run` (optionally with a new iteration budget, >= 0). */
int cook_resume(int64_t run, int max_iters, const cook_options_t *o);

#endif
