/* scalar_mul.py's op: C = A * s, s the one element of a [1] f32 tensor. */
#include <stdint.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *a = emile_tensor(args, "A"), *s = emile_tensor(args, "s"), *o = emile_tensor(args, "out");
    if (!a || !s || !o || a->dtype != EMILE_DTYPE_F32 || s->dtype != EMILE_DTYPE_F32 || s->ndim != 1 ||
        s->shape[0] != 1)
        return EMILE_ERR_ARGS;
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++)
        n *= a->shape[d];
    const float k = *(const float *)s->data, *as = a->data;
    float *os = o->data;
    for (int64_t i = 0; i < n; i++)
        os[i] = as[i] * k;
    return 0;
}
