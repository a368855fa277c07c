/*
 * reference.c -- the decode step's QKV projection with the per-head q/k
 * RMSNorm and RoPE, the naive CPU reference (kernels/qkv_proj/op.json).
 *
 *   tensors  x [n, H]  w [(Hq + 2 Hkv) D, H]  q_norm, k_norm [D]
 *            rope [R, D/2, 2] f32 (cos, sin)  pos [1] i32
 *            q [n, Hq, D]  k, v [n, Hkv, D]
 *   params   n, hidden, q_heads, kv_heads, head_dim, rope_rows, eps
 *   qkv[t] = x[t] w^T = [q heads | k heads | v heads];  for the q and k heads
 *   y = x / sqrt(mean(x^2) + eps) * norm, then y'[i] = y[i] c - y[i+D/2] s,
 *   y'[i+D/2] = y[i+D/2] c + y[i] s with (c, s) = rope[pos[0] + t, i].
 *
 * One output at a time, single-threaded, the dot products in f32 in order
 * (an eager f32 framework's), the norms in f32 like the engine's.  f32 only;
 * strides honoured.  Returns 1 for a dtype or rank it does not take, 2 for
 * shapes that disagree, 3 for a position outside the table.
 */
#include <math.h>
#include "emile.h"

static int is_dt(const emile_tensor_t *t, int dt, int ndim)
{
    return t && t->dtype == dt && t->ndim == ndim && t->data;
}

/* Element e of row r (2-d) or of (t, head, d) (3-d): the caller's strides. */
#define AT2(t, r, c) (((float *)(t)->data)[(r) * (t)->strides[0] + (c) * (t)->strides[1]])
#define AT3(t, a, b, c) (((float *)(t)->data)[(a) * (t)->strides[0] + (b) * (t)->strides[1] + \
                                             (c) * (t)->strides[2]])

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    const emile_tensor_t *qn = emile_tensor(a, "q_norm"), *kn = emile_tensor(a, "k_norm");
    const emile_tensor_t *rope = emile_tensor(a, "rope"), *pos = emile_tensor(a, "pos");
    const emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k");
    const emile_tensor_t *v = emile_tensor(a, "v");
    if (!is_dt(x, EMILE_DTYPE_F32, 2) || !is_dt(w, EMILE_DTYPE_F32, 2) ||
        !is_dt(qn, EMILE_DTYPE_F32, 1) || !is_dt(kn, EMILE_DTYPE_F32, 1) ||
        !is_dt(rope, EMILE_DTYPE_F32, 3) || !is_dt(pos, EMILE_DTYPE_I32, 1) ||
        !is_dt(q, EMILE_DTYPE_F32, 3) || !is_dt(k, EMILE_DTYPE_F32, 3) ||
        !is_dt(v, EMILE_DTYPE_F32, 3))
        return 1;
    const int64_t n = x->shape[0], H = x->shape[1], Hq = q->shape[1], Hkv = k->shape[1];
    const int64_t D = q->shape[2], half = D / 2, R = rope->shape[0];
    if (D % 2 || w->shape[0] != (Hq + 2 * Hkv) * D || w->shape[1] != H || q->shape[0] != n ||
        k->shape[0] != n || v->shape[0] != n || v->shape[1] != Hkv || k->shape[2] != D ||
        v->shape[2] != D || qn->shape[0] != D || kn->shape[0] != D || rope->shape[1] != half ||
        rope->shape[2] != 2)
        return 2;
    const int64_t p0 = ((const int32_t *)pos->data)[0];
    if (p0 < 0 || p0 + n > R)
        return 3;
    const float eps = (float)emile_param(a, "eps", 1e-6);
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < Hq + 2 * Hkv; h++) {
            float y[1024];                       /* one head, D <= 1024 */
            if (D > 1024)
                return 2;
            for (int64_t d = 0; d < D; d++) {
                float acc = 0.0f;
                for (int64_t i = 0; i < H; i++)
                    acc += AT2(x, t, i) * AT2(w, h * D + d, i);
                y[d] = acc;
            }
            if (h >= Hq + Hkv) {                 /* v: as projected */
                for (int64_t d = 0; d < D; d++)
                    AT3(v, t, h - Hq - Hkv, d) = y[d];
                continue;
            }
            const emile_tensor_t *nw = h < Hq ? qn : kn;
            float ss = 0.0f;
            for (int64_t d = 0; d < D; d++)
                ss += y[d] * y[d];
            const float r = 1.0f / sqrtf(ss / (float)D + eps);
            for (int64_t d = 0; d < D; d++)
                y[d] = ((float *)nw->data)[d * nw->strides[0]] * (y[d] * r);
            for (int64_t i = 0; i < half; i++) {
                const float c = AT3(rope, p0 + t, i, 0), s = AT3(rope, p0 + t, i, 1);
                const float lo = y[i], hi = y[i + half];
                if (h < Hq) {
                    AT3(q, t, h, i) = lo * c - hi * s;
                    AT3(q, t, h, i + half) = hi * c + lo * s;
                } else {
                    AT3(k, t, h - Hq, i) = lo * c - hi * s;
                    AT3(k, t, h - Hq, i + half) = hi * c + lo * s;
                }
            }
        }
    return 0;
}
