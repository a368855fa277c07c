/* ladder.h -- a ladder of parameterised kernel templates for one op on one
 * backend, read from kernels/<op>/<backend>/ladder.json:
 *
 *   {"rungs": [{"id": "v2_flash", "file": "v2_flash.c", "idea": "...",
 *               "expected_gain": "...", "profile_shows": "...",
 *               "addresses": ["scalar_code", ...],
 *               "requires": {"sm": 90, "head_dims": [64, 128], "dtypes": ["bf16"]},
 *               "params": {"EMILE_BQ": {"values": [8, 16, 32], "default": 16,
 *                                        "addresses": ["load_imbalance"]}}}]}
 *
 * Rungs are in climbing order.  The manifest's "lang" (src/backend/lang.h;
 * default C-like) says how parameters reach a template: C and CUDA read
 * each as a macro with a default, and a candidate is the template with
 * #define lines prepended; a Python (Triton) template assigns each at
 * module level, and the assignment is rewritten.  A parameter with
 * "from_task": "head_dim" (an op parameter, or "dtype") takes the task's
 * value and is never tuned (ladder_bind). */
#ifndef EMILE_LADDER_H
#define EMILE_LADDER_H

#include <jansson.h>

#include "task/task.h"

typedef struct ladder {
    json_t *root;              /* the manifest */
    json_t *rungs;             /* borrowed from root */
    json_t *bound;             /* "from_task" parameters' values (ladder_bind), or NULL */
    char dir[1024];            /* where the templates are */
} ladder_t;

/* kernels/<op>/<dir>/ladder.json, dir a language's ladder_dir (lang.h;
 * kernels/attention/triton for Triton).  0; LADDER_NONE with err when the
 * op has no ladder there; -1 with err for a malformed manifest. */
#define LADDER_NONE 1
int ladder_load(ladder_t *l, const char *op, const char *dir, char *err, size_t n);
/* The task's values of the "from_task" parameters, rendered into every
 * candidate (the task's head dim, its dtype). */
void ladder_bind(ladder_t *l, const task_t *t);
void ladder_free(ladder_t *l);
/* Template source with the parameters prepended (malloc'd); NULL + err. */
char *ladder_render(const ladder_t *l, const json_t *rung, const json_t *params, char *err, size_t n);
/* The default parameter object of a rung (new reference). */
json_t *ladder_defaults(const json_t *rung);
/* Why the device/task cannot run this rung, or NULL when it can. */
const char *ladder_unmet(const json_t *rung, const json_t *device, const json_t *task_json, char *buf, size_t n);

#endif
