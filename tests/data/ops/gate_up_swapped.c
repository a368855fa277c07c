/* gate_up with the halves of w swapped (silu of the up projection times
 * the gate): the stacking order of the op is part of its definition. */
#include <math.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    const emile_tensor_t *h = emile_tensor(a, "h");
    if (!x || !w || !h || x->dtype != EMILE_DTYPE_F32)
        return 1;
    const long n = x->shape[0], K = x->shape[1], I = h->shape[1];
    const float *X = x->data, *W = w->data;
    float *Hh = h->data;
    for (long t = 0; t < n; t++)
        for (long o = 0; o < I; o++) {
            float g = 0, u = 0;
            for (long i = 0; i < K; i++) {
                u += X[t * K + i] * W[o * K + i];
                g += X[t * K + i] * W[(I + o) * K + i];
            }
            Hh[t * I + o] = g / (1.0f + expf(-g)) * u;
        }
    return 0;
}
