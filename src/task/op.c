/* op.c -- the op registry and the op-independent helpers (shapes, FLOP and
 * byte models, tolerances) that every op shares. */
#include "op.h"
#include "expr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const op_t op_attention, op_softmax, op_rmsnorm;

/* The builtin ops.  A new op: one file in src/task/ops/, one line here. */
static const op_t *const builtin_ops[] = {&op_attention, &op_softmax, &op_rmsnorm};

const op_t *op_find_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof builtin_ops / sizeof builtin_ops[0]; i++)
        if (strcmp(builtin_ops[i]->name, name) == 0)
            return builtin_ops[i];
    return NULL;
}

void op_list_builtin(const op_t ***list, int *n)
{
    *list = (const op_t **)builtin_ops;
    *n = (int)(sizeof builtin_ops / sizeof builtin_ops[0]);
}

double op_param_get(const op_params_t *p, const char *name, double dflt)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return p->values[i];
    return dflt;
}

int op_param_set(op_params_t *p, const char *name, double v)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0) {
            p->values[i] = v;
            return 0;
        }
    if (p->n >= OP_MAX_PARAMS || strlen(name) >= sizeof p->names[0])
        return -1;
    snprintf(p->names[p->n], sizeof p->names[0], "%s", name);
    p->values[p->n++] = v;
    return 0;
}

static int lookup_param(void *ctx, const char *name, double *v)
{
    const op_params_t *p = ctx;
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0) {
            *v = p->values[i];
            return 0;
        }
    return -1;
}

int op_tensor_shape(const op_t *op, int t, const op_params_t *p, int64_t *shape,
                    char *err, size_t errlen)
{
    const op_tensor_t *ts = &op->tensors[t];
    for (int d = 0; d < ts->ndim; d++) {
        double v;
        if (expr_eval(ts->shape[d], lookup_param, (void *)p, &v, err, errlen) != 0)
            return -1;
        if (v < 1 || v != floor(v) || v > 1e15) {
            snprintf(err, errlen, "tensor %s dimension %d (%s) = %g: must be a positive integer",
                     ts->name, d, ts->shape[d], v);
            return -1;
        }
        shape[d] = (int64_t)v;
    }
    return 0;
}

int op_tensor_int_range(const op_t *op, int t, const op_params_t *p, int64_t *lo, int64_t *hi,
                        char *err, size_t errlen)
{
    const op_tensor_t *ts = &op->tensors[t];
    if (!ts->range[0] || !ts->range[1])
        return 0;
    double v[2];
    for (int i = 0; i < 2; i++) {
        if (expr_eval(ts->range[i], lookup_param, (void *)p, &v[i], err, errlen) != 0)
            return -1;
        if (v[i] != floor(v[i]) || fabs(v[i]) > 2147483647.0) {
            snprintf(err, errlen, "tensor %s: range bound %s = %g is not a 32-bit integer",
                     ts->name, ts->range[i], v[i]);
            return -1;
        }
    }
    if (v[0] > v[1]) {
        snprintf(err, errlen, "tensor %s: empty range [%s, %s] = [%g, %g]", ts->name,
                 ts->range[0], ts->range[1], v[0], v[1]);
        return -1;
    }
    *lo = (int64_t)v[0];
    *hi = (int64_t)v[1];
    return 1;
}

int64_t op_tensor_numel(const op_t *op, int t, const op_params_t *p)
{
    int64_t shape[EMILE_MAX_DIMS];
    char err[256];
    if (op_tensor_shape(op, t, p, shape, err, sizeof err) != 0)
        return 0;
    int64_t n = 1;
    for (int d = 0; d < op->tensors[t].ndim; d++)
        n *= shape[d];
    return n;
}

int op_tensor_dtype(const op_t *op, int t, int task_dtype)
{
    return op->tensors[t].dtype >= 0 ? op->tensors[t].dtype : task_dtype;
}

