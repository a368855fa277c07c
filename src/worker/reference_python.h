/*
 * reference_python.h -- a PyTorch problem file as a task's reference, on the
 * worker's trusted side: the oracle process (oracle_python.h) draws every
 * input set with the problem's get_inputs() under a seed from the worker's
 * generator (never shown to a kernel), runs Model(*get_init_inputs()) on it
 * and hands back the inputs (forward inputs, then the model's parameters and
 * buffers) and the expected outputs.  Guard bytes are the worker's own.
 *
 * The reference's own iteration (iteration 0 of a cook) is not a kernel to
 * compile: its report is the oracle's eager timing, measured by the rules a
 * candidate is timed by, with the torch.compile floor beside it
 * (report.floors: eager_ms, compile_ms, compile_s).
 *
 * This is the second implementation of the worker's oracle seam (the first
 * draws inputs in C and runs a C/CUDA reference in a runner).
 */
#ifndef EMILE_REFERENCE_PYTHON_H
#define EMILE_REFERENCE_PYTHON_H

#include <jansson.h>
#include <stdint.h>

#include "task/task.h"
#include "util/rng.h"
#include "worker/layout.h"
#include "worker/oracle_python.h"

typedef struct reference_python {
    oracle_python_t proc;
    int started;
    json_t *floors;             /* the last floors: eager timed each time, compile once */
} reference_python_t;

/* The worker's "describe_problem" request (docs/PROTOCOL.md): start an
 * oracle, load and describe the problem, stop it.  Never NULL:
 * {"ok":true,"problem":{...}} or {"ok":false,"error":...,"kind":"problem"|
 * "missing"|"failed"}. */
json_t *reference_python_describe(const json_t *req);

/* Start the oracle for task t and, when the task's op has a float64
 * evaluation, check the PyTorch reference against it on slot small (its
 * result into *oracle_check, a new object, also when no check exists).
 * 0, or an ORACLE_PY_* code with err. */
int reference_python_prepare(reference_python_t *r, const task_t *t, const arena_layout_t *a, int small,
                             rng_t *rng, uint8_t *arena, uint8_t **pristine, void **expected,
                             json_t **oracle_check, char *err, size_t n);

/* Slot sl into dst, its range [begin, end) slot-relative: random guard
 * bytes, the oracle's inputs, and the expected outputs into expected[k]
 * (allocated when NULL).  0, or an ORACLE_PY_* code with err. */
int reference_python_fill_slot(reference_python_t *r, const task_t *t, const slot_layout_t *sl, rng_t *rng,
                               uint8_t *dst, void **expected, char *err, size_t n);

/* Slot s: random guard bytes over the slot's range of arena, the oracle's
 * inputs in it, a pristine copy (*pristine allocated when NULL) and the
 * expected outputs.  0, or an ORACLE_PY_* code with err. */
int reference_python_fill(reference_python_t *r, const task_t *t, const arena_layout_t *a, int s, rng_t *rng,
                          uint8_t *arena, uint8_t **pristine, void **expected, char *err, size_t n);

/* The evaluate reply of the reference itself: status "valid", the report
 * of the eager floor (profile_report over its timed runs), report.floors,
 * and the oracle check.  Never NULL. */
json_t *reference_python_iteration(reference_python_t *r, const task_t *t, const json_t *device, rng_t *rng,
                                   const json_t *oracle_check);

void reference_python_stop(reference_python_t *r);

#endif
