/*
 * task_state.h -- what the worker keeps for the task it is evaluating
 * candidates of, while the task stays the same: the task, its arena
 * layout (six slots), the oracle (the reference, built, started and
 * checked), the yardstick (calibrate.h) and the eight input sets; and,
 * for each evaluation, the sets drawn afresh and answered by the oracle
 * before the candidate starts.
 */
#ifndef EMILE_WORKER_TASK_STATE_H
#define EMILE_WORKER_TASK_STATE_H

#include <jansson.h>
#include <stddef.h>

#include "worker_internal.h"

/* How much wider than the others the small validation set's inputs are
 * drawn (every float input's spread times this; the indices an op reads
 * stay in their range).  8 puts an attention's scores at 64x the others'
 * (past exp's range in float32, about 88, for a softmax without its
 * running max: 4 did not, on the small set's few scores).  Integer inputs
 * keep their spread.  Where the reference's own answer is not finite at
 * this spread (an fp16 SwiGLU of unnormalised products, say) the task
 * keeps the others' spread: tried once when the task is set up, and again
 * at any evaluation whose wide draw overflows (task_state.c). */
#define TASK_WIDE_SCALE 8.0
/* The small set's tolerance when it is wide: at least this (validate.c:
 * wide_tolerance); it judges range, the other sets rounding. */
#define TASK_WIDE_TOL 0.5

/* The device's turn and the compile cache for the device in w->device
 * (task_state_ensure calls it first). */
void task_state_device(worker_ctx_t *w, const backend_t *b);
/* The task's state for task_json (built anew when the task changed): 0, or
 * an ORACLE_* code with w->task_error. */
int task_state_ensure(worker_ctx_t *w, const json_t *task_json, const backend_t *b);
/* Every set of this evaluation drawn and answered: 0, or an ORACLE_* code
 * with err. */
int task_state_fill(worker_ctx_t *w, char *err, size_t n);
void task_state_free(worker_ctx_t *w);

#endif
