/* A correct attention kernel written differently from the engine's own
 * (one pass, online softmax, double accumulators), to check that a
 * hot-swapped kernel gives the engine the same logits. */
#include <math.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k");
    emile_tensor_t *v = emile_tensor(a, "v"), *o = emile_tensor(a, "o");
    if (!q || !k || !v || !o || q->dtype != EMILE_DTYPE_F32)
        return 1;
    int64_t S = q->shape[1], Hq = q->shape[2], D = q->shape[3], g = Hq / k->shape[2];
    double scale = emile_param(a, "scale", 0.0);
    if (D > 256 || scale <= 0.0)
        return 1;
    const float *Q = q->data, *K = k->data, *V = v->data;
    float *O = o->data;
    for (int64_t h = 0; h < Hq; h++)
        for (int64_t i = 0; i < S; i++) {
            double m = -INFINITY, l = 0.0, acc[256] = { 0 };
            const float *qi = Q + i * q->strides[1] + h * q->strides[2];
            for (int64_t j = 0; j <= i; j++) {
                const float *kj = K + j * k->strides[1] + (h / g) * k->strides[2];
                const float *vj = V + j * v->strides[1] + (h / g) * v->strides[2];
                double s = 0.0;
                for (int64_t d = 0; d < D; d++)
                    s += (double)qi[d] * kj[d];
                s *= scale;
                double m2 = s > m ? s : m, c = exp(m - m2), p = exp(s - m2);
                l = l * c + p;
                for (int64_t d = 0; d < D; d++)
                    acc[d] = acc[d] * c + p * vj[d];
                m = m2;
            }
            float *oi = O + i * o->strides[1] + h * o->strides[2];
            for (int64_t d = 0; d < D; d++)
                oi[d] = (float)(acc[d] / l);
        }
    return 0;
}
