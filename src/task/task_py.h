/*
 * task_py.h -- a task whose reference is a PyTorch problem file (KernelBench's
 * convention), built from the worker's description of the problem
 * (docs/PYTORCH.md, "describe_problem" in docs/PROTOCOL.md).  The orchestrator
 * never runs the problem: the worker's oracle ran it once and said which
 * tensors it takes and gives (names, shapes as expressions of the varied
 * constants, dtypes), its constants, its FLOPs and whether it names a
 * builtin op.
 *
 * Matching a builtin op (emile_op in the file, or "op"/--op in the task):
 * the problem's tensors, in the ABI's order, are the op's tensors in its
 * order (same count, outputs last); every op parameter that a dimension of
 * the op's shapes names alone (q's [batch, seq, q_heads, head_dim]) is read
 * from the problem's shapes; the others come from emile_params, else from a
 * constructor argument or module constant of the same name, else the op's
 * default; then every shape must be the op's at those parameters.  The
 * builtin agent's ladder for that op applies, and the op's float64 oracle
 * checks the PyTorch reference.  emile_vary's constants become the op
 * parameters their dimensions name (the first is made ragged).
 *
 * Otherwise the op is user-defined: named after the file, its tensors the
 * problem's, its parameters the module's numeric constants and the
 * constructor's numeric arguments (the kernel receives them), its vary list
 * emile_vary, its FLOPs emile_flops or the counted number.
 */
#ifndef EMILE_TASK_PY_H
#define EMILE_TASK_PY_H

#include <jansson.h>

#include "task/task.h"

/* Fill t's op, params and dtype from desc (the "problem" object of the
 * worker's describe_problem reply); clears problem_pending.  0, or -1
 * with err naming what does not fit. */
int task_from_problem(task_t *t, const json_t *desc, char *err, size_t errlen);

/* The describe_problem request for t (a task whose reference is a .py
 * file); NULL when out of memory. */
json_t *task_problem_request(const task_t *t);

/* A task whose problem is not described yet, as JSON that reads back the
 * same (the source inlined, no "params"): what a page sends back. */
json_t *task_problem_json(const task_t *t);

#endif
