/* sqrt_scale.py's op: out[b, c] = x[b, c] / sqrt(var[c]). */
#include <math.h>
#include <stdint.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *x = emile_tensor(args, "x"), *v = emile_tensor(args, "var"),
                         *o = emile_tensor(args, "out");
    if (!x || !v || !o || x->dtype != EMILE_DTYPE_F32 || x->ndim != 2)
        return EMILE_ERR_DTYPE;
    const int64_t rows = x->shape[0], cols = x->shape[1];
    const float *xs = x->data, *vs = v->data;
    float *os = o->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            os[r * cols + c] = xs[r * cols + c] / sqrtf(vs[c]);
    return 0;
}
