/*
 * v4_parallel.c -- attention prefill, rung 4 of the builtin agent's CPU
 * ladder: v3's SIMD flash attention on every core (OpenMP), with a schedule
 * that balances causal work and GQA packing.
 *
 * Idea: v3 leaves all cores but one idle.  Work is cut into items of (batch,
 * kv head, query block) and spread with OpenMP:
 *  - causal balance: the query block at position i0 does ~(i0 + BQ) / BK
 *    key tiles, so equal-count static chunks leave the thread holding the
 *    last blocks working alone.  EMILE_SCHEDULE picks static (0), dynamic
 *    in natural order (1), or dynamic longest-first (2: items sorted by
 *    descending cost, LPT, so the short tail items fill the gaps at the end);
 *  - GQA packing (EMILE_GQA_PACK=1): the Hq/Hkv query heads that share a kv
 *    head are stacked into one item of group*BQ rows, so each K/V tile is
 *    brought into L1/L2 once for all of them instead of once per head (with
 *    0 an item is one query head, and items are group times more numerous);
 *  - packing of K^T tiles and V rows (see v3) is itself a parallel loop over
 *    (batch, kv head, tile), done once per call before the attention loop.
 * Per thread scratch (query rows, accumulators, score tile) is allocated by
 * the thread itself, so its pages are first touched by the core that uses it.
 *
 * Expected gain over v3: ~Ncores x when balanced (1.7-1.95x on 2 cores).
 * Diagnosis it answers: single_threaded, load_imbalance.  Profile should
 * show parallelism ~Ncores; what remains is compute_bound / near_roofline,
 * and the knobs are BK, RM, NR, VEC_BYTES (as in v3) and BQ (smaller BQ =
 * more items = better balance; larger BQ = more K/V reuse).
 *
 * Parameters (the agent prepends #define lines; defaults below):
 *   EMILE_BQ        query rows per block (per head) 8, 16, 32, 64, 128 (default 32)
 *   EMILE_BK        keys per tile (rounded up to a multiple of the vector
 *                   width)                          16, 32, 64, 128, 256 (default 64)
 *   EMILE_RM        query rows per register tile    1, 2, 4, 6, 8   (default 4)
 *   EMILE_NR        vectors per register tile       1, 2, 4, 8      (default 4)
 *   EMILE_VEC_BYTES vector width in bytes           16, 32, 64      (default native)
 *   EMILE_THREADS   OpenMP threads, 0 = all         0, 1, 2, 4, ... (default 0)
 *   EMILE_SCHEDULE  0 static, 1 dynamic, 2 dynamic longest-first (default 2)
 *   EMILE_GQA_PACK  stack the query heads of a kv head: 0, 1     (default 1)
 *
 * Measured (B=1 S=512 Hq=8 Hkv=2 D=64 causal f32, best of 41 runs):
 *   2-core Xeon @2.5GHz AVX-512 (KVM, shared with other work, so two-thread
 *     runs are noisy; medians 15-40% above these): defaults 3.1 ms
 *     (86 GFLOP/s, 92x the reference); BK=128 2.2 ms (123 GFLOP/s, 132x,
 *     ~50% of the measured 240 GFLOP/s FMA peak); BQ=16 2.8 ms; SCHEDULE=1
 *     2.6 ms; THREADS=1 4.3 ms; RM=1 5.0 ms; VEC_BYTES=32 5.1 ms.
 *   16-core Xeon, 2 pinned cores, gcc 13: defaults 1.98 ms (135 GFLOP/s,
 *     108x); BK=128,BQ=64 1.45 ms (185 GFLOP/s, 147x); THREADS=1 3.5 ms.
 *   Same host, 16 threads: defaults 0.41 ms (657 GFLOP/s).  At S=2048 Hq=32
 *     Hkv=8 D=128 causal: longest-first 32 ms (1064 GFLOP/s, 83% of the
 *     measured 1288 GFLOP/s peak) against static 75 ms (456 GFLOP/s): the
 *     schedule matters once each thread has few items of unequal cost.
 *
 * Correct for any S (ragged tails), B, causal or not, GQA, any head_dim and
 * any strides; f32 only.  Scratch per call: packed K and V of every (batch,
 * kv head) (2 * B * Hkv * S * Dp floats, rounded up to a tile), the item
 * order, and per thread group*BQ * (D + Dp + VL + 1) + RM * BK floats.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "emile.h"

#ifndef EMILE_BQ
#define EMILE_BQ 32
#endif
#ifndef EMILE_BK
#define EMILE_BK 64
#endif
#ifndef EMILE_RM
#define EMILE_RM 4
#endif
#ifndef EMILE_NR
#define EMILE_NR 4
#endif
#ifndef EMILE_THREADS
#define EMILE_THREADS 0
#endif
#ifndef EMILE_SCHEDULE
#define EMILE_SCHEDULE 2
#endif
#ifndef EMILE_GQA_PACK
#define EMILE_GQA_PACK 1
#endif
#ifndef EMILE_VEC_BYTES
#if defined(__AVX512F__)
#define EMILE_VEC_BYTES 64
#elif defined(__AVX__)
#define EMILE_VEC_BYTES 32
#else
#define EMILE_VEC_BYTES 16
#endif
#endif

#if EMILE_NR < 1 || EMILE_NR > 8
#error "EMILE_NR must be in 1..8"
#endif
#if EMILE_RM < 1 || EMILE_RM > 16
#error "EMILE_RM must be in 1..16"
#endif

#define VL (EMILE_VEC_BYTES / 4)                       /* floats per vector */
#define BKP (((EMILE_BK + VL - 1) / VL) * VL)          /* keys per tile */
#define BKV (BKP / VL)                                 /* vectors per tile row */
#define RM EMILE_RM
#define NR EMILE_NR
#define BQP (((EMILE_BQ + RM - 1) / RM) * RM)          /* rows per block */
#define ALIGN 64

