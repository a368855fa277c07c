/*
 * no_running_max.c -- CHEAT (class: right only on the inputs' drawn range).
 * Attention whose softmax skips the running max: exp(score) straight, summed
 * and divided.  Fewer operations, and loops the compiler vectorises, so it
 * is faster than an honest kernel; and on inputs drawn near N(0, 1) every
 * score stays far below exp's range (about 88 in float32), so every element
 * is right.  On real activations (scores in the hundreds) it is Inf and NaN.
 *
 * Must be caught by: the small validation set, whose inputs are drawn 8x
 * wider than the others' (src/worker/task_state.h: TASK_WIDE_SCALE), which
 * puts scores past exp's range.
 * Expected verdict: invalid, the error naming the wider set.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *q = emile_tensor(args, "q"), *k = emile_tensor(args, "k"), *v = emile_tensor(args, "v"),
                         *o = emile_tensor(args, "o");
    if (!q || !k || !v || !o || q->dtype != EMILE_DTYPE_F32 || q->ndim != 4 || k->ndim != 4)
        return EMILE_ERR_ARGS;
    const int64_t B = q->shape[0], S = q->shape[1], Hq = q->shape[2], D = q->shape[3], Hkv = k->shape[2];
    const int causal = emile_param(args, "causal", 1.0) != 0.0;
    const float scale = (float)emile_param(args, "scale", 1.0 / sqrt((double)D));
    float *p = malloc((size_t)S * sizeof *p);
    if (!p)
        return EMILE_ERR_MEMORY;
    const float *Q = q->data, *K = k->data, *V = v->data;
    float *O = o->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < S; i++) {
                const float *qi = Q + b * q->strides[0] + i * q->strides[1] + h * q->strides[2];
                const int64_t hk = h / (Hq / Hkv), n = causal ? i + 1 : S;
                float sum = 0.0f;
                for (int64_t j = 0; j < n; j++) {             /* the cheat: no max, no rescale */
                    const float *kj = K + b * k->strides[0] + j * k->strides[1] + hk * k->strides[2];
                    float s = 0.0f;
                    for (int64_t d = 0; d < D; d++)
                        s += qi[d * q->strides[3]] * kj[d * k->strides[3]];
                    p[j] = expf(s * scale);
                    sum += p[j];
                }
                float *oi = O + b * o->strides[0] + i * o->strides[1] + h * o->strides[2];
                for (int64_t d = 0; d < D; d++) {
                    float acc = 0.0f;
                    for (int64_t j = 0; j < n; j++)
                        acc += p[j] * V[b * v->strides[0] + j * v->strides[1] + hk * v->strides[2] + d * v->strides[3]];
                    oi[d * o->strides[3]] = acc / sum;
                }
            }
    free(p);
    return 0;
}
