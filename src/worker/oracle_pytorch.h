/*
 * oracle_pytorch.h -- a PyTorch problem's oracle (reference_python.h) behind
 * the worker's oracle seam (oracle.h, from the trust work): the second
 * implementation beside the C/CUDA reference's.  It compiles to nothing
 * where the seam is not in the tree yet.
 *
 * The worker's wiring (src/worker/evaluate.c):
 *   w->oracle = task_reference_is_python(&w->task) ? oracle_pytorch_new(&env)
 *                                                  : oracle_reference_new(&env);
 * and, before compiling a candidate, the reference's own iteration:
 *   if (task_reference_is_python(e.t) && strcmp(source, e.t->reference_source) == 0) {
 *       json_decref(e.reply);
 *       return oracle_pytorch_iteration(w->oracle, w->device);
 *   }
 */
#ifndef EMILE_ORACLE_PYTORCH_H
#define EMILE_ORACLE_PYTORCH_H

#include <jansson.h>

struct oracle;
struct oracle_env;

/* A PyTorch oracle for env's task (not yet prepared); NULL when out of memory. */
struct oracle *oracle_pytorch_new(const struct oracle_env *env);

/* The evaluate reply of the reference itself: the eager floor's profile
 * report with report.floors (reference_python_iteration).  Never NULL. */
json_t *oracle_pytorch_iteration(struct oracle *o, const json_t *device);

#endif
