/* cook.h -- `emile cook` and `emile resume` on a terminal: the cook
 * module's events (src/cook) drawn as lines -- one per iteration, a live
 * line of what happens now while stdout is a terminal, a summary, a table
 * for a menu -- or printed as NDJSON (--events). */
#ifndef EMILE_CLI_COOK_H
#define EMILE_CLI_COOK_H

#include <stdint.h>

#include "task/task.h"

typedef struct cli_cook_options {
    const char *store_path;        /* NULL: the default store */
    const char *const *workers;    /* --worker CMD, each time given */
    int n_workers;
    int per_worker;                /* --workers N */
    int confirm_rounds;            /* --confirm N; < 0: the default */
    double worker_timeout_s;       /* --worker-timeout S; 0: from the task */
    int events;                    /* NDJSON on stdout, lines on stderr */
    int quiet;                     /* no lines */
} cli_cook_options_t;

/* Cook tasks[0..n) (n > 1: a menu on one pool).  The exit status. */
int cli_cook_start(task_t *const *tasks, int n, const cli_cook_options_t *o);
/* Continue run `run` (max_iters >= 0: its new budget).  The exit status. */
int cli_cook_resume(int64_t run, int max_iters, const cli_cook_options_t *o);

#endif
