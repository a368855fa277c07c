/* An lm_head kernel with the right logits and the wrong pick (the token
 * after the argmax): the engine must take the kernel's pick, so the
 * generation changes -- the slot's idx output is really used. */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    const emile_tensor_t *lg = emile_tensor(a, "logits"), *ix = emile_tensor(a, "idx");
    if (!x || !w || !lg || !ix || x->dtype != EMILE_DTYPE_F32)
        return 1;
    const int64_t n = x->shape[0], K = x->shape[1], V = w->shape[0];
    const float *X = x->data, *W = w->data;
    float *L = lg->data;
    for (int64_t t = 0; t < n; t++) {
        int64_t best = 0;
        for (int64_t o = 0; o < V; o++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < K; i++)
                acc += X[t * K + i] * W[o * K + i];
            L[t * V + o] = acc;
            if (acc > L[t * V + best])
                best = o;
        }
        ((int32_t *)ix->data)[t] = (int32_t)((best + 1) % V);
    }
    return 0;
}
