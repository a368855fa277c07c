/*
 * cook_queue.h -- cooks requested over the API, one at a time per device.
 *
 * A job is a cook (a task) or a resume (a stored run).  Jobs wait in one
 * queue; each device (the task's backend) has a lane that runs its jobs in
 * order, one child process at a time:
 *
 *     EMILE cook TASKFILE --store STORE --events
 *     EMILE resume RUN --store STORE --events
 *
 * The child prints the cook's events as NDJSON on stdout (src/cook/
 * cook_event.h, the one definition: "run", "progress", "iteration",
 * "worker", "done"), and each is republished on the event hub with the
 * job's id added:
 *
 *   "jobs"       {"jobs":[active jobs, as cookq_jobs]}     on every change
 *   "run"        {"job","run","kind","backend"}
 *   "iteration"  {"job","run","iteration"}
 *   "progress"   {"job","run", ...the child's progress object: "phase",
 *                "detail", "iter", "worker", "k", "n", "elapsed_s"}; a
 *                worker event comes as phase "worker" with its words
 *   "done"       {"job","run","status","best_iter","error"} exactly once
 *
 * Why a child and not the cook module in a thread: a cook runs an agent
 * (an LLM's replies parsed, a ladder rendered) and a pool of worker
 * processes for minutes or hours; a crash, an abort or a leak in it must
 * cost that cook only, never the server and the other cooks and browsers
 * it serves.  A child also gives a stop its plain meaning (SIGTERM: finish
 * the candidates in flight, then end "stopped"; SIGKILL to its group after
 * a grace period), and its workers die with it (PDEATHSIG).  The events
 * cross as NDJSON either way, parsed by cook_event_kind.
 *
 * Stopping sends SIGTERM: the CLI finishes the current candidate and ends
 * the run as "stopped".  A child that dies without "done" ends its job as
 * "failed" (and its stored run too, if the store still says "running"), so
 * nothing stays "running" forever.
 */
#ifndef EMILE_SERVE_COOK_QUEUE_H
#define EMILE_SERVE_COOK_QUEUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "events.h"

typedef struct cook_queue cook_queue_t;

enum {
    COOKQ_OK = 0,
    COOKQ_FULL = 1,        /* max_queue jobs already waiting on that device */
    COOKQ_BUSY = 2,        /* that run is already cooking or queued */
    COOKQ_NOT_FOUND = 3,   /* no such job or run in the queue */
    COOKQ_ERROR = -1       /* err says why (temp file, closing, memory) */
};

/* emile_path and store_path are copied.  hub is borrowed and must outlive
 * the queue.  quiet: 0 copies each child's stderr lines to ours. */
cook_queue_t *cookq_create(const char *emile_path, const char *store_path,
                           event_hub_t *hub, int max_queue, int quiet);

/* Queue a cook of task (canonical task JSON, borrowed; its "backend" picks
 * the lane).  On COOKQ_OK *reply is {"job","state","position","backend"}
 * where position counts the jobs ahead on that device (0: starts now). */
int cookq_submit_cook(cook_queue_t *q, const json_t *task, json_t **reply,
                      char *err, size_t errlen);
/* Queue a resume of stored run `run` on device `backend`. */
int cookq_submit_resume(cook_queue_t *q, int64_t run, const char *backend,
                        json_t **reply, char *err, size_t errlen);

/* Stop the job cooking (or waiting to resume) run `run`: a running child
 * gets SIGTERM, a queued job is cancelled.  COOKQ_OK with *reply
 * {"job","state":"stopping"|"cancelled"}, or COOKQ_NOT_FOUND. */
int cookq_stop_run(cook_queue_t *q, int64_t run, json_t **reply);
/* The same for a job id (a queued cook has no run id yet). */
int cookq_stop_job(cook_queue_t *q, int64_t job, json_t **reply);

/* Active jobs (queued and running) in queue order, then the most recent
 * finished ones: [{"job","kind","backend","state","position","run",
 * "name","status","error","created"}].  New reference. */
json_t *cookq_jobs(cook_queue_t *q);
/* The active job for run `run` as one element of cookq_jobs, or NULL. */
json_t *cookq_job_for_run(cook_queue_t *q, int64_t run);

/* Cancel what waits, SIGTERM what runs, SIGKILL its process group after
 * grace_s, join every thread, free. */
void cookq_destroy(cook_queue_t *q, double grace_s);

#endif
