/* A deliberately wrong attention kernel for the engine's hot-swap test: it
 * writes zeros, so logits change when (and only when) the engine calls it. */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *o = emile_tensor(a, "o");
    if (!o || o->dtype != EMILE_DTYPE_F32)
        return 1;
    float *p = o->data;
    for (int64_t b = 0; b < o->shape[0]; b++)
        for (int64_t i = 0; i < o->shape[1]; i++)
            for (int64_t h = 0; h < o->shape[2]; h++)
                for (int64_t d = 0; d < o->shape[3]; d++)
                    p[b * o->strides[0] + i * o->strides[1] + h * o->strides[2] +
                      d * o->strides[3]] = 0.0f;
    return 0;
}