double op_flops(const op_t *op, const op_params_t *p)
{
    double v = 0;
    char err[256];
    if (!op->flops_expr || expr_eval(op->flops_expr, lookup_param, (void *)p, &v, err, sizeof err) != 0)
        return 0;
    return v;
}

double op_bytes(const op_t *op, const op_params_t *p, int task_dtype)
{
    double v = 0;
    char err[256];
    if (op->bytes_expr) {
        /* The expression may use "elem" for the task dtype's size. */
        op_params_t q = *p;
        op_param_set(&q, "elem", (double)emile_dtype_size(task_dtype));
        if (expr_eval(op->bytes_expr, lookup_param, &q, &v, err, sizeof err) != 0)
            return 0;
        return v;
    }
    for (int t = 0; t < op->n_tensors; t++)
        v += (double)op_tensor_numel(op, t, p) * (double)emile_dtype_size(op_tensor_dtype(op, t, task_dtype));
    return v;
}

double op_tolerance(const op_t *op, int dtype)
{
    /* Defaults: errors are measured as max |out-ref| / (|ref| + rms(ref)),
     * so the bound is relative to the output's own magnitude. */
    static const double dflt[6] = {
        [EMILE_DTYPE_F32] = 1e-4, [EMILE_DTYPE_F16] = 2e-2, [EMILE_DTYPE_BF16] = 6.25e-2,
        [EMILE_DTYPE_F64] = 1e-9, [EMILE_DTYPE_I32] = 0, [EMILE_DTYPE_I64] = 0};
    if (dtype < 0 || dtype > 5)
        return 0;
    return op->tol[dtype] > 0 ? op->tol[dtype] : dflt[dtype];
}

int op_check_params(const op_t *op, const op_params_t *p, int task_dtype,
                    char *err, size_t errlen)
{
    double total = 0;
    for (int t = 0; t < op->n_tensors; t++) {
        int64_t shape[EMILE_MAX_DIMS];
        if (op_tensor_shape(op, t, p, shape, err, errlen) != 0)
            return -1;
        double n = 1;
        for (int d = 0; d < op->tensors[t].ndim; d++)
            n *= (double)shape[d];
        double bytes = n * (double)emile_dtype_size(op_tensor_dtype(op, t, task_dtype));
        if (bytes > 1e12) {
            snprintf(err, errlen, "tensor %s would need %.3g bytes: too large", op->tensors[t].name, bytes);
            return -1;
        }
        total += bytes;
        int64_t lo, hi;
        if (op_tensor_int_range(op, t, p, &lo, &hi, err, errlen) < 0)
            return -1;
    }
    if (total > 256e9) {
        snprintf(err, errlen, "the op's tensors need %.3g bytes together: more than any device holds", total);
        return -1;
    }
    if (op->check_params && op->check_params(p, err, errlen) != 0)
        return -1;
    if (op->bytes_expr) {
        op_params_t q = *p;
        double v;
        op_param_set(&q, "elem", (double)emile_dtype_size(task_dtype));
        if (expr_eval(op->bytes_expr, lookup_param, &q, &v, err, errlen) != 0)
            return -1;
        if (v <= 0) {
            snprintf(err, errlen, "bytes expression gives %g (must be positive)", v);
            return -1;
        }
    }
    if (op->flops_expr) {
        double v;
        if (expr_eval(op->flops_expr, lookup_param, (void *)p, &v, err, errlen) != 0)
            return -1;
        if (v < 0) {
            snprintf(err, errlen, "flops expression gives %g (negative)", v);
            return -1;
        }
    }
    return 0;
}

