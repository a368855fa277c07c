/*
 * cook.h -- the cook loop: the reference as iteration 0, then agent
 * proposals -> the worker pool -> the store, until the target share of the
 * roofline is reached, the budget is spent, the agent has nothing left, or
 * a stop is asked for (the candidates in flight finish first).
 *
 * The loop prints nothing: what happens is told to the caller's event
 * callback (cook_event.h) -- the terminal front end (src/cli) draws lines
 * from it, `--events` prints it as NDJSON, the web server relays it.
 *
 * Parallel evaluation: an agent that can propose a batch (agent_ops_t's
 * "batch") is asked for as many candidates as the pool has workers, and
 * the pool evaluates them at once; the others propose one at a time.
 * Iterations are numbered in the order proposed and recorded in that
 * order, so a run killed at any instant holds iterations 0..k with no gap
 * and `resume` goes on from k+1.
 *
 * One noisy measurement does not decide a run: a valid candidate tagged
 * noisy_timing, or one that beats the incumbent (the best so far), is
 * measured again, alternating with the incumbent on the same worker
 * (confirm_rounds times each), before it is recorded: its time is then the
 * median of all its measurements, and the incumbent's fresh figures are
 * kept beside it ("remeasure").  So the agent builds on, and the run ends
 * with, a confirmed figure.
 *
 * A menu is several tasks cooked at once on one pool (each its own run,
 * each its own agent), one thread per run.
 */
#ifndef EMILE_COOK_H
#define EMILE_COOK_H

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "cook/cook_event.h"
#include "store/store.h"
#include "task/task.h"

/* What a cook call returns: the process exit status of `emile cook`. */
enum {
    COOK_OK = 0,         /* every run ended done or stopped */
    COOK_FAILED = 1,     /* a run failed (its note says why), or no worker */
    COOK_BAD_INPUT = 2   /* refused before any run was created: err says why */
};

#define COOK_CONFIRM_DEFAULT 2

typedef struct cook_config {
    const char *const *workers;   /* worker command templates (none: this binary's) */
    int n_workers;
    int per_worker;               /* workers per template (--workers N); 0: 1 */
    int confirm_rounds;           /* re-measurements of a new best or a noisy result,
                                     each beside the incumbent; < 0: the default */
    double worker_timeout_s;      /* per evaluation; 0: from the task's limits */
    double start_timeout_s;       /* a new worker's first answer; 0: the default */
    cook_event_fn on_event;       /* every event (may be NULL) */
    void *event_ctx;
    volatile sig_atomic_t *stop;  /* set: stop once the candidates in flight are in */
} cook_config_t;

typedef struct cook cook_t;

/* Everything a new cook of tasks[0..n) needs before anything is written:
 * the agents (a missing API key is found here), one backend for all, the
 * pool's workers and their device, the tasks fitting it.  Then
 * cook_run_new creates the runs.  NULL with *status (COOK_BAD_INPUT or
 * COOK_FAILED) and err.  tasks stay the caller's and must outlive c; an
 * empty name is given one ("attention b1 s256 hq4 hkv2 d32 causal f32"). */
cook_t *cook_prepare(task_t *const *tasks, int n_tasks, const cook_config_t *cfg, int *status,
                     char *err, size_t n);
/* Create a run per task in store, cook them all, then close c's pool.
 * Returns COOK_OK or COOK_FAILED (err: the first failure). */
int cook_run_new(cook_t *c, store_t *store, char *err, size_t n);
void cook_free(cook_t *c);

/* Continue run `run` of store (optionally with a new budget, >= 0).
 * COOK_OK, COOK_FAILED or COOK_BAD_INPUT with err. */
int cook_resume(store_t *store, int64_t run, int max_iters, const cook_config_t *cfg, char *err,
                size_t n);

/* The device object of backend, from one worker (worker_cmd NULL: this
 * binary's); NULL with err naming whose failure it is (the worker's, or
 * the backend's). */
json_t *cook_fetch_device(const char *worker_cmd, const char *backend, char *err, size_t n);

/* A name for a task that has none: the op and its parameters. */
void cook_task_name(const task_t *t, char *buf, size_t n);

#endif
