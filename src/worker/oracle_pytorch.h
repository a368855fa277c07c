/*
 * oracle_pytorch.h -- a PyTorch problem's oracle (reference_python.h) behind
 * the worker's oracle seam (oracle.h, from the trust work): the second
 * implementation beside the C/CUDA reference's.
 *
 * The worker picks it for a task whose reference is a .py file
 * (task_state.c), and answers the reference's own iteration with
 * oracle_pytorch_iteration (evaluate.c): the eager floor and
 * torch.compile's, no kernel compiled.
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
