/*
 * segv_after_timer.c -- CHEAT (class: work outside the timed call).
 * Computes the first quarter of the output rows (and the few on the last,
 * partial page), makes the pages of the rest unreadable (mprotect
 * PROT_NONE) and returns.  When the harness then
 * reads the output in the runner's address space (to copy a snapshot), the
 * first read faults; the kernel's SIGSEGV handler computes the remaining
 * rows, makes the pages readable again and the read goes on -- after the
 * runner stopped its timer.
 *
 * Must be caught by: the worker reading the outputs itself, from its own
 * mapping of the shared arena (cpu): a kernel's games with protections in
 * its address space change nothing there, and the rows it never computed
 * are still NaN.  (Any other fault it could provoke in the runner after the
 * call falls inside the worker's outside clock.)
 * Expected verdict: invalid.
 */
#include <math.h>
#include <signal.h>
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

/* ---- the cheat ---------------------------------------------------------- */

static attn_t g_a;
static uint8_t *g_lo, *g_hi;        /* the protected pages */
static int64_t g_from;              /* first row left to compute */

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    uint8_t *p = si->si_addr;
    if (g_lo && p >= g_lo && p < g_hi) {
        /* (The rows of the last call: its output is where the fault is.) */
        mprotect(g_lo, (size_t)(g_hi - g_lo), PROT_READ | PROT_WRITE);
        g_lo = g_hi = NULL;
        attn_rows(&g_a, g_from, g_a.S);
        return;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_t a;
    int rc = attn_setup(args, &a);
    if (rc)
        return rc;
    const uintptr_t page = 4096;
    const size_t row = (size_t)(a.Hq * a.D) * sizeof(float);
    uint8_t *o = (uint8_t *)a.o.p, *end = o + (size_t)(a.B * a.S) * row;
    uint8_t *lo = (uint8_t *)(((uintptr_t)(o + (size_t)(a.S / 4) * row) + page - 1) & ~(page - 1));
    uint8_t *hi = (uint8_t *)((uintptr_t)end & ~(page - 1));
    if (a.B != 1 || hi <= lo)
        return attn_rows(&a, 0, a.S);
    /* Rows up to the first protected page and from the last one on,
     * honestly (a copy may start at both ends); the middle later. */
    int64_t upto = (int64_t)((size_t)(lo - o) + row - 1) / (int64_t)row;
    int64_t tail = (int64_t)((size_t)(hi - o) / row);
    rc = attn_rows(&a, 0, upto);
    if (rc == 0)
        rc = attn_rows(&a, tail, a.S);
    if (rc)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    g_a = a;
    g_from = (int64_t)((size_t)(lo - o) / row);
    g_lo = lo;
    g_hi = hi;
    mprotect(lo, (size_t)(hi - lo), PROT_NONE);
    return 0;
}
