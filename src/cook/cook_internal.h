/*
 * cook_internal.h -- what the files of src/cook share: the cook (pool,
 * store, events) and one run's state.
 */
#ifndef EMILE_COOK_INTERNAL_H
#define EMILE_COOK_INTERNAL_H

#include <pthread.h>

#include "agent/agent.h"
#include "cook/cook.h"
#include "cook/pool.h"

typedef struct cook_run {
    struct cook *c;
    task_t *task;              /* the caller's (new runs) or own_task (resume) */
    task_t own_task;
    int owns_task;
    json_t *task_json;         /* canonical, as stored */
    json_t *history;           /* recorded iterations, by number */
    int64_t run;
    int best_iter;             /* -1: none valid */
    double ref_ms;             /* the reference's time (iteration 0) */
    const agent_ops_t *ops;
    agent_t *agent;            /* NULL when no iteration is left to propose */
    double timeout_s;          /* per evaluation */
    int resumed_at;            /* -1: a new run */
    char status[16];           /* "done", "stopped", "failed" once it ended */
    char note[2400];
    int rc;                    /* COOK_OK or COOK_FAILED */
    pthread_t thread;
    int threaded;              /* thread runs its loop */
} cook_run_t;

struct cook {
    cook_config_t cfg;
    int confirm_rounds;
    char backend[16];
    pool_t *pool;
    json_t *device;
    store_t *store;
    pthread_mutex_t store_mu;  /* one connection, several runs' threads */
    pthread_mutex_t event_mu;  /* events go out one at a time */
    cook_run_t *runs;
    int n_runs;
};

/* Send ev (stolen) to the caller's callback, serialised. */
void cook_emit(struct cook *c, cook_event_kind_t kind, json_t *ev);
/* A "progress" event of the cook's own (iter or worker < 0: absent;
 * n <= 0: no k of n). */
void cook_progress(struct cook *c, int64_t run, int iter, int worker, const char *phase,
                   const char *detail, int k, int n);

/* Run r's loop to its end: sets r->status, r->note, r->rc and records
 * them; emits "run", iterations and "done". */
void cook_loop(cook_run_t *r);

/* ---- iteration.c --------------------------------------------------------- */

/* The iteration object (store.h) of a worker's evaluate reply, with
 * "validated" (the outputs passed every check; an "invalid" iteration may
 * have been rejected for its timing alone) when the reply says. */
json_t *cook_iteration(int iter, const char *label, const char *reason, const char *source,
                       const char *lang, const json_t *params, const json_t *reply,
                       double elapsed_s, double ref_ms);
/* A proposal that could not be evaluated (its worker lost twice): an
 * iteration with status "error" and the reason. */
json_t *cook_iteration_failed(int iter, const char *label, const char *reason, const char *source,
                              const char *lang, const json_t *params, const char *why,
                              double elapsed_s);
/* Words for where a compile error's log is kept: "... (the compiler's
 * log: emile show RUN --iter N)" in place of a log file the worker has
 * since deleted. */
void cook_iteration_log_words(json_t *it, int64_t run);
int cook_iteration_valid(const json_t *it);
double cook_num(const json_t *o, const char *key);

/* ---- remeasure.c --------------------------------------------------------- */

/* Why a result must be measured again before it counts, or NULL: valid
 * and tagged noisy_timing, or faster than the incumbent's time. */
const char *cook_remeasure_why(const json_t *reply, double incumbent_ms);

typedef struct remeasure {
    int index;                 /* the batch entry */
    int iter;                  /* its iteration number */
    const char *why;
    const char *source;        /* the candidate's */
    int slot;                  /* where it was measured: the re-measures go there too */
    json_t *reply;             /* its first reply (borrowed) */
    /* out */
    json_t *samples;           /* the candidate's times, the first included */
    json_t *incumbent;         /* the incumbent's fresh times */
    json_t *failed;            /* a re-measure that failed validation, crashed or
                                  timed out (its reply), or NULL */
    json_t *rejected;          /* re-measures whose outputs were right but whose
                                  timing the worker rejected (their errors) */
    int measured;              /* the candidate's measurements, the first included */
    char error[600];           /* a re-measure that got no answer */
} remeasure_t;

/* Measure each of rm[0..n) again, rounds times, alternating with the
 * incumbent (iteration incumbent_iter of r's history) on the slot that
 * measured it. */
void cook_remeasure(cook_run_t *r, remeasure_t *rm, int n, int rounds, int incumbent_iter);
/* Fold a re-measure into the candidate's iteration: time_ms the median of
 * the samples (gflops, roofline_pct and speedup with it), "remeasure"
 * with both series.  A re-measure that failed validation, crashed or timed
 * out makes the iteration invalid: a kernel wrong one run in a few is not
 * one to build on.  A re-measure whose outputs were right but whose timing
 * the worker rejected (a held-back set much slower than the median, say)
 * is itself a timing figure, and one noisy figure decides nothing: the
 * iteration is invalid only when most of its measurements were rejected. */
void cook_remeasure_apply(json_t *it, const remeasure_t *rm, int incumbent_iter,
                          double incumbent_ms, double ref_ms);
void cook_remeasure_free(remeasure_t *rm);
double cook_median(const json_t *numbers);

#endif