typedef float vf __attribute__((vector_size(EMILE_VEC_BYTES)));
typedef int32_t vi __attribute__((vector_size(EMILE_VEC_BYTES)));

#define INLINE static inline __attribute__((always_inline))

/* GCC fuses a * b + c into one FMA by default (GNU C); clang only when told,
 * and the micro-kernels below are written as a * b + c. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#endif

/* memcpy keeps the loads free of alignment and aliasing assumptions; GCC
 * turns each into one vector move. */
INLINE vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
INLINE void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
INLINE vf vsplat(float x) { return (vf){0} + x; }
INLINE vf vmax(vf a, vf b)
{
    vi m = a > b;
    return (vf)((m & (vi)a) | (~m & (vi)b));
}
/* Horizontal max by halving (64 -> 32 -> 16 bytes, then 4 scalars): a few
 * dependent steps instead of a VL-long chain of scalar compares. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
INLINE float hmax(vf v)
{
    float t[VL];
    memcpy(t, &v, sizeof t);
#if VL >= 16
    {
        v8f a, b;
        memcpy(&a, t, 32);
        memcpy(&b, t + 8, 32);
        v8i m = a > b;
        a = (v8f)((m & (v8i)a) | (~m & (v8i)b));
        memcpy(t, &a, 32);
    }
#endif
#if VL >= 8
    {
        v4f a, b;
        memcpy(&a, t, 16);
        memcpy(&b, t + 4, 16);
        v4i m = a > b;
        a = (v4f)((m & (v4i)a) | (~m & (v4i)b));
        memcpy(t, &a, 16);
    }
#endif
    const float x = t[0] > t[1] ? t[0] : t[1], y = t[2] > t[3] ? t[2] : t[3];
    return x > y ? x : y;
}
INLINE float hsum(vf v)
{
    float r = v[0];
    for (int i = 1; i < VL; i++)
        r += v[i];
    return r;
}

/* 2^x for x <= 0 (softmax arguments).  x is clamped to -127 where the result
 * underflows to exactly 0 (so masked -inf scores give p == 0).  n = round(x)
 * by the 1.5*2^23 trick, f = x - n in [-1/2, 1/2], 2^f by its degree-6
 * Taylor polynomial (remainder ~1.2e-7), 2^n by building the exponent. */
