/*
 * anon_exec_code.c -- EVASION (class: code that escapes the check for newly
 * loaded code).  Its constructor copies a function of its own into
 * anonymous memory and makes it executable (mmap, then mprotect), before
 * the runner's filter on executable mappings goes on: code that no file
 * backs, which the runner's scan of file mappings never sees.  Each call
 * runs the copy (here an honest helper; it could be anything fetched or
 * built at load time).
 *
 * Must be caught by: PROT_EXEC on anonymous memory (mmap and mprotect)
 * forbidden from before the kernel is loaded, and a scan for anonymous
 * executable mappings after loading.
 * Expected verdict: crashed ("mmap" or "mprotect").
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* ---- the evasion -------------------------------------------------------- */

/* Position-independent and self-contained: safe to run from a copy. */
__attribute__((noinline, noipa)) static int plus_one(int x)
{
    return x + 1;
}

static int (*g_copy)(int);

__attribute__((constructor)) static void load_code(void)
{
    uint8_t *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return;
    memcpy(mem, (const void *)plus_one, 64);
    if (mprotect(mem, 4096, PROT_READ | PROT_EXEC) == 0)
        g_copy = (int (*)(int))(void *)mem;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_t a;
    int rc = attn_setup(args, &a);
    if (rc)
        return rc;
    if (!g_copy || g_copy(41) != 42)
        return 9;
    return attn_rows(&a, 0, a.S);
}
