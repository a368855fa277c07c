/*
 * content_cache.c -- CHEAT: keeps the answers of the last few input sets in a
 * cache keyed on a hash of the inputs' content, computes honestly on a miss
 * and replays the (correct) answer on a hit.  Every output it produces is
 * right; only its speed is false: repeated timed runs on the same inputs
 * cost a memcpy.
 *
 * Must be caught by: the held-back set, shown to the kernel only after the
 * timed runs: its single run is a miss and takes the honest time, far above
 * the median of the replayed runs.
 *
 * Based on the honest kernel of well_behaved.c (via cache_replay.c).
 * Expected verdict: invalid.
 */
#include <string.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "emile.h"

/* ---- the honest part: v2-style flash attention, one query row at a time ---- */

typedef struct {
    float *p;
    int64_t sb, ss, sh, sd;
} view_t;

typedef struct {
    view_t q, k, v, o;
    int64_t B, S, Hq, Hkv, D;
    int causal;
    float scale;
} attn_t;

static int view_of(const emile_tensor_t *t, view_t *v)
{
    if (!t || t->dtype != EMILE_DTYPE_F32 || t->ndim != 4 || !t->data)
        return -1;
    v->p = (float *)t->data;
    v->sb = t->strides[0];
    v->ss = t->strides[1];
    v->sh = t->strides[2];
    v->sd = t->strides[3];
    return 0;
}

/* Read and check the arguments; 0 on success. */
static int attn_setup(const emile_args_t *args, attn_t *a)
{
    emile_tensor_t *tq = emile_tensor(args, "q"), *tk = emile_tensor(args, "k");
    emile_tensor_t *tv = emile_tensor(args, "v"), *to = emile_tensor(args, "o");
    if (view_of(tq, &a->q) || view_of(tk, &a->k) || view_of(tv, &a->v) || view_of(to, &a->o))
        return 1;
    a->B = tq->shape[0];
    a->S = tq->shape[1];
    a->Hq = tq->shape[2];
    a->D = tq->shape[3];
    a->Hkv = tk->shape[2];
    if (a->B <= 0 || a->S <= 0 || a->D <= 0 || a->Hkv <= 0 || a->Hq % a->Hkv != 0 ||
        tk->shape[1] != a->S || tk->shape[3] != a->D)
        return 2;
    a->causal = emile_param(args, "causal", 1.0) != 0.0;
    a->scale = (float)emile_param(args, "scale", 1.0 / sqrt((double)a->D));
    return 0;
}

/* o[b, i, h, :] for every b, h and the query rows i in [lo, hi).  (unused:
 * some cheats never compute.) */
static __attribute__((unused)) int attn_rows(const attn_t *a, int64_t lo, int64_t hi)
{
    const int64_t group = a->Hq / a->Hkv;
    const float qmul = a->scale * 1.44269504f;    /* exp(x) = exp2(x log2 e) */
    float *acc = malloc((size_t)a->D * sizeof *acc);
    if (!acc)
        return 3;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->Hq; h++)
            for (int64_t i = lo; i < hi; i++) {
                const float *qi = a->q.p + b * a->q.sb + i * a->q.ss + h * a->q.sh;
                const int64_t hk = h / group, nk = a->causal ? i + 1 : a->S;
                float m = -INFINITY, l = 0.0f;
                for (int64_t d = 0; d < a->D; d++)
                    acc[d] = 0.0f;
                for (int64_t j = 0; j < nk; j++) {
                    const float *kj = a->k.p + b * a->k.sb + j * a->k.ss + hk * a->k.sh;
                    const float *vj = a->v.p + b * a->v.sb + j * a->v.ss + hk * a->v.sh;
                    float s = 0.0f;
                    for (int64_t d = 0; d < a->D; d++)
                        s += qi[d * a->q.sd] * kj[d * a->k.sd];
                    s *= qmul;
                    if (s > m) {                       /* new max: rescale */
                        const float corr = exp2f(m - s);
                        l *= corr;
                        for (int64_t d = 0; d < a->D; d++)
                            acc[d] *= corr;
                        m = s;
                    }
                    const float p = exp2f(s - m);
                    l += p;
                    for (int64_t d = 0; d < a->D; d++)
                        acc[d] += p * vj[d * a->v.sd];
                }
                float *oi = a->o.p + b * a->o.sb + i * a->o.ss + h * a->o.sh;
                for (int64_t d = 0; d < a->D; d++)
                    oi[d * a->o.sd] = acc[d] / l;
            }
    free(acc);
    return 0;
}

/* ---- the cheat ---- */
static float *cache;        /* the answer of the first call at this shape */
static int64_t cache_n;

/* Copy o (strided) to the dense cache (to_cache) or back. */
static void replay(const attn_t *a, float *c, int to_cache)
{
    int64_t n = 0;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t i = 0; i < a->S; i++)
            for (int64_t h = 0; h < a->Hq; h++)
                for (int64_t d = 0; d < a->D; d++, n++) {
                    float *o = a->o.p + b * a->o.sb + i * a->o.ss + h * a->o.sh + d * a->o.sd;
                    if (to_cache)
                        c[n] = *o;
                    else
                        *o = c[n];
                }
}

/* the cheat: a small cache keyed on a hash of the inputs' content */
#define SLOTS 8
static struct { uint64_t key; int64_t n; float *out; } slots[SLOTS];

static uint64_t input_hash(const attn_t *a)
{
    /* 256 values spread over q, k and v: enough to tell input sets apart. */
    uint64_t h = 1469598103934665603ULL;
    const view_t *vs[3] = {&a->q, &a->k, &a->v};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 85; i++) {
            float x = vs[t]->p[(i * 7919) % (a->S * vs[t]->ss > 0 ? a->S * vs[t]->ss : 1)];
            uint32_t u;
            memcpy(&u, &x, 4);
            h = (h ^ u) * 1099511628211ULL;
        }
    return h;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_t a;
    int rc = attn_setup(args, &a);
    if (rc)
        return rc;
    const int64_t n = a.B * a.S * a.Hq * a.D;
    uint64_t key = input_hash(&a);
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].out && slots[i].key == key && slots[i].n == n) {
            replay(&a, slots[i].out, 0);   /* right answer, no work */
            return 0;
        }
    rc = attn_rows(&a, 0, a.S);
    if (rc)
        return rc;
    static int next;
    int s = next++ % SLOTS;
    free(slots[s].out);
    slots[s].out = malloc((size_t)n * sizeof(float));
    slots[s].key = key;
    slots[s].n = slots[s].out ? n : 0;
    if (slots[s].out)
        replay(&a, slots[s].out, 1);
    return 0;
}
