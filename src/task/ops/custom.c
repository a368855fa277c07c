/* custom.c -- user-defined ops, described in the task file:
 *
 *   "op": {"name": "rmsnorm",
 *          "params": {"rows": 4096, "cols": 1024, "eps": 1e-6},
 *          "tensors": [{"name": "x", "shape": ["rows", "cols"]},
 *                      {"name": "w", "shape": ["cols"], "init_std": 0.5},
 *                      {"name": "y", "shape": ["rows", "cols"], "output": true}],
 *          "flops": "3*rows*cols",
 *          "bytes": "elem*(2*rows*cols + cols)",      (optional)
 *          "tolerance": {"f32": 1e-5},               (optional)
 *          "vary": ["rows"]}                          (params validation may shrink)
 *
 * An integer input may say where its values are drawn from, for indices a
 * kernel reads from memory (a position, a length): {"name": "pos", "shape":
 * [1], "dtype": "i32", "range": [0, "cap - 1"]}, uniform in [lo, hi].
 *
 * Nothing in the harness is op-specific, so such an op is compiled,
 * validated against its reference and profiled exactly like a builtin one;
 * only the float64 oracle is missing (the reference is the oracle). */
#include "task/op.h"
#include "task/task.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(char *err, size_t errlen, const char *msg, const char *what)
{
    snprintf(err, errlen, "op definition: %s%s%s", msg, what ? ": " : "", what ? what : "");
    return -1;
}

/* Names travel through expressions and the runner's line protocol. */
static int is_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

static char *shape_entry(const json_t *e)
{
    char buf[64];
    if (json_is_string(e))
        return strdup(json_string_value(e));
    if (json_is_integer(e)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(e));
        return strdup(buf);
    }
    return NULL;
}

