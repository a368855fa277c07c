/* nonpersistent_mask.py's op: out[r, c] = x[r, c] * scale[c] * mask[c]. */
#include <stdint.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *x = emile_tensor(args, "x"), *s = emile_tensor(args, "scale"),
                         *m = emile_tensor(args, "mask"), *o = emile_tensor(args, "out");
    if (!x || !s || !m || !o || x->dtype != EMILE_DTYPE_F32 || x->ndim != 2)
        return EMILE_ERR_ARGS;
    const int64_t rows = x->shape[0], cols = x->shape[1];
    const float *xs = x->data, *ss = s->data, *ms = m->data;
    float *os = o->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            os[r * cols + c] = xs[r * cols + c] * ss[c] * ms[c];
    return 0;
}
