/*
 * pool.h -- the worker pool: N workers (worker_client.h), from one or more
 * command templates, each driven by its own thread, sharing one queue of
 * evaluate requests.  A cook hands it a batch of jobs and waits until every
 * one has an answer.
 *
 * Faults cost a worker, never the run: a worker that dies, hangs past the
 * job's timeout or answers garbage (a reply that is not a reply) is stopped
 * and started again, and its job is tried once more on another worker (on
 * the same slot when the job is pinned to it); a job that loses its worker
 * twice fails, with both reasons.  A slot whose worker cannot start three
 * times running is down for good; jobs pinned to it fail, the others go to
 * the slots left.  Only when every slot is down does a job fail for want of
 * a worker.
 *
 * Every worker must report the same device as the first one (timing
 * figures of different devices do not compare): one that does not is
 * refused, with both names.
 */
#ifndef EMILE_COOK_POOL_H
#define EMILE_COOK_POOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "cook/cook_event.h"

typedef struct pool pool_t;
typedef struct pool_batch pool_batch_t;

typedef struct pool_job {
    /* In. */
    const json_t *request;     /* the request (borrowed; each attempt sends a copy) */
    int pin;                   /* -1: any slot; else only this slot */
    double timeout_s;          /* per attempt; 0: wait as long as it takes */
    int64_t run;               /* for events: the run (0: none) */
    int iter;                  /* and the iteration (-1: none) */
    const char *phase;         /* the "progress" phase when a worker takes it */
    char detail[160];          /* its words */
    /* Out. */
    json_t *reply;             /* a well-formed reply (new reference), or NULL */
    char error[1200];          /* reply NULL: why */
    int slot;                  /* the slot that answered (-1: none) */
    json_t *lost;              /* failed attempts [{"worker","cmd","error"}], or NULL */
    /* The pool's. */
    int tries, avoid, state;
    pool_batch_t *batch;
    struct pool_job *next;
} pool_job_t;

typedef struct pool_options {
    const char *const *templates; /* worker command templates; none: this binary's worker */
    int n_templates;
    int per_template;          /* workers per template (>= 1); "{i}" in a template
                                  is replaced by the copy's index 0..n-1 */
    const char *backend;       /* the device every worker must have */
    double start_timeout_s;    /* a new worker's first answer; 0: the devices default */
    int max_tries;             /* attempts per job; 0: 2 */
    cook_event_fn on_event;    /* "worker" and "progress" events (may be NULL); called
                                  from the slots' threads, serialised by the caller */
    void *ctx;
} pool_options_t;

/* Start every worker and learn their device.  Waits until each slot's
 * worker answered or failed once.  NULL with err when none could start
 * (err: the first slot's reason) -- then *device is NULL.  *device: the
 * device object of the first worker up (new reference). */
pool_t *pool_open(const pool_options_t *o, json_t **device, char *err, size_t n);

/* Slots, and slots whose worker is up now. */
int pool_size(const pool_t *p);
int pool_alive(pool_t *p);

/* The command of slot i, for messages ("srun ... emile worker"). */
const char *pool_slot_cmd(const pool_t *p, int slot);

/* Run every job to its answer (reply, or error after the retries); done
 * (may be NULL) is called once per job as it finishes, from the thread
 * that ran it.  Several threads may run batches at once: the jobs share
 * the slots in the order they came. */
void pool_run(pool_t *p, pool_job_t *jobs, size_t n, void (*done)(void *ctx, pool_job_t *job),
              void *ctx);

/* Clear a job's outputs (NULL-safe members). */
void pool_job_clear(pool_job_t *j);

/* A progress line from slot's worker ({"event":"progress","phase",...}):
 * relayed as a "progress" event with the run, iteration and slot of the
 * job the slot runs.  For the worker client's progress callback. */
void pool_worker_progress(pool_t *p, int slot, const json_t *progress);

/* The device (a value of b->visible_devices_env, CUDA_VISIBLE_DEVICES on
 * cuda) of local worker i on a pool without templates whose backend splits
 * its devices: worker i takes the (i mod G)-th of the G devices the
 * variable lists, or the host has (b->count_devices), so that more workers
 * than devices share them. */
void pool_local_device(const backend_t *b, int i, char *out, size_t n);

/* Stop every worker (end of input; killed if it does not end) and free. */
void pool_close(pool_t *p);

#endif