int op_from_json(const json_t *j, op_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j))
        return bad(err, errlen, "\"op\" must be a name or an object", NULL);
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !*name || strlen(name) >= sizeof out->name)
        return bad(err, errlen, "missing or too long \"name\"", NULL);
    snprintf(out->name, sizeof out->name, "%s", name);
    const char *desc = json_string_value(json_object_get(j, "description"));
    if (desc)
        snprintf(out->description, sizeof out->description, "%s", desc);

    json_t *params = json_object_get(j, "params");
    if (params && !json_is_object(params))
        return bad(err, errlen, "\"params\" must be an object", NULL);
    const char *key;
    json_t *val;
    json_object_foreach(params, key, val) {
        if (!is_ident(key))
            return bad(err, errlen, "parameter names must be identifiers", key);
        if (!json_is_number(val))
            return bad(err, errlen, "parameter is not a number", key);
        if (op_param_set(&out->defaults, key, json_number_value(val)) != 0)
            return bad(err, errlen, "too many parameters or name too long", key);
    }

    json_t *tensors = json_object_get(j, "tensors");
    if (!json_is_array(tensors) || json_array_size(tensors) == 0)
        return bad(err, errlen, "\"tensors\" must be a non-empty array", NULL);
    if (json_array_size(tensors) > OP_MAX_TENSORS)
        return bad(err, errlen, "too many tensors", NULL);
    int n_out = 0;
    size_t i;
    json_t *tj;
    json_array_foreach(tensors, i, tj) {
        op_tensor_t *ts = &out->tensors[out->n_tensors];
        ts->dtype = -1;
        const char *tname = json_string_value(json_object_get(tj, "name"));
        if (!tname || !is_ident(tname) || strlen(tname) >= sizeof ts->name) {
            op_free(out);
            return bad(err, errlen, "every tensor needs a \"name\" that is an identifier", tname);
        }
        for (int t = 0; t < out->n_tensors; t++)
            if (strcmp(out->tensors[t].name, tname) == 0) {
                op_free(out);
                return bad(err, errlen, "duplicate tensor name", tname);
            }
        snprintf(ts->name, sizeof ts->name, "%s", tname);
        json_t *shape = json_object_get(tj, "shape");
        if (!json_is_array(shape) || json_array_size(shape) == 0 || json_array_size(shape) > EMILE_MAX_DIMS) {
            op_free(out);
            return bad(err, errlen, "tensor \"shape\" must be an array of 1-8 expressions", tname);
        }
        out->n_tensors++;
        size_t d;
        json_t *e;
        json_array_foreach(shape, d, e) {
            ts->shape[d] = shape_entry(e);
            if (!ts->shape[d]) {
                op_free(out);
                return bad(err, errlen, "shape entries must be strings or integers", tname);
            }
            ts->ndim = (int)d + 1;
        }
        ts->is_output = json_is_true(json_object_get(tj, "output"));
        n_out += ts->is_output;
        const char *dt = json_string_value(json_object_get(tj, "dtype"));
        if (dt) {
            ts->dtype = dtype_from_name(dt);
            if (ts->dtype < 0) {
                op_free(out);
                return bad(err, errlen, "unknown tensor dtype", dt);
            }
        }
        if (json_is_true(json_object_get(tj, "scalar"))) {
            if (ts->ndim != 1 || strcmp(ts->shape[0], "1") != 0) {
                op_free(out);
                return bad(err, errlen, "a \"scalar\" tensor has the shape [1]", tname);
            }
            ts->scalar = 1;
        }
        json_t *std = json_object_get(tj, "init_std");
        if (std)
            ts->init_std = json_number_value(std);
        json_t *range = json_object_get(tj, "range");
        if (range) {
            if (ts->is_output || (ts->dtype != EMILE_DTYPE_I32 && ts->dtype != EMILE_DTYPE_I64) ||
                !json_is_array(range) || json_array_size(range) != 2) {
                op_free(out);
                return bad(err, errlen, "\"range\" is [lo, hi] on an input of dtype i32 or i64",
                           tname);
            }
            for (int r = 0; r < 2; r++)
                if (!(ts->range[r] = shape_entry(json_array_get(range, (size_t)r)))) {
                    op_free(out);
                    return bad(err, errlen, "range bounds must be strings or integers", tname);
                }
        }
    }
    if (n_out == 0) {
        op_free(out);
        return bad(err, errlen, "no tensor is marked \"output\": true", NULL);
    }
    /* Inputs first, then outputs: the ABI's order. */
    for (int t = 0; t + 1 < out->n_tensors; t++)
        if (out->tensors[t].is_output && !out->tensors[t + 1].is_output) {
            op_free(out);
            return bad(err, errlen, "list inputs before outputs", out->tensors[t + 1].name);
        }

    const char *flops = json_string_value(json_object_get(j, "flops"));
    if (!flops) {
        op_free(out);
        return bad(err, errlen, "missing \"flops\" expression", NULL);
    }
    out->flops_expr = strdup(flops);
    const char *bytes = json_string_value(json_object_get(j, "bytes"));
    if (bytes)
        out->bytes_expr = strdup(bytes);

    json_t *tol = json_object_get(j, "tolerance");
    json_object_foreach(tol, key, val) {
        int d = dtype_from_name(key);
        if (d < 0 || !json_is_number(val) || json_number_value(val) <= 0) {
            op_free(out);
            return bad(err, errlen, "tolerance must map dtype names to positive numbers", key);
        }
        out->tol[d] = json_number_value(val);
    }
    json_t *vary = json_object_get(j, "vary");
    json_array_foreach(vary, i, val) {
        const char *v = json_string_value(val);
        if (!v || out->n_vary >= 8 || strlen(v) >= sizeof out->vary[0]) {
            op_free(out);
            return bad(err, errlen, "\"vary\" must list up to 8 parameter names", NULL);
        }
        if (isnan(op_param_get(&out->defaults, v, NAN))) {
            op_free(out);
            return bad(err, errlen, "\"vary\" names a parameter the op does not have", v);
        }
        snprintf(out->vary[out->n_vary++], sizeof out->vary[0], "%s", v);
    }
    return 0;
}
