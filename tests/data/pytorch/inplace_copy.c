/* inplace_affine.py's op, wrong: out = x, which is what a kernel given the
 * input after the forward's in-place change would see as the answer. */
#include <stdint.h>
#include <string.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *x = emile_tensor(args, "x"), *o = emile_tensor(args, "out");
    if (!x || !o || x->dtype != EMILE_DTYPE_F32 || o->dtype != EMILE_DTYPE_F32)
        return EMILE_ERR_DTYPE;
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        n *= x->shape[d];
    memcpy(o->data, x->data, (size_t)n * sizeof(float));
    return 0;
}
