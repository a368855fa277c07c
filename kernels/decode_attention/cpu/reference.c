/*
 * reference.c -- decode attention, the naive CPU reference (oracle and floor
 * of a cpu decode_attention task; kernels/decode_attention/op.json).
 *
 *   tensors  q [Hq, D]   k, v [S, Hkv, D] (the cache)   kv_len [1] i32   o [Hq, D]
 *   params   q_heads, kv_heads, head_dim, seq
 *   o[h] = sum_{j < kv_len} softmax_j(q[h] . k[j, h/(Hq/Hkv)] / sqrt(D)) v[j, h/(Hq/Hkv)]
 *
 * One head at a time, single-threaded, no intrinsics: the scores of the
 * kv_len keys in a scratch row, their maximum, the exponentials and their
 * sum in double, then P.V.  f32 only; strides from the descriptors.
 * Returns 1 for a dtype or rank it does not take, 2 for shapes that
 * disagree, 3 for a kv_len outside [1, seq], 4 when out of memory.
 */
#include <math.h>
#include <stdlib.h>
#include "emile.h"

static int is_f32(const emile_tensor_t *t, int ndim)
{
    return t && t->dtype == EMILE_DTYPE_F32 && t->ndim == ndim && t->data;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k");
    const emile_tensor_t *v = emile_tensor(a, "v"), *len = emile_tensor(a, "kv_len");
    const emile_tensor_t *o = emile_tensor(a, "o");
    if (!is_f32(q, 2) || !is_f32(k, 3) || !is_f32(v, 3) || !is_f32(o, 2) || !len ||
        len->dtype != EMILE_DTYPE_I32 || !len->data)
        return 1;
    const int64_t Hq = q->shape[0], D = q->shape[1], S = k->shape[0], Hkv = k->shape[1];
    if (Hkv <= 0 || Hq % Hkv != 0 || k->shape[2] != D || v->shape[0] != S ||
        v->shape[1] != Hkv || v->shape[2] != D || o->shape[0] != Hq || o->shape[1] != D)
        return 2;
    const int64_t L = ((const int32_t *)len->data)[0];
    if (L < 1 || L > S)
        return 3;
    const double scale = 1.0 / sqrt((double)D);
    double *p = malloc((size_t)L * sizeof *p);
    if (!p)
        return 4;
    const float *Q = q->data, *K = k->data, *V = v->data;
    float *O = o->data;
    for (int64_t h = 0; h < Hq; h++) {
        const int64_t g = h / (Hq / Hkv);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < L; j++) {
            double dot = 0;
            for (int64_t d = 0; d < D; d++)
                dot += (double)Q[h * q->strides[0] + d * q->strides[1]] *
                       K[j * k->strides[0] + g * k->strides[1] + d * k->strides[2]];
            p[j] = dot * scale;
            if (p[j] > mx)
                mx = p[j];
        }
        for (int64_t j = 0; j < L; j++) {
            p[j] = exp(p[j] - mx);
            sum += p[j];
        }
        for (int64_t d = 0; d < D; d++) {
            double acc = 0;
            for (int64_t j = 0; j < L; j++)
                acc += p[j] * V[j * v->strides[0] + g * v->strides[1] + d * v->strides[2]];
            O[h * o->strides[0] + d * o->strides[1]] = (float)(acc / sum);
        }
    }
    free(p);
    return 0;
}
