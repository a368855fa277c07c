/* attention.c -- the attention prefill op (see include/emile.h for the
 * contract): q [B,S,Hq,D], k/v [B,S,Hkv,D] -> o [B,S,Hq,D], causal optional,
 * grouped-query heads.
 *
 * FLOPs follow the convention of FlashAttention's and PyTorch's benchmarks,
 * so our figures compare with theirs: 4*B*Hq*S*S*D (two matrix products),
 * halved when causal. */
#include "../op.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int attention_check(const op_params_t *p, char *err, size_t errlen)
{
    double hq = op_param_get(p, "q_heads", 0), hkv = op_param_get(p, "kv_heads", 0);
    double causal = op_param_get(p, "causal", 0);
    if (hkv < 1 || hq < 1) {
        snprintf(err, errlen, "q_heads (%g) and kv_heads (%g) must be positive", hq, hkv);
        return -1;
    }
    if (fmod(hq, hkv) != 0) {
        snprintf(err, errlen, "q_heads (%g) must be a multiple of kv_heads (%g) for grouped-query attention",
                 hq, hkv);
        return -1;
    }
    if (causal != 0 && causal != 1) {
        snprintf(err, errlen, "causal must be 0 or 1 (got %g)", causal);
        return -1;
    }
    if (!(op_param_get(p, "scale", 0) > 0)) {
        snprintf(err, errlen, "scale must be positive");
        return -1;
    }
    return 0;
}

static void attention_derive(op_params_t *p)
{
    /* 0 (the default) means "derive"; a negative scale is an error that
     * attention_check reports. */
    double scale = op_param_get(p, "scale", 0);
    double d = op_param_get(p, "head_dim", 0);
    if (scale == 0 && d > 0)
        op_param_set(p, "scale", 1.0 / sqrt(d));
}

/* float64 oracle: tensors in op order q, k, v, o, dense row-major. */
static int attention_eval_f64(const op_t *op, const op_params_t *p, double *const *t)
{
    (void)op;
    int64_t B = (int64_t)op_param_get(p, "batch", 0), S = (int64_t)op_param_get(p, "seq", 0);
    int64_t Hq = (int64_t)op_param_get(p, "q_heads", 0), Hkv = (int64_t)op_param_get(p, "kv_heads", 0);
    int64_t D = (int64_t)op_param_get(p, "head_dim", 0);
    int causal = op_param_get(p, "causal", 0) != 0;
    double scale = op_param_get(p, "scale", 1.0 / sqrt((double)D));
    const double *q = t[0], *k = t[1], *v = t[2];
    double *o = t[3];
    double *s = malloc(sizeof(double) * (size_t)S);
    if (!s)
        return -1;
    int64_t group = Hq / Hkv;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            int64_t hk = h / group;
            for (int64_t i = 0; i < S; i++) {
                const double *qi = q + ((b * S + i) * Hq + h) * D;
                int64_t n = causal ? i + 1 : S;
                double m = -INFINITY;
                for (int64_t j = 0; j < n; j++) {
                    const double *kj = k + ((b * S + j) * Hkv + hk) * D;
                    double acc = 0;
                    for (int64_t d = 0; d < D; d++)
                        acc += qi[d] * kj[d];
                    s[j] = acc * scale;
                    if (s[j] > m) m = s[j];
                }
                double sum = 0;
                for (int64_t j = 0; j < n; j++) {
                    s[j] = exp(s[j] - m);
                    sum += s[j];
                }
                double *oi = o + ((b * S + i) * Hq + h) * D;
                for (int64_t d = 0; d < D; d++)
                    oi[d] = 0;
                for (int64_t j = 0; j < n; j++) {
                    const double *vj = v + ((b * S + j) * Hkv + hk) * D;
                    double w = s[j] / sum;
                    for (int64_t d = 0; d < D; d++)
                        oi[d] += w * vj[d];
                }
            }
        }
    free(s);
    return 0;
}

const op_t op_attention = {
    .name = "attention",
    .description = "attention prefill: o = softmax(scale * q k^T [causal mask]) v, grouped-query heads",
    .n_tensors = 4,
    .tensors = {
        {.name = "q", .ndim = 4, .shape = {"batch", "seq", "q_heads", "head_dim"}, .dtype = -1},
        {.name = "k", .ndim = 4, .shape = {"batch", "seq", "kv_heads", "head_dim"}, .dtype = -1},
        {.name = "v", .ndim = 4, .shape = {"batch", "seq", "kv_heads", "head_dim"}, .dtype = -1},
        {.name = "o", .is_output = 1, .ndim = 4, .shape = {"batch", "seq", "q_heads", "head_dim"}, .dtype = -1},
    },
    .defaults = {.n = 7,
                 .names = {"batch", "seq", "q_heads", "kv_heads", "head_dim", "causal", "scale"},
                 .values = {1, 512, 8, 2, 64, 1, 0}},
    .flops_expr = "4*batch*q_heads*seq*seq*head_dim / (causal ? 2 : 1)",
    .bytes_expr = "elem*batch*seq*head_dim*(2*q_heads + 2*kv_heads)",
    .n_vary = 2,
    .vary = {"seq", "batch"},
    .eval_f64 = attention_eval_f64,
    .check_params = attention_check,
    .derive_params = attention_derive,
    .builtin = 1,
};
