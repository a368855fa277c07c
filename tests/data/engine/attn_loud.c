/* A wrong attention kernel that shouts: every output element is +-30, far
 * above what the residual stream carries, so the prefill's last hidden
 * state and the first generated token change.  The Tasting Room must
 * report the divergence. */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *o = emile_tensor(a, "o");
    if (!o || o->dtype != EMILE_DTYPE_F32)
        return 1;
    float *p = o->data;
    for (int64_t i = 0; i < o->shape[1]; i++)
        for (int64_t h = 0; h < o->shape[2]; h++)
            for (int64_t d = 0; d < o->shape[3]; d++)
                p[i * o->strides[1] + h * o->strides[2] + d * o->strides[3]] =
                    (d + h) % 2 ? 30.0f : -30.0f;
    return 0;
}
