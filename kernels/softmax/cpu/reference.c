/*
 * reference.c -- row softmax, the naive CPU reference (oracle and floor of a
 * cpu softmax task written in C; a PyTorch problem is its own reference).
 *
 *   tensors  x [rows, cols] -> y [rows, cols]
 *   params   rows, cols
 *   y[r,c] = exp(x[r,c] - max_c x[r,:]) / sum_c exp(x[r,c] - max)
 *
 * One row at a time, single-threaded, libm's expf, sums in f32 in order.
 * Strides from the descriptors are honoured; f32 only.
 */
#include <math.h>
#include "emile.h"

static int is_f32(const emile_tensor_t *t)
{
    return t && t->dtype == EMILE_DTYPE_F32 && t->ndim == 2 && t->data;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *tx = emile_tensor(args, "x"), *ty = emile_tensor(args, "y");
    if (!is_f32(tx) || !is_f32(ty))
        return 1;
    const int64_t rows = tx->shape[0], cols = tx->shape[1];
    if (ty->shape[0] != rows || ty->shape[1] != cols || rows <= 0 || cols <= 0)
        return 2;
    const float *x = tx->data;
    float *y = ty->data;
    const int64_t xr = tx->strides[0], xc = tx->strides[1], yr = ty->strides[0], yc = ty->strides[1];
    for (int64_t r = 0; r < rows; r++) {
        float m = -INFINITY, sum = 0.0f;
        for (int64_t c = 0; c < cols; c++)
            m = fmaxf(m, x[r * xr + c * xc]);
        for (int64_t c = 0; c < cols; c++) {
            const float e = expf(x[r * xr + c * xc] - m);
            y[r * yr + c * yc] = e;
            sum += e;
        }
        for (int64_t c = 0; c < cols; c++)
            y[r * yr + c * yc] /= sum;
    }
    return 0;
}
