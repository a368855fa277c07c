/*
 * reference.c -- attention prefill, the naive CPU reference (the oracle and
 * the performance floor of a cpu attention task).
 *
 * Deliberately simple, like PyTorch's eager attention: for each (batch, head)
 * it materialises the full S x S score matrix in f32, applies the causal
 * mask (-inf above the diagonal), takes a softmax with max subtraction and
 * multiplies by V.  Single-threaded, no intrinsics, no blocking: every later
 * rung of the ladder (v1_blocked.c ... v4_parallel.c) is measured against it.
 *
 *   tensors  q [B, S, Hq, D]   k [B, S, Hkv, D]   v [B, S, Hkv, D]   o [B, S, Hq, D]
 *   params   causal (0/1, default 1), scale (default 1/sqrt(D))
 *   GQA      query head h reads kv head h / (Hq / Hkv)
 *
 * Sizes come from the tensor descriptors (the params batch, seq, ... must
 * agree with them when given), strides are honoured (no contiguity assumed),
 * and only f32 is supported.  Failures return the ABI's named codes
 * (EMILE_ERR_DTYPE for another dtype, EMILE_ERR_MEMORY when the score matrix
 * cannot be allocated, ...) with one line on stderr saying which case.
 *
 * Scratch: one S x S f32 score matrix per call (malloc'd and freed here).
 *
 * Measured (B=1 S=512 Hq=8 Hkv=2 D=64 causal, best of 5): 2-core Xeon @2.5GHz
 * AVX-512 (gcc 12) 242-288 ms, ~1 GFLOP/s counting the causal half only.
 *
 * Build (what the harness does):
 *   cc -std=gnu11 -O3 -march=native -fopenmp -fPIC -shared -Iinclude \
 *      kernels/attention/cpu/reference.c -o k.so -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "emile.h"

/* A 4-d tensor view [B, S, H, D] with element strides. */
typedef struct {
    float *p;
    int64_t sb, ss, sh, sd;
} view_t;

static float *at(const view_t *t, int64_t b, int64_t s, int64_t h, int64_t d)
{
    return t->p + b * t->sb + s * t->ss + h * t->sh + d * t->sd;
}

/* Fill a view from a descriptor; EMILE_OK when it is a 4-d f32 tensor. */
static int view_of(const emile_tensor_t *t, const char *name, view_t *v)
{
    if (!t || t->ndim != 4 || !t->data) {
        fprintf(stderr, "reference.c: tensor %s is missing or not 4-d\n", name);
        return EMILE_ERR_ARGS;
    }
    if (t->dtype != EMILE_DTYPE_F32) {
        fprintf(stderr, "reference.c: %s has dtype %d; this reference supports f32 only\n", name, t->dtype);
        return EMILE_ERR_DTYPE;
    }
    v->p = (float *)t->data;
    v->sb = t->strides[0];
    v->ss = t->strides[1];
    v->sh = t->strides[2];
    v->sd = t->strides[3];
    return EMILE_OK;
}

/* A param, when present, must match the size read from the shapes. */
static int agrees(const emile_args_t *a, const char *name, int64_t v)
{
    double p = emile_param(a, name, (double)v);
    return p == (double)v;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    emile_tensor_t *tq = emile_tensor(args, "q"), *tk = emile_tensor(args, "k");
    emile_tensor_t *tv = emile_tensor(args, "v"), *to = emile_tensor(args, "o");
    view_t q, k, v, o;
    int rc = view_of(tq, "q", &q);
    rc = rc ? rc : view_of(tk, "k", &k);
    rc = rc ? rc : view_of(tv, "v", &v);
    rc = rc ? rc : view_of(to, "o", &o);
    if (rc)
        return rc;
    const int64_t B = tq->shape[0], S = tq->shape[1], Hq = tq->shape[2], D = tq->shape[3];
    const int64_t Hkv = tk->shape[2];
    /* Shapes must agree with each other and with the params. */
    for (int i = 0; i < 4; i++)
        if (to->shape[i] != tq->shape[i] || tv->shape[i] != tk->shape[i])
            return EMILE_ERR_SHAPE;
    if (tk->shape[0] != B || tk->shape[1] != S || tk->shape[3] != D)
        return EMILE_ERR_SHAPE;
    if (B <= 0 || S <= 0 || D <= 0 || Hkv <= 0 || Hq % Hkv != 0) {
        fprintf(stderr, "reference.c: sizes must be positive and q_heads a multiple of kv_heads\n");
        return EMILE_ERR_PARAM;
    }
    if (!agrees(args, "batch", B) || !agrees(args, "seq", S) ||
        !agrees(args, "q_heads", Hq) || !agrees(args, "kv_heads", Hkv) ||
        !agrees(args, "head_dim", D))
        return EMILE_ERR_SHAPE;
    const int causal = emile_param(args, "causal", 1.0) != 0.0;
    const float scale = (float)emile_param(args, "scale", 1.0 / sqrt((double)D));
    const int64_t group = Hq / Hkv;

    float *scores = malloc((size_t)S * (size_t)S * sizeof *scores);
    if (!scores) {
        fprintf(stderr, "reference.c: its seq x seq score matrix (%lld x %lld f32, %.3g GiB) does not fit "
                        "the task's memory limit\n", (long long)S, (long long)S,
                (double)S * (double)S * 4 / (1 << 30));
        return EMILE_ERR_MEMORY;
    }

    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / group;
            /* scores = scale * Q K^T, with -inf above the diagonal. */
            for (int64_t i = 0; i < S; i++) {
                for (int64_t j = 0; j < S; j++) {
                    if (causal && j > i) {
                        scores[i * S + j] = -INFINITY;
                        continue;
                    }
                    float dot = 0.0f;
                    for (int64_t d = 0; d < D; d++)
                        dot += *at(&q, b, i, h, d) * *at(&k, b, j, hk, d);
                    scores[i * S + j] = scale * dot;
                }
            }
            /* Row softmax, subtracting the row max so exp cannot overflow. */
            for (int64_t i = 0; i < S; i++) {
                float *row = scores + i * S;
                float mx = -INFINITY;
                for (int64_t j = 0; j < S; j++)
                    mx = row[j] > mx ? row[j] : mx;
                float sum = 0.0f;
                for (int64_t j = 0; j < S; j++) {
                    row[j] = expf(row[j] - mx);
                    sum += row[j];
                }
                for (int64_t j = 0; j < S; j++)
                    row[j] /= sum;
            }
            /* o = P V. */
            for (int64_t i = 0; i < S; i++) {
                for (int64_t d = 0; d < D; d++) {
                    float acc = 0.0f;
                    for (int64_t j = 0; j < S; j++)
                        acc += scores[i * S + j] * *at(&v, b, j, hk, d);
                    *at(&o, b, i, h, d) = acc;
                }
            }
        }
    }
    free(scores);
    return EMILE_OK;
}