void op_free(op_t *op)
{
    if (op->builtin)
        return;
    for (int t = 0; t < op->n_tensors; t++) {
        for (int d = 0; d < op->tensors[t].ndim; d++) {
            free(op->tensors[t].shape[d]);
            op->tensors[t].shape[d] = NULL;
        }
        for (int i = 0; i < 2; i++) {
            free(op->tensors[t].range[i]);
            op->tensors[t].range[i] = NULL;
        }
    }
    free(op->flops_expr);
    free(op->bytes_expr);
    op->flops_expr = op->bytes_expr = NULL;
    op->n_tensors = 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int op_copy(const op_t *src, op_t *dst)
{
    *dst = *src;
    if (src->builtin)
        return 0;
    for (int t = 0; t < src->n_tensors; t++) {
        for (int d = 0; d < src->tensors[t].ndim; d++)
            dst->tensors[t].shape[d] = dup_or_null(src->tensors[t].shape[d]);
        for (int i = 0; i < 2; i++)
            dst->tensors[t].range[i] = dup_or_null(src->tensors[t].range[i]);
    }
    dst->flops_expr = dup_or_null(src->flops_expr);
    dst->bytes_expr = dup_or_null(src->bytes_expr);
    return 0;
}

static const char *dtype_str(int d)
{
    static const char *names[] = {"f32", "f16", "bf16", "f64", "i32", "i64"};
    return d >= 0 && d < 6 ? names[d] : "task";
}

json_t *op_to_json(const op_t *op)
{
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(op->name));
    if (op->description[0])
        json_object_set_new(j, "description", json_string(op->description));
    json_t *params = json_object();
    for (int i = 0; i < op->defaults.n; i++)
        json_object_set_new(params, op->defaults.names[i], json_real(op->defaults.values[i]));
    json_object_set_new(j, "params", params);
    json_t *tensors = json_array();
    for (int t = 0; t < op->n_tensors; t++) {
        const op_tensor_t *ts = &op->tensors[t];
        json_t *tj = json_object();
        json_object_set_new(tj, "name", json_string(ts->name));
        json_t *shape = json_array();
        for (int d = 0; d < ts->ndim; d++)
            json_array_append_new(shape, json_string(ts->shape[d]));
        json_object_set_new(tj, "shape", shape);
        json_object_set_new(tj, "output", json_boolean(ts->is_output));
        if (ts->dtype >= 0)
            json_object_set_new(tj, "dtype", json_string(dtype_str(ts->dtype)));
        if (ts->init_std > 0)
            json_object_set_new(tj, "init_std", json_real(ts->init_std));
        if (ts->range[0] && ts->range[1])
            json_object_set_new(tj, "range", json_pack("[ss]", ts->range[0], ts->range[1]));
        if (ts->scalar)
            json_object_set_new(tj, "scalar", json_true());
        json_array_append_new(tensors, tj);
    }
    json_object_set_new(j, "tensors", tensors);
    if (op->flops_expr)
        json_object_set_new(j, "flops", json_string(op->flops_expr));
    if (op->bytes_expr)
        json_object_set_new(j, "bytes", json_string(op->bytes_expr));
    json_t *tol = json_object();
    for (int d = 0; d < 6; d++)
        if (op->tol[d] > 0)
            json_object_set_new(tol, dtype_str(d), json_real(op->tol[d]));
    json_object_set_new(j, "tolerance", tol);
    json_t *vary = json_array();
    for (int i = 0; i < op->n_vary; i++)
        json_array_append_new(vary, json_string(op->vary[i]));
    json_object_set_new(j, "vary", vary);
    json_object_set_new(j, "builtin", json_boolean(op->builtin));
    return j;
}

void op_validation_params(const op_t *op, const op_params_t *p, op_params_t *ragged, op_params_t *small)
{
    *ragged = *p;
    *small = *p;
    if (op->n_vary == 0)
        return;
    const char *v0 = op->vary[0];
    double x = op_param_get(p, v0, 1);
    op_param_set(ragged, v0, x > 24 ? x - floor(x / 8) - 3 : x + 3);
    op_param_set(small, v0, x > 97 ? 97 : (x > 5 ? x - 2 : x + 1));
    for (int i = 1; i < op->n_vary; i++) {
        double y = op_param_get(p, op->vary[i], 1);
        op_param_set(small, op->vary[i], y >= 2 ? 1 : 2);
    }
}
