/*
 * evaluate.h -- the profile_kernel tool: compile, validate and profile one
 * kernel against the task's reference, inside the sandbox.  The same call
 * serves the builtin agent, the LLM agents and the user (`emile profile`),
 * through the worker protocol (docs/PROTOCOL.md).
 */
#ifndef EMILE_EVALUATE_H
#define EMILE_EVALUATE_H

#include <jansson.h>

typedef struct worker_ctx worker_ctx_t;

/* A private working directory and an empty reference cache; NULL with err. */
worker_ctx_t *worker_ctx_new(char *err, size_t n);
void worker_ctx_free(worker_ctx_t *w);

/* Progress of an evaluation: one event object per phase step,
 * {"event":"progress","phase":"compile|reference|validate|time|held_back|
 * counters","detail":"...","k":2,"n":3,"elapsed_s":1.2} (borrowed: copy
 * what is kept).  NULL: none. */
typedef void (*worker_progress_fn)(const json_t *event, void *user);
void worker_ctx_set_progress(worker_ctx_t *w, worker_progress_fn fn, void *user);

/* The evaluate reply of docs/PROTOCOL.md (without "id"); never NULL.
 * options may carry "source_name": how compile errors name the source
 * (default "kernel.c" / "kernel.cu"). */
json_t *worker_evaluate(worker_ctx_t *w, const json_t *task_json, const char *source,
                        const json_t *options);
/* 0 when the task's tensors, with the harness's copies of them, fit the
 * device's memory ("memory_bytes" of the device object); else -1 with a
 * message naming the sizes. */
struct task;
int worker_task_fits(const struct task *t, const json_t *device, char *err, size_t n);

/* {"ok":true,"devices":[...]} or {"ok":false,"error":...}. */
json_t *worker_devices(worker_ctx_t *w, const char *backend, int remeasure);

#endif
