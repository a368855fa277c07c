/* Decode attention over every row of the cache instead of the first
 * kv_len: right when the cache is full, wrong otherwise -- the op's kv_len
 * is drawn below seq, so validation must catch it. */
#include <math.h>
#include <stdlib.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k");
    const emile_tensor_t *v = emile_tensor(a, "v"), *o = emile_tensor(a, "o");
    if (!q || !k || !v || !o || q->dtype != EMILE_DTYPE_F32)
        return 1;
    const long Hq = q->shape[0], D = q->shape[1], L = k->shape[0], Hkv = k->shape[1];
    double *p = malloc((size_t)L * sizeof *p);
    if (!p)
        return 4;
    const float *Q = q->data, *K = k->data, *V = v->data;
    float *O = o->data;
    for (long h = 0; h < Hq; h++) {
        long g = h / (Hq / Hkv);
        double mx = -INFINITY, sum = 0;
        for (long j = 0; j < L; j++) {
            double dot = 0;
            for (long d = 0; d < D; d++)
                dot += (double)Q[h * D + d] * K[(j * Hkv + g) * D + d];
            p[j] = dot / sqrt((double)D);
            mx = p[j] > mx ? p[j] : mx;
        }
        for (long j = 0; j < L; j++)
            sum += p[j] = exp(p[j] - mx);
        for (long d = 0; d < D; d++) {
            double acc = 0;
            for (long j = 0; j < L; j++)
                acc += p[j] * V[(j * Hkv + g) * D + d];
            O[h * D + d] = (float)(acc / sum);
        }
    }
    free(p);
    return 0;
}
