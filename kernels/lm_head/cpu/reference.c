/*
 * reference.c -- lm_head, the naive CPU reference (kernels/lm_head/op.json):
 * a decode step's logits and greedy pick.
 *
 *   tensors  x [n, hidden]   w [vocab, hidden]   logits [n, vocab] f32
 *            idx [n] i32
 *   params   n, hidden, vocab
 *   logits[t, o] = sum_i x[t, i] w[o, i];  idx[t] = the first o with the
 *   largest logits[t, o]
 *
 * One output at a time, single-threaded, the sums in f32 in order.  f32
 * only; strides honoured.  Returns 1 for a dtype or rank it does not take,
 * 2 for shapes that disagree.
 */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    const emile_tensor_t *lg = emile_tensor(a, "logits"), *ix = emile_tensor(a, "idx");
    if (!x || !w || !lg || !ix || x->dtype != EMILE_DTYPE_F32 || w->dtype != EMILE_DTYPE_F32 ||
        lg->dtype != EMILE_DTYPE_F32 || ix->dtype != EMILE_DTYPE_I32 || x->ndim != 2 ||
        w->ndim != 2 || lg->ndim != 2 || ix->ndim != 1)
        return 1;
    const int64_t n = x->shape[0], K = x->shape[1], V = w->shape[0];
    if (w->shape[1] != K || lg->shape[0] != n || lg->shape[1] != V || ix->shape[0] != n)
        return 2;
    const float *X = x->data, *W = w->data;
    float *L = lg->data;
    int32_t *I = ix->data;
    for (int64_t t = 0; t < n; t++) {
        int64_t best = 0;
        float bv = 0.0f;
        for (int64_t o = 0; o < V; o++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < K; i++)
                acc += X[t * x->strides[0] + i * x->strides[1]] * W[o * w->strides[0] + i * w->strides[1]];
            L[t * lg->strides[0] + o * lg->strides[1]] = acc;
            if (o == 0 || acc > bv) {
                bv = acc;
                best = o;
            }
        }
        I[t * ix->strides[0]] = (int32_t)best;
    }
    return 0;
}