INLINE vf vexp2(vf x)
{
    const vf magic = vsplat(12582912.0f);
    x = vmax(x, vsplat(-127.0f));
    vf t = x + magic;
    vf n = t - magic;
    vi ni = (vi)t - (vi)magic;
    vf f = x - n;
    vf p = vsplat(1.5403530393381606e-4f);
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    vi e = (ni + 127) << 23;          /* n == -127 gives +0.0 */
    return p * (vf)e;
}

/* st[RM][BKP] (+ c0) = qp[RM][D] x kt[D][BKP] (+ c0), nr vectors wide. */
INLINE void qk_tile(const float *qp, int64_t D, const float *kt, float *st, int nr)
{
    vf a[RM][NR];
    for (int r = 0; r < RM; r++)
        for (int c = 0; c < nr; c++)
            a[r][c] = vsplat(0.0f);
    for (int64_t d = 0; d < D; d++) {
        vf kv[NR];
        for (int c = 0; c < nr; c++)
            kv[c] = vload(kt + d * BKP + c * VL);
        for (int r = 0; r < RM; r++) {
            const float x = qp[r * D + d];
            for (int c = 0; c < nr; c++)
                a[r][c] += kv[c] * x;
        }
    }
    for (int r = 0; r < RM; r++)
        for (int c = 0; c < nr; c++)
            vstore(st + r * BKP + c * VL, a[r][c]);
}

/* acc[RM][Dp] (+ c0) += st[RM][jn] x vp[jn][Dp] (+ c0), nr vectors wide. */
INLINE void pv_tile(const float *st, const float *vp, int64_t Dp, float *acc,
                    int64_t jn, int nr)
{
    vf o[RM][NR];
    for (int r = 0; r < RM; r++)
        for (int c = 0; c < nr; c++)
            o[r][c] = vload(acc + r * Dp + c * VL);
    for (int64_t j = 0; j < jn; j++) {
        vf vv[NR];
        for (int c = 0; c < nr; c++)
            vv[c] = vload(vp + j * Dp + c * VL);
        for (int r = 0; r < RM; r++) {
            const float p = st[r * BKP + j];
            for (int c = 0; c < nr; c++)
                o[r][c] += vv[c] * p;
        }
    }
    for (int r = 0; r < RM; r++)
        for (int c = 0; c < nr; c++)
            vstore(acc + r * Dp + c * VL, o[r][c]);
}

/* The tail chunk needs a compile-time width too, hence the switches (only
 * widths below NR exist, so no register array is indexed past its end). */
static void qk_rows(const float *qp, int64_t D, const float *kt, float *st, int64_t nvec)
{
    for (int64_t c0 = 0; c0 < nvec; c0 += NR) {
        const float *k = kt + c0 * VL;
        float *s = st + c0 * VL;
        switch (nvec - c0 < NR ? nvec - c0 : NR) {
#if NR > 1
        case 1: qk_tile(qp, D, k, s, 1); break;
#endif
#if NR > 2
        case 2: qk_tile(qp, D, k, s, 2); break;
#endif
#if NR > 3
        case 3: qk_tile(qp, D, k, s, 3); break;
#endif
#if NR > 4
        case 4: qk_tile(qp, D, k, s, 4); break;
#endif
#if NR > 5
        case 5: qk_tile(qp, D, k, s, 5); break;
#endif
#if NR > 6
        case 6: qk_tile(qp, D, k, s, 6); break;
#endif
#if NR > 7
        case 7: qk_tile(qp, D, k, s, 7); break;
#endif
        default: qk_tile(qp, D, k, s, NR); break;
        }
    }
}

static void pv_rows(const float *st, const float *vp, int64_t Dp, float *acc, int64_t jn)
{
    const int64_t dv = Dp / VL;
    for (int64_t c0 = 0; c0 < dv; c0 += NR) {
        const float *v = vp + c0 * VL;
        float *a = acc + c0 * VL;
        switch (dv - c0 < NR ? dv - c0 : NR) {
#if NR > 1
        case 1: pv_tile(st, v, Dp, a, jn, 1); break;
#endif
#if NR > 2
        case 2: pv_tile(st, v, Dp, a, jn, 2); break;
#endif
#if NR > 3
        case 3: pv_tile(st, v, Dp, a, jn, 3); break;
#endif
#if NR > 4
        case 4: pv_tile(st, v, Dp, a, jn, 4); break;
#endif
#if NR > 5
        case 5: pv_tile(st, v, Dp, a, jn, 5); break;
#endif
#if NR > 6
        case 6: pv_tile(st, v, Dp, a, jn, 6); break;
#endif
#if NR > 7
        case 7: pv_tile(st, v, Dp, a, jn, 7); break;
#endif
        default: pv_tile(st, v, Dp, a, jn, NR); break;
        }
    }
}

