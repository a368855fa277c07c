/*
 * reference.c -- o_proj, the naive CPU reference (kernels/o_proj/op.json):
 * the attention output projection of a decode step.
 *
 *   tensors  x [n, q_dim]   w [hidden, q_dim]   y [n, hidden] f32
 *   params   n, hidden, q_dim
 *   y[t, o] = sum_i x[t, i] w[o, i]
 *
 * One output at a time, single-threaded, the sum in f32 in order (an eager
 * f32 framework's).  f32 only; strides honoured.  Returns 1 for a dtype or
 * rank it does not take, 2 for shapes that disagree.
 */
#include "emile.h"

static int is_f32(const emile_tensor_t *t)
{
    return t && t->dtype == EMILE_DTYPE_F32 && t->ndim == 2 && t->data;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    const emile_tensor_t *y = emile_tensor(a, "y");
    if (!is_f32(x) || !is_f32(w) || !is_f32(y))
        return 1;
    const int64_t n = x->shape[0], K = x->shape[1], M = w->shape[0];
    if (w->shape[1] != K || y->shape[0] != n || y->shape[1] != M)
        return 2;
    const float *X = x->data, *W = w->data;
    float *Y = y->data;
    for (int64_t t = 0; t < n; t++)
        for (int64_t o = 0; o < M; o++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < K; i++)
                acc += X[t * x->strides[0] + i * x->strides[1]] * W[o * w->strides[0] + i * w->strides[1]];
            Y[t * y->strides[0] + o * y->strides[1]] = acc;
        }
    return 0;
}
