/* rmsnorm.c -- RMSNorm with a weight, as Qwen3 applies it: x [rows, cols],
 * w [cols] -> y [rows, cols], y[r, c] = x[r, c] / sqrt(mean_c x[r, :]^2 + eps)
 * * w[c].  The same tensors and parameters as examples/rmsnorm_cpu.json's
 * user-defined op (and kernels/rmsnorm/), so the builtin agent's rmsnorm
 * ladder applies to both.
 *
 * FLOPs: 4 per element (square, add, scale, weight); bytes: x read, y
 * written, w read once. */
#include "task/op.h"

#include <math.h>
#include <stdio.h>

static int rmsnorm_check(const op_params_t *p, char *err, size_t errlen)
{
    if (!(op_param_get(p, "eps", -1) >= 0)) {
        snprintf(err, errlen, "eps must be zero or positive (got %g)", op_param_get(p, "eps", -1));
        return -1;
    }
    return 0;
}

static int rmsnorm_eval_f64(const op_t *op, const op_params_t *p, double *const *t)
{
    (void)op;
    int64_t rows = (int64_t)op_param_get(p, "rows", 0), cols = (int64_t)op_param_get(p, "cols", 0);
    double eps = op_param_get(p, "eps", 1e-6);
    const double *x = t[0], *w = t[1];
    double *y = t[2];
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t c = 0; c < cols; c++)
            ss += x[r * cols + c] * x[r * cols + c];
        double inv = 1.0 / sqrt(ss / (double)cols + eps);
        for (int64_t c = 0; c < cols; c++)
            y[r * cols + c] = x[r * cols + c] * inv * w[c];
    }
    return 0;
}

const op_t op_rmsnorm = {
    .name = "rmsnorm",
    .description = "RMSNorm: y = x / sqrt(mean(x^2) + eps) * w, row by row",
    .n_tensors = 3,
    .tensors = {
        {.name = "x", .ndim = 2, .shape = {"rows", "cols"}, .dtype = -1},
        {.name = "w", .ndim = 1, .shape = {"cols"}, .dtype = -1, .init_std = 0.5},
        {.name = "y", .is_output = 1, .ndim = 2, .shape = {"rows", "cols"}, .dtype = -1},
    },
    .defaults = {.n = 3, .names = {"rows", "cols", "eps"}, .values = {4096, 1024, 1e-6}},
    .flops_expr = "4*rows*cols",
    .bytes_expr = "elem*(2*rows*cols + cols)",
    .n_vary = 1,
    .vary = {"rows"},
    .eval_f64 = rmsnorm_eval_f64,
    .check_params = rmsnorm_check,
    .builtin = 1,
};
