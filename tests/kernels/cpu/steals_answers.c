/*
 * steals_answers.c -- CHEAT (class: the candidate's process holds the
 * answers).  At each call it copies every 256-byte block of the runner's
 * shared arena (the "emile-arena" mapping in /proc/self/maps) that holds no
 * word of the harness's NaN poison.  Whatever the worker put into the
 * candidate's arena besides the inputs -- the expected outputs of the sets
 * it has not been run on yet -- is kept.  It computes the first set
 * honestly; on the next two (the ragged and small validation sets) it
 * computes nothing and writes what it kept of their output ranges, if one
 * honestly computed row agrees with it; finding nothing, it writes nothing.
 * Later calls compute honestly (it is no faster: only the validation is
 * fooled, which is the point: a kernel that cannot compute a set passes it).
 *
 * Must be caught by: the candidate's arena never holding anything but its
 * inputs, its own outputs and guard bytes (outputs poisoned, never copied
 * from the reference): it finds nothing, and the ragged set's output is NaN.
 * Expected verdict: invalid ("NaN/Inf or unwritten").
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- the cheat ---------------------------------------------------------- */

#define BLOCK 256     /* tensors start on 256-byte boundaries */

static uint8_t *g_arena, *g_kept;
static size_t g_len;
static int g_calls;

static int has_poison(const uint8_t *p)
{
    for (int i = 0; i < BLOCK; i += 8)
        if (*(const uint64_t *)(p + i) == UINT64_MAX)
            return 1;
    return 0;
}

static void find_arena(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (strstr(line, "emile-arena") && sscanf(line, "%lx-%lx", &a, &b) == 2) {
            g_arena = (uint8_t *)a;
            g_len = b - a;
        }
    }
    if (f)
        fclose(f);
    if (g_arena)
        g_kept = calloc(1, g_len);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_t a;
    int rc = attn_setup(args, &a);
    if (rc)
        return rc;
    int call = ++g_calls;
    if (!g_arena)
        find_arena();
    uint8_t *o = (uint8_t *)a.o.p;
    size_t bytes = (size_t)(a.B * a.S * a.Hq * a.D) * sizeof(float);
    if (!g_kept || o < g_arena || o + bytes > g_arena + g_len)
        return call == 1 || call > 3 ? attn_rows(&a, 0, a.S) : 0;
    for (size_t off = 0; off + BLOCK <= g_len; off += BLOCK)
        if (!has_poison(g_arena + off))
            memcpy(g_kept + off, g_arena + off, BLOCK);
    if (call == 1 || call > 3)
        return attn_rows(&a, 0, a.S);
    /* The ragged and small sets: what was kept, if one row agrees. */
    const float *kept = (const float *)(g_kept + (o - g_arena));
    int64_t last = a.S - 1;
    rc = attn_rows(&a, last, a.S);
    if (rc)
        return rc;
    size_t row = (size_t)(a.Hq * a.D), at = (size_t)last * row;
    for (size_t i = 0; i < row; i++)
        if (!(fabsf(kept[at + i] - a.o.p[at + i]) <= 1e-5f * (1.0f + fabsf(a.o.p[at + i]))))
            return 0;       /* nothing found: nothing written */
    memcpy(o, kept, bytes);
    return 0;
}
