/*
 * reference.c -- RMSNorm, the naive CPU reference (oracle and floor of a cpu
 * rmsnorm task).
 *
 *   tensors  x [rows, cols]   w [cols]   y [rows, cols]
 *   params   rows, cols, eps (default 1e-6)
 *   y[r,c] = x[r,c] / sqrt(mean_c(x[r,:]^2) + eps) * w[c]
 *
 * One row at a time, single-threaded, no intrinsics, the sum of squares
 * accumulated in f32 in order (as an eager f32 framework would).  Strides
 * from the descriptors are honoured; f32 only (another dtype returns
 * EMILE_ERR_DTYPE, with one line on stderr).
 *
 * Build (what the harness does):
 *   cc -std=gnu11 -O3 -march=native -fopenmp -fPIC -shared -Iinclude \
 *      kernels/rmsnorm/cpu/reference.c -o k.so -lm
 */
#include <math.h>
#include <stdio.h>
#include "emile.h"

/* EMILE_OK when t is an f32 tensor of ndim dimensions. */
static int check(const emile_tensor_t *t, const char *name, int ndim)
{
    if (!t || t->ndim != ndim || !t->data) {
        fprintf(stderr, "reference.c: tensor %s is missing or not %d-d\n", name, ndim);
        return EMILE_ERR_ARGS;
    }
    if (t->dtype != EMILE_DTYPE_F32) {
        fprintf(stderr, "reference.c: %s has dtype %d; this reference supports f32 only\n", name, t->dtype);
        return EMILE_ERR_DTYPE;
    }
    return EMILE_OK;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *tx = emile_tensor(args, "x"), *tw = emile_tensor(args, "w");
    const emile_tensor_t *ty = emile_tensor(args, "y");
    int rc = check(tx, "x", 2);
    rc = rc ? rc : check(tw, "w", 1);
    rc = rc ? rc : check(ty, "y", 2);
    if (rc)
        return rc;
    const int64_t rows = tx->shape[0], cols = tx->shape[1];
    if (rows <= 0 || cols <= 0)
        return EMILE_ERR_PARAM;
    if (ty->shape[0] != rows || ty->shape[1] != cols || tw->shape[0] != cols)
        return EMILE_ERR_SHAPE;
    if (emile_param(args, "rows", (double)rows) != (double)rows ||
        emile_param(args, "cols", (double)cols) != (double)cols)
        return EMILE_ERR_SHAPE;
    const float eps = (float)emile_param(args, "eps", 1e-6);
    const float *x = tx->data, *w = tw->data;
    float *y = ty->data;
    const int64_t xr = tx->strides[0], xc = tx->strides[1], ws = tw->strides[0];
    const int64_t yr = ty->strides[0], yc = ty->strides[1];

    for (int64_t r = 0; r < rows; r++) {
        float ss = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            const float v = x[r * xr + c * xc];
            ss += v * v;
        }
        const float inv = 1.0f / sqrtf(ss / (float)cols + eps);
        for (int64_t c = 0; c < cols; c++)
            y[r * yr + c * yc] = x[r * xr + c * xc] * inv * w[c * ws];
    }
    return EMILE_OK;
}
