/* softmax.c -- the row softmax op: x [rows, cols] -> y [rows, cols],
 * y[r, c] = exp(x[r, c] - max_c x[r, :]) / sum_c exp(x[r, c] - max).
 *
 * FLOPs are counted as 5 per element (subtract the max, exp, sum, divide,
 * and the max itself; an exp as one FLOP, as the field's softmax benchmarks
 * count it); the op is memory bound on every device, so its share of the
 * roofline is its share of the bandwidth.  Bytes: x read once, y written
 * once. */
#include "task/op.h"

#include <math.h>

static int softmax_eval_f64(const op_t *op, const op_params_t *p, double *const *t)
{
    (void)op;
    int64_t rows = (int64_t)op_param_get(p, "rows", 0), cols = (int64_t)op_param_get(p, "cols", 0);
    const double *x = t[0];
    double *y = t[1];
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * cols;
        double *yr = y + r * cols, m = -INFINITY, sum = 0;
        for (int64_t c = 0; c < cols; c++)
            m = xr[c] > m ? xr[c] : m;
        for (int64_t c = 0; c < cols; c++)
            sum += yr[c] = exp(xr[c] - m);
        for (int64_t c = 0; c < cols; c++)
            yr[c] /= sum;
    }
    return 0;
}

const op_t op_softmax = {
    .name = "softmax",
    .description = "row softmax: y = exp(x - max) / sum exp(x - max), along the last dimension",
    .n_tensors = 2,
    .tensors = {
        {.name = "x", .ndim = 2, .shape = {"rows", "cols"}, .dtype = -1},
        {.name = "y", .is_output = 1, .ndim = 2, .shape = {"rows", "cols"}, .dtype = -1},
    },
    .defaults = {.n = 2, .names = {"rows", "cols"}, .values = {4096, 4096}},
    .flops_expr = "5*rows*cols",
    .bytes_expr = "elem*2*rows*cols",
    .n_vary = 1,
    .vary = {"rows"},
    .eval_f64 = softmax_eval_f64,
    .builtin = 1,
};
