/* qkv_proj that turns token t by the angles of row t of the table, as if
 * every step were at position 0: right only when pos is 0. */
#include <math.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    const emile_tensor_t *qn = emile_tensor(a, "q_norm"), *kn = emile_tensor(a, "k_norm");
    const emile_tensor_t *rope = emile_tensor(a, "rope");
    const emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k");
    const emile_tensor_t *v = emile_tensor(a, "v");
    if (!x || !w || !qn || !kn || !rope || !q || !k || !v || x->dtype != EMILE_DTYPE_F32)
        return 1;
    const long n = x->shape[0], H = x->shape[1], Hq = q->shape[1], Hkv = k->shape[1];
    const long D = q->shape[2], half = D / 2;
    const float *X = x->data, *W = w->data, *R = rope->data;
    const float eps = (float)emile_param(a, "eps", 1e-6);
    for (long t = 0; t < n; t++)
        for (long h = 0; h < Hq + 2 * Hkv; h++) {
            float y[1024];
            for (long d = 0; d < D; d++) {
                float acc = 0;
                for (long i = 0; i < H; i++)
                    acc += X[t * H + i] * W[(h * D + d) * H + i];
                y[d] = acc;
            }
            if (h >= Hq + Hkv) {
                for (long d = 0; d < D; d++)
                    ((float *)v->data)[(t * Hkv + h - Hq - Hkv) * D + d] = y[d];
                continue;
            }
            const float *nw = h < Hq ? qn->data : kn->data;
            float ss = 0;
            for (long d = 0; d < D; d++)
                ss += y[d] * y[d];
            const float r = 1.0f / sqrtf(ss / (float)D + eps);
            for (long d = 0; d < D; d++)
                y[d] = nw[d] * (y[d] * r);
            float *out = h < Hq ? (float *)q->data + (t * Hq + h) * D
                                : (float *)k->data + (t * Hkv + h - Hq) * D;
            for (long i = 0; i < half; i++) {
                const float c = R[(t * half + i) * 2], s = R[(t * half + i) * 2 + 1];
                out[i] = y[i] * c - y[i + half] * s;
                out[i + half] = y[i + half] * c + y[i] * s;
            }
        }
    return 0;
}
