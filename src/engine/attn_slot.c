/*
 * attn_slot.c -- the hot-swappable prefill attention (see attn_slot.h) and
 * the engine's built-in ABI attention kernel.
 */
#include "engine/attn_slot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void attn_slot_init_builtin(attn_slot_t *s)
{
    op_slot_init(s, ENGINE_OP_ATTENTION);
}

int attn_slot_load(attn_slot_t *s, const char *so_path, char *err, size_t errlen)
{
    s->op = ENGINE_OP_ATTENTION;
    return op_slot_load(s, so_path, err, errlen);
}

void attn_slot_close(attn_slot_t *s)
{
    s->op = ENGINE_OP_ATTENTION;
    op_slot_close(s);
}

static void dense_4d(emile_tensor_t *t, const char *name, float *data, int64_t s0,
                     int64_t s1, int64_t s2, int64_t s3, int64_t row_stride)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->name = name;
    t->dtype = EMILE_DTYPE_F32;
    t->ndim = 4;
    t->shape[0] = s0; t->shape[1] = s1; t->shape[2] = s2; t->shape[3] = s3;
    t->strides[3] = 1;
    t->strides[2] = s3;
    t->strides[1] = row_stride;
    t->strides[0] = row_stride * s1;
}

int attn_slot_run(attn_slot_t *s, float *q, float *k, float *v, float *o, int seq,
                  int q_heads, int kv_heads, int head_dim, long kv_stride)
{
    emile_tensor_t t[4];
    dense_4d(&t[0], "q", q, 1, seq, q_heads, head_dim, (int64_t)q_heads * head_dim);
    dense_4d(&t[1], "k", k, 1, seq, kv_heads, head_dim, kv_stride);
    dense_4d(&t[2], "v", v, 1, seq, kv_heads, head_dim, kv_stride);
    dense_4d(&t[3], "o", o, 1, seq, q_heads, head_dim, (int64_t)q_heads * head_dim);
    emile_param_t p[] = {
        { "batch", 1 }, { "seq", seq }, { "q_heads", q_heads }, { "kv_heads", kv_heads },
        { "head_dim", head_dim }, { "causal", 1 }, { "scale", 1.0 / sqrt((double)head_dim) },
    };
    emile_args_t a = {
        .abi_version = EMILE_ABI_VERSION, .n_tensors = 4, .tensors = t,
        .n_params = (int32_t)(sizeof p / sizeof p[0]), .params = p, .stream = NULL,
    };
    s->calls++;
    return s->fn(&a);
}

/* Address of element (b, i, h, d) of a 4-d f32 tensor. */
static inline float *at4(const emile_tensor_t *t, int64_t b, int64_t i, int64_t h, int64_t d)
{
    return (float *)t->data + b * t->strides[0] + i * t->strides[1] + h * t->strides[2] +
           d * t->strides[3];
}

int engine_attention_builtin(const emile_args_t *a)
{
    emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k");
    emile_tensor_t *v = emile_tensor(a, "v"), *o = emile_tensor(a, "o");
    if (!q || !k || !v || !o)
        return 1;
    emile_tensor_t *all[4] = { q, k, v, o };
    for (int i = 0; i < 4; i++)
        if (all[i]->dtype != EMILE_DTYPE_F32 || all[i]->ndim != 4)
            return 1;
    int64_t B = q->shape[0], S = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    int64_t Hkv = k->shape[2];
    if (Hkv <= 0 || Hq % Hkv != 0 || k->shape[1] != S || k->shape[3] != D)
        return 1;
    int causal = emile_param(a, "causal", 1) != 0;
    float scale = (float)emile_param(a, "scale", 1.0 / sqrt((double)D));
    int64_t group = Hq / Hkv;
    float *sc = malloc((size_t)S * sizeof *sc);
    if (!sc)
        return 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < S; i++) {
                const float *qi = at4(q, b, i, h, 0);
                int64_t jmax = causal ? i : S - 1;
                float mx = -INFINITY;
                for (int64_t j = 0; j <= jmax; j++) {
                    const float *kj = at4(k, b, j, h / group, 0);
                    float dot = 0.0f;
                    for (int64_t d = 0; d < D; d++)
                        dot += qi[d * q->strides[3]] * kj[d * k->strides[3]];
                    sc[j] = dot * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                float sum = 0.0f;
                for (int64_t j = 0; j <= jmax; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                for (int64_t d = 0; d < D; d++)
                    *at4(o, b, i, h, d) = 0.0f;
                for (int64_t j = 0; j <= jmax; j++) {
                    const float *vj = at4(v, b, j, h / group, 0);
                    float p = sc[j] / sum;
                    for (int64_t d = 0; d < D; d++)
                        *at4(o, b, i, h, d) += p * vj[d * v->strides[3]];
                }
            }
    free(sc);
    return 0;
}