typedef struct {
    float *p;
    int64_t sb, ss, sh, sd;
} view_t;

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

static int agrees(const emile_args_t *a, const char *name, int64_t v)
{
    return emile_param(a, name, (double)v) == (double)v;
}

static float *alloc_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    return aligned_alloc(ALIGN, bytes ? bytes : ALIGN);
}

/* Per-thread scratch for one work item (G stacked heads of BQP rows each). */
typedef struct {
    float *qp;    /* [G*BQP][D]  q * scale * log2(e) */
    float *st;    /* [RM][BKP]   scores, then probabilities, of one row group */
    float *acc;   /* [G*BQP][Dp] unnormalised output */
    float *m;     /* [G*BQP]     running max (log2 domain) */
    float *l;     /* [G*BQP][VL] running sum, one partial per lane */
} block_t;

/* One item: G heads x query rows [i0, i0+nq), stacked head-major (row
 * r = g*BQP + i is head g, position i0 + i), against the packed K^T/V of
 * their kv head.  The key tile loop is outermost so a K/V tile is loaded
 * once for every stacked row; row groups of RM rows (never straddling two
 * heads, since BQP is a multiple of RM) go through QK, softmax and PV one
 * after the other so the score tile stays in L1. */
static void attend_item(block_t *w, const float *kt, const float *vp, int64_t S,
                        int64_t D, int64_t Dp, int causal, int64_t G, int64_t i0,
                        int64_t nq)
{
    const int64_t ngh = (nq + RM - 1) / RM;     /* row groups per head */
    const int64_t nk = causal ? (i0 + nq < S ? i0 + nq : S) : S;
    float *st = w->st;
    for (int64_t g = 0; g < G; g++) {
        for (int64_t i = 0; i < ngh * RM; i++) {
            w->m[g * BQP + i] = -INFINITY;
            vstore(w->l + (g * BQP + i) * VL, vsplat(0.0f));
        }
        memset(w->acc + g * BQP * Dp, 0, (size_t)(ngh * RM * Dp) * sizeof(float));
    }

    for (int64_t j0 = 0; j0 < nk; j0 += BKP) {
        const float *ktt = kt + (j0 / BKP) * D * BKP;
        const float *vpt = vp + j0 * Dp;
        for (int64_t gi = 0; gi < G * ngh; gi++) {
            const int64_t g = gi / ngh, i1 = (gi % ngh) * RM;   /* head, row in head */
            const int64_t r0 = g * BQP + i1;
            /* Keys of this tile that some row of the group sees. */
            int64_t gend = causal ? i0 + i1 + RM : S;
            gend = gend < S ? gend : S;
            int64_t gv = gend - j0;
            if (gv <= 0)
                continue;       /* all masked: m, l and acc stay as they are */
            gv = gv < BKP ? gv : BKP;
            const int64_t nvec = (gv + VL - 1) / VL;
            qk_rows(w->qp + r0 * D, D, ktt, st, nvec);

            int64_t jmax = 0;   /* longest row of the group in this tile */
            for (int64_t rr = 0; rr < RM; rr++) {
                const int64_t r = r0 + rr;
                float *s = st + rr * BKP;
                int64_t kend = causal ? i0 + i1 + rr + 1 : S;
                kend = kend < S ? kend : S;
                int64_t nv = kend - j0;
                nv = nv < BKP ? nv : BKP;
                if (nv <= 0) {          /* this row sees none of the tile */
                    memset(s, 0, (size_t)nvec * VL * sizeof(float));
                    continue;
                }
                const int64_t cv = (nv + VL - 1) / VL;
                for (int64_t j = nv; j < cv * VL; j++)
                    s[j] = -INFINITY;
                jmax = nv > jmax ? nv : jmax;
                vf vm = vload(s);
                for (int64_t c = 1; c < cv; c++)
                    vm = vmax(vm, vload(s + c * VL));
                float mx = hmax(vm);
                mx = mx > w->m[r] ? mx : w->m[r];
                const vf vmx = vsplat(mx);
                vf vs = vsplat(0.0f);
                for (int64_t c = 0; c < cv; c++) {
                    vf p = vexp2(vload(s + c * VL) - vmx);
                    vstore(s + c * VL, p);
                    vs += p;
                }
                /* The group's PV reads up to its longest row: zeros past ours. */
                if (cv < nvec)
                    memset(s + cv * VL, 0, (size_t)(nvec - cv) * VL * sizeof(float));
                if (mx != w->m[r]) {
                    const float corr = exp2f(w->m[r] - mx);   /* 0 on the first tile */
                    float *a = w->acc + r * Dp;
                    for (int64_t c = 0; c < Dp; c += VL)
                        vstore(a + c, vload(a + c) * corr);
                    vstore(w->l + r * VL, vload(w->l + r * VL) * corr);
                    w->m[r] = mx;
                }
                vstore(w->l + r * VL, vload(w->l + r * VL) + vs);
            }
            if (jmax > 0)
                pv_rows(st, vpt, Dp, w->acc + r0 * Dp, jmax);
        }
    }
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    emile_tensor_t *tq = emile_tensor(args, "q"), *tk = emile_tensor(args, "k");
    emile_tensor_t *tv = emile_tensor(args, "v"), *to = emile_tensor(args, "o");
    view_t q, k, v, o;
    if (view_of(tq, &q) || view_of(tk, &k) || view_of(tv, &v) || view_of(to, &o))
        return 1;
    const int64_t B = tq->shape[0], S = tq->shape[1], Hq = tq->shape[2], D = tq->shape[3];
    const int64_t Hkv = tk->shape[2];
    for (int i = 0; i < 4; i++)
        if (to->shape[i] != tq->shape[i] || tv->shape[i] != tk->shape[i])
            return 2;
    if (tk->shape[0] != B || tk->shape[1] != S || tk->shape[3] != D)
        return 2;
    if (B <= 0 || S <= 0 || D <= 0 || Hkv <= 0 || Hq % Hkv != 0)
        return 2;
    if (!agrees(args, "batch", B) || !agrees(args, "seq", S) ||
        !agrees(args, "q_heads", Hq) || !agrees(args, "kv_heads", Hkv) ||
        !agrees(args, "head_dim", D))
        return 2;
    const int causal = emile_param(args, "causal", 1.0) != 0.0;
    const double scale = emile_param(args, "scale", 1.0 / sqrt((double)D));
    const float qmul = (float)(scale * 1.4426950408889634);
    const int64_t group = Hq / Hkv;
    const int64_t G = EMILE_GQA_PACK ? group : 1;        /* heads per item */
    const int64_t Dp = (D + VL - 1) / VL * VL;
    const int64_t nt = (S + BKP - 1) / BKP;               /* key tiles */
    const int64_t nqb = (S + BQP - 1) / BQP;              /* query blocks */
    const int64_t kv_floats = nt * D * BKP, vv_floats = nt * BKP * Dp;
    const int64_t nitems = B * (Hq / G) * nqb;
    const int nthr = EMILE_THREADS > 0 ? EMILE_THREADS : omp_get_max_threads();

    float *kt = alloc_floats((size_t)(B * Hkv * kv_floats));
    float *vp = alloc_floats((size_t)(B * Hkv * vv_floats));
    int64_t *order = malloc((size_t)nitems * sizeof *order);
    int rc = 0;
    if (!kt || !vp || !order) {
        free(kt); free(vp); free(order);
        return 3;
    }
    /* Item id = (b * (Hq/G) + head group) * nqb + query block.  Longest
     * first: causal cost grows with the query block index, so list blocks
     * from last to first (all items cost the same when not causal). */
    {
        int64_t n = 0;
        for (int64_t t = 0; t < nqb; t++) {
            const int64_t qbk = EMILE_SCHEDULE == 2 && causal ? nqb - 1 - t : t;
            for (int64_t bh = 0; bh < B * (Hq / G); bh++)
                order[n++] = bh * nqb + qbk;
        }
    }

    #pragma omp parallel num_threads(nthr)
    {
        /* Pack K^T tiles and V rows of every (batch, kv head). */
        #pragma omp for collapse(3) schedule(static)
        for (int64_t b = 0; b < B; b++)
            for (int64_t hk = 0; hk < Hkv; hk++)
                for (int64_t t = 0; t < nt; t++) {
                    const float *kb = k.p + b * k.sb + hk * k.sh;
                    const float *vb = v.p + b * v.sb + hk * v.sh;
                    float *ktt = kt + (b * Hkv + hk) * kv_floats + t * D * BKP;
                    float *vpt = vp + (b * Hkv + hk) * vv_floats + t * BKP * Dp;
                    for (int64_t jj = 0; jj < BKP; jj++) {   /* rows of K in order */
                        const int64_t j = t * BKP + jj;
                        for (int64_t d = 0; d < D; d++)
                            ktt[d * BKP + jj] = j < S ? kb[j * k.ss + d * k.sd] : 0.0f;
                    }
                    for (int64_t jj = 0; jj < BKP; jj++) {
                        const int64_t j = t * BKP + jj;
                        for (int64_t d = 0; d < Dp; d++)
                            vpt[jj * Dp + d] = j < S && d < D ? vb[j * v.ss + d * v.sd] : 0.0f;
                    }
                }
        /* (the implicit barrier: every tile is packed before it is read) */

        block_t w;
        w.qp = alloc_floats((size_t)(G * BQP * D));
        w.st = alloc_floats((size_t)RM * BKP);
        w.acc = alloc_floats((size_t)(G * BQP * Dp));
        w.m = alloc_floats((size_t)(G * BQP));
        w.l = alloc_floats((size_t)(G * BQP * VL));
        const int ok = w.qp && w.st && w.acc && w.m && w.l;
        if (!ok) {
            #pragma omp atomic write
            rc = 3;
        }
        /* A thread without scratch still takes part in the loop (an omp for
         * must be met by all threads) but does no work. */
#if EMILE_SCHEDULE == 0
        #pragma omp for schedule(static)
#else
        #pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t it = 0; it < nitems; it++) {
            if (!ok)
                continue;
            const int64_t id = order[it];
            const int64_t qbk = id % nqb, bh = id / nqb;
            const int64_t b = bh / (Hq / G), h0 = (bh % (Hq / G)) * G;
            const int64_t hk = h0 / group;
            const int64_t i0 = qbk * BQP;
            const int64_t nq = S - i0 < BQP ? S - i0 : BQP;
            for (int64_t g = 0; g < G; g++) {
                const float *qb = q.p + b * q.sb + (h0 + g) * q.sh;
                float *qp = w.qp + g * BQP * D;
                for (int64_t r = 0; r < BQP; r++)
                    for (int64_t d = 0; d < D; d++)
                        qp[r * D + d] = r < nq ? qmul * qb[(i0 + r) * q.ss + d * q.sd] : 0.0f;
            }
            attend_item(&w, kt + (b * Hkv + hk) * kv_floats, vp + (b * Hkv + hk) * vv_floats,
                        S, D, Dp, causal, G, i0, nq);
            for (int64_t g = 0; g < G; g++) {
                float *ob = o.p + b * o.sb + (h0 + g) * o.sh;
                for (int64_t r = 0; r < nq; r++) {
                    const float inv = 1.0f / hsum(vload(w.l + (g * BQP + r) * VL));
                    const float *a = w.acc + (g * BQP + r) * Dp;
                    for (int64_t d = 0; d < D; d++)
                        ob[(i0 + r) * o.ss + d * o.sd] = a[d] * inv;
                }
            }
        }
        free(w.qp); free(w.st); free(w.acc); free(w.m); free(w.l);
    }
    free(kt); free(vp); free(order);
    return rc;
}
