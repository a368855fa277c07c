/* oracle_pytorch.c -- see oracle_pytorch.h.  The seam's four operations on
 * reference_python.h: prepare starts the oracle process and checks the
 * reference against the op's float64 evaluation (when the op has one),
 * fill draws one set into the worker's pristine buffer, describe is that
 * check's result, free stops the process. */
#include "worker/oracle_pytorch.h"

#include <stdlib.h>
#include <string.h>

#include "worker/oracle.h"
#include "worker/reference_python.h"

typedef struct py_oracle {
    oracle_t base;
    oracle_env_t env;
    reference_python_t py;
    json_t *check;
} py_oracle_t;

static int seam_code(int rc)
{
    return rc == ORACLE_PY_OK ? ORACLE_OK : ORACLE_INVALID;
}

static int py_prepare(oracle_t *b, char *err, size_t n)
{
    py_oracle_t *o = (py_oracle_t *)b;
    const arena_layout_t *a = o->env.layout;
    uint8_t *arena = malloc(a->total ? a->total : 1), *pristine = NULL;
    void *expected[OP_MAX_TENSORS] = {0};
    if (!arena) {
        snprintf(err, n, "out of memory for the input sets");
        return ORACLE_ERROR;
    }
    /* The small set is the last validation slot (task, ragged, small). */
    int rc = reference_python_prepare(&o->py, o->env.task, a, 2, o->env.rng, arena, &pristine, expected,
                                      &o->check, err, n);
    free(arena);
    free(pristine);
    for (int k = 0; k < OP_MAX_TENSORS; k++)
        free(expected[k]);
    return seam_code(rc);
}

static int py_fill(oracle_t *b, int slot, const char *set_name, uint8_t *pristine, void **expected, char *err,
                   size_t n)
{
    (void)set_name;
    py_oracle_t *o = (py_oracle_t *)b;
    return seam_code(reference_python_fill_slot(&o->py, o->env.task, &o->env.layout->slots[slot], o->env.rng,
                                                pristine, expected, err, n));
}

static json_t *py_describe(oracle_t *b)
{
    py_oracle_t *o = (py_oracle_t *)b;
    return o->check ? json_deep_copy(o->check) : json_pack("{sb}", "checked", 0);
}

static void py_free(oracle_t *b)
{
    py_oracle_t *o = (py_oracle_t *)b;
    if (!o)
        return;
    reference_python_stop(&o->py);
    json_decref(o->check);
    free(o);
}

static const oracle_ops_t py_ops = {
    .name = "pytorch",
    .prepare = py_prepare,
    .fill = py_fill,
    .describe = py_describe,
    .free = py_free,
};

oracle_t *oracle_pytorch_new(const oracle_env_t *env)
{
    py_oracle_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->base.ops = &py_ops;
    o->env = *env;
    return &o->base;
}

json_t *oracle_pytorch_iteration(oracle_t *b, const json_t *device)
{
    py_oracle_t *o = (py_oracle_t *)b;
    return reference_python_iteration(&o->py, o->env.task, device, o->env.rng, o->check);
}
