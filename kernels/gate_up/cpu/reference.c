/*
 * reference.c -- gate_up, the naive CPU reference (kernels/gate_up/op.json):
 * the MLP's gate and up projections with SwiGLU, for a decode step.
 *
 *   tensors  x [n, hidden]   w [2 inter, hidden] (gate rows, then up rows)
 *            h [n, inter]
 *   params   n, hidden, inter
 *   g = x wg^T, u = x wu^T;  h = silu(g) * u = g / (1 + exp(-g)) * u
 *
 * One output at a time, single-threaded, the sums in f32 in order.  f32
 * only; strides honoured.  Returns 1 for a dtype or rank it does not take,
 * 2 for shapes that disagree.
 */
#include <math.h>
#include "emile.h"

static int is_f32(const emile_tensor_t *t)
{
    return t && t->dtype == EMILE_DTYPE_F32 && t->ndim == 2 && t->data;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    const emile_tensor_t *h = emile_tensor(a, "h");
    if (!is_f32(x) || !is_f32(w) || !is_f32(h))
        return 1;
    const int64_t n = x->shape[0], K = x->shape[1], I = h->shape[1];
    if (w->shape[0] != 2 * I || w->shape[1] != K || h->shape[0] != n)
        return 2;
    const float *X = x->data, *W = w->data;
    float *Hh = h->data;
    for (int64_t t = 0; t < n; t++)
        for (int64_t o = 0; o < I; o++) {
            float g = 0.0f, u = 0.0f;
            for (int64_t i = 0; i < K; i++) {
                const float xi = X[t * x->strides[0] + i * x->strides[1]];
                g += xi * W[o * w->strides[0] + i * w->strides[1]];
                u += xi * W[(I + o) * w->strides[0] + i * w->strides[1]];
            }
            Hh[t * h->strides[0] + o * h->strides[1]] = g / (1.0f + expf(-g)) * u;
        }
    return 0;
}
