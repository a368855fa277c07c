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
 * Rungs are in climbing order.  The template reads each parameter as a
 * macro with a default; a candidate is the template with #define lines
 * prepended. */
#ifndef EMILE_LADDER_H
#define EMILE_LADDER_H

#include <jansson.h>

typedef struct ladder {
    json_t *root;              /* the manifest */
    json_t *rungs;             /* borrowed from root */
    char dir[1024];            /* where the templates are */
} ladder_t;

/* 0, or -1 with err (no ladder for this op/backend, malformed manifest). */
int ladder_load(ladder_t *l, const char *op, const char *backend, char *err, size_t n);
void ladder_free(ladder_t *l);
/* Template source with the parameters prepended (malloc'd); NULL + err. */
char *ladder_render(const ladder_t *l, const json_t *rung, const json_t *params, char *err, size_t n);
/* The default parameter object of a rung (new reference). */
json_t *ladder_defaults(const json_t *rung);
/* Why the device/task cannot run this rung, or NULL when it can. */
const char *ladder_unmet(const json_t *rung, const json_t *device, const json_t *task_json, char *buf, size_t n);

#endif
