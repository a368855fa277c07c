/* The fused_rows.py op in C: out0 = x * scale + y + bias, out1 = row sums. */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *y = emile_tensor(a, "y");
    const emile_tensor_t *bias = emile_tensor(a, "bias"), *scale = emile_tensor(a, "scale");
    const emile_tensor_t *o0 = emile_tensor(a, "out0"), *o1 = emile_tensor(a, "out1");
    if (!x || !y || !bias || !scale || !o0 || !o1 || x->dtype != EMILE_DTYPE_F32)
        return 1;
    const long rows = x->shape[0], f = x->shape[1];
    if ((long)emile_param(a, "rows", -1) != rows || (long)emile_param(a, "features", -1) != f)
        return 2;
    const float *X = x->data, *Y = y->data, *B = bias->data, *S = scale->data;
    float *O = o0->data, *R = o1->data;
    for (long r = 0; r < rows; r++) {
        double sum = 0;
        for (long c = 0; c < f; c++) {
            float v = X[r * f + c] * S[c] + Y[r * f + c] + B[c];
            O[r * f + c] = v;
            sum += v;
        }
        R[r] = (float)sum;
    }
    return 0;
}
