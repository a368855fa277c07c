/*
 * v1_parallel.c -- the GEMV family on the CPU, rung 1: output rows spread
 * over every core (OpenMP), each dot product on vector accumulators, the
 * op's epilogue fused.  One template for the five projection ops of a
 * Qwen3 decode step (kernels/<op>/op.json), told apart by their tensors:
 *   o_proj, down_proj  x, w -> y (f32)                 plain
 *   gate_up            x, w -> h                       silu(g) * u of row pairs (r, r + inter)
 *   qkv_proj           x, w, q_norm, k_norm, rope, pos -> q, k, v
 *                                                      per-head RMSNorm + RoPE after the dots
 *   lm_head            x, w -> logits (f32), idx (i32) argmax per token after the dots
 *
 * Idea: a decode step's projections read every weight once for one token:
 * 2 FLOPs per 4 bytes, far below the ridge, so the ceiling is the memory
 * bandwidth.  The reference is one core and one dependent add chain per
 * output; here rows go to the threads in static blocks of EMILE_ROWS (each
 * block's x loads shared by its rows), and each dot product runs on
 * EMILE_ACC independent vector accumulators (GCC vector extensions), so the
 * loop is bound by loads, not by add latency.  The weights of a row are read
 * once for all n tokens (tokens innermost).  Small problems stay on one
 * thread (EMILE_PAR_MIN weights), where the fork/join would cost more.
 *
 * Expected gain over the reference: cores x SIMD until the memory wall
 * (~3-10x on a 2-core machine, more with more cores).  Diagnosis it answers:
 * single_threaded, scalar_code.  Profile should show memory_bound /
 * near_roofline.
 *
 * Parameters (the agent prepends #define lines; defaults below):
 *   EMILE_THREADS   OpenMP threads, 0 = all                   (default 0)
 *   EMILE_ACC       vector accumulators per dot 1, 2, 4        (default 2)
 *   EMILE_ROWS      rows per block sharing x loads 1, 2, 4     (default 2)
 *   EMILE_PAR_MIN   weights below which one thread runs       (default 65536)
 *   EMILE_VEC_BYTES vector width 16, 32, 64                   (default native)
 *
 * Fast path when the rows of x and w are unit-stride; other strides take a
 * scalar path (still parallel).  f32 only.  Scratch: none.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>
#include "emile.h"

#ifndef EMILE_THREADS
#define EMILE_THREADS 0
#endif
#ifndef EMILE_ACC
#define EMILE_ACC 2
#endif
#ifndef EMILE_ROWS
#define EMILE_ROWS 2
#endif
#ifndef EMILE_PAR_MIN
#define EMILE_PAR_MIN 65536
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
#if EMILE_ACC < 1 || EMILE_ACC > 4 || EMILE_ROWS < 1 || EMILE_ROWS > 4
#error "EMILE_ACC and EMILE_ROWS must be in 1..4"
#endif

#define VL (EMILE_VEC_BYTES / 4)
typedef float vf __attribute__((vector_size(EMILE_VEC_BYTES)));

static inline vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }

static inline float hsum(vf v)
{
    float s = 0.0f;
    for (int l = 0; l < VL; l++)
        s += v[l];
    return s;
}

/* The op, from its tensors. */
enum { EPI_PLAIN, EPI_SWIGLU, EPI_QKV, EPI_ARGMAX };

typedef struct gemv {
    int epi;
    int64_t n, K, rows;                 /* rows of w the dots cover (gate_up: inter pairs) */
    const float *x, *w;
    int64_t xs, xk, ws, wk;             /* row and element strides */
    int unit;                           /* x and w rows unit-stride */
    const emile_tensor_t *out[3];       /* where the dots go */
    int64_t split[2];                   /* qkv: first k row, first v row */
} gemv_t;

static int is_dt(const emile_tensor_t *t, int dt)
{
    return t && t->data && t->dtype == dt;
}

/* dots[r][t] = w[row0 + r] . x[t] for r < nr (<= EMILE_ROWS) rows. */
static void dot_rows(const gemv_t *g, int64_t row0, int nr, int64_t t, float *res)
{
    const float *xr = g->x + t * g->xs;
    if (!g->unit) {
        for (int r = 0; r < nr; r++) {
            const float *wr = g->w + (row0 + r) * g->ws;
            float acc = 0.0f;
            for (int64_t i = 0; i < g->K; i++)
                acc += xr[i * g->xk] * wr[i * g->wk];
            res[r] = acc;
        }
        return;
    }
    vf acc[EMILE_ROWS][EMILE_ACC];
    const float *wr[EMILE_ROWS];
    for (int r = 0; r < EMILE_ROWS; r++) {
        wr[r] = g->w + (row0 + (r < nr ? r : 0)) * g->ws;
        for (int a = 0; a < EMILE_ACC; a++)
            acc[r][a] = (vf){0};
    }
    int64_t i = 0;
    for (; i + EMILE_ACC * VL <= g->K; i += EMILE_ACC * VL)
        for (int a = 0; a < EMILE_ACC; a++) {
            const vf xv = vload(xr + i + a * VL);
            for (int r = 0; r < EMILE_ROWS; r++)
                acc[r][a] += xv * vload(wr[r] + i + a * VL);
        }
    for (; i + VL <= g->K; i += VL) {
        const vf xv = vload(xr + i);
        for (int r = 0; r < EMILE_ROWS; r++)
            acc[r][0] += xv * vload(wr[r] + i);
    }
    for (int r = 0; r < nr; r++) {
        for (int a = 1; a < EMILE_ACC; a++)
            acc[r][0] += acc[r][a];
        float s = hsum(acc[r][0]);
        for (int64_t j = i; j < g->K; j++)
            s += xr[j] * wr[r][j];
        res[r] = s;
    }
}

#define OUT2(t, a, b) (((float *)(t)->data)[(a) * (t)->strides[0] + (b) * (t)->strides[1]])
#define OUT3(t, a, b, c) (((float *)(t)->data)[(a) * (t)->strides[0] + (b) * (t)->strides[1] + \
                                               (c) * (t)->strides[2]])

/* Store the dot of row r (of w's rows) and token t where the op wants it. */
static void store(const gemv_t *g, int64_t r, int64_t t, float v, float u)
{
    switch (g->epi) {
    case EPI_PLAIN:
    case EPI_ARGMAX:
        OUT2(g->out[0], t, r) = v;
        break;
    case EPI_SWIGLU:
        OUT2(g->out[0], t, r) = v / (1.0f + expf(-v)) * u;
        break;
    case EPI_QKV: {
        const emile_tensor_t *o = g->out[r < g->split[0] ? 0 : r < g->split[1] ? 1 : 2];
        int64_t rr = r < g->split[0] ? r : r < g->split[1] ? r - g->split[0] : r - g->split[1];
        int64_t D = o->shape[2];
        OUT3(o, t, rr / D, rr % D) = v;
        break;
    }
    }
}

static void run_rows(const gemv_t *g, int nthr, int par)
{
    const int64_t blocks = (g->rows + EMILE_ROWS - 1) / EMILE_ROWS;
    #pragma omp parallel for schedule(static) num_threads(nthr) if (par)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t r0 = b * EMILE_ROWS;
        const int nr = (int)(g->rows - r0 < EMILE_ROWS ? g->rows - r0 : EMILE_ROWS);
        for (int64_t t = 0; t < g->n; t++) {
            float d[EMILE_ROWS], u[EMILE_ROWS];
            dot_rows(g, r0, nr, t, d);
            if (g->epi == EPI_SWIGLU)
                dot_rows(g, g->rows + r0, nr, t, u);
            for (int r = 0; r < nr; r++)
                store(g, r0 + r, t, d[r], g->epi == EPI_SWIGLU ? u[r] : 0.0f);
        }
    }
}

/* qkv_proj after the dots: per-head RMSNorm and RoPE of q and k, in place. */
static int qkv_post(const emile_args_t *a, const gemv_t *g, int nthr, int par)
{
    const emile_tensor_t *qn = emile_tensor(a, "q_norm"), *kn = emile_tensor(a, "k_norm");
    const emile_tensor_t *rope = emile_tensor(a, "rope"), *pos = emile_tensor(a, "pos");
    const emile_tensor_t *q = g->out[0], *k = g->out[1];
    const int64_t Hq = q->shape[1], Hkv = k->shape[1], D = q->shape[2], half = D / 2;
    const int64_t p0 = ((const int32_t *)pos->data)[0];
    if (p0 < 0 || p0 + g->n > rope->shape[0])
        return 3;
    const float eps = (float)emile_param(a, "eps", 1e-6);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(nthr) if (par)
    for (int64_t t = 0; t < g->n; t++)
        for (int64_t h = 0; h < Hq + Hkv; h++) {
            const emile_tensor_t *o = h < Hq ? q : k, *nw = h < Hq ? qn : kn;
            const int64_t hh = h < Hq ? h : h - Hq;
            float ss = 0.0f;
            for (int64_t d = 0; d < D; d++)
                ss += OUT3(o, t, hh, d) * OUT3(o, t, hh, d);
            const float r = 1.0f / sqrtf(ss / (float)D + eps);
            for (int64_t i = 0; i < half; i++) {
                const float *cs = (const float *)rope->data + (p0 + t) * rope->strides[0] +
                                  i * rope->strides[1];
                const float c = cs[0], s = cs[rope->strides[2]];
                const float lo = ((float *)nw->data)[i * nw->strides[0]] * (OUT3(o, t, hh, i) * r);
                const float hi = ((float *)nw->data)[(i + half) * nw->strides[0]] *
                                 (OUT3(o, t, hh, i + half) * r);
                OUT3(o, t, hh, i) = lo * c - hi * s;
                OUT3(o, t, hh, i + half) = hi * c + lo * s;
            }
        }
    return 0;
}

/* lm_head after the dots: the first largest logit of each token. */
static void argmax(const gemv_t *g, const emile_tensor_t *idx)
{
    for (int64_t t = 0; t < g->n; t++) {
        int64_t best = 0;
        float bv = OUT2(g->out[0], t, 0);
        for (int64_t o = 1; o < g->rows; o++) {
            const float v = OUT2(g->out[0], t, o);
            if (v > bv) {
                bv = v;
                best = o;
            }
        }
        ((int32_t *)idx->data)[t * idx->strides[0]] = (int32_t)best;
    }
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    const emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    if (!is_dt(x, EMILE_DTYPE_F32) || !is_dt(w, EMILE_DTYPE_F32) || x->ndim != 2 || w->ndim != 2)
        return 1;
    gemv_t g;
    memset(&g, 0, sizeof g);
    g.n = x->shape[0];
    g.K = x->shape[1];
    g.x = x->data;
    g.w = w->data;
    g.xs = x->strides[0]; g.xk = x->strides[1];
    g.ws = w->strides[0]; g.wk = w->strides[1];
    g.unit = g.xk == 1 && g.wk == 1;
    g.rows = w->shape[0];
    if (w->shape[1] != g.K)
        return 2;
    const emile_tensor_t *q = emile_tensor(a, "q"), *h = emile_tensor(a, "h");
    const emile_tensor_t *lg = emile_tensor(a, "logits"), *y = emile_tensor(a, "y");
    if (q) {
        const emile_tensor_t *k = emile_tensor(a, "k"), *v = emile_tensor(a, "v");
        if (!is_dt(q, EMILE_DTYPE_F32) || !is_dt(k, EMILE_DTYPE_F32) || !is_dt(v, EMILE_DTYPE_F32) ||
            !is_dt(emile_tensor(a, "q_norm"), EMILE_DTYPE_F32) ||
            !is_dt(emile_tensor(a, "k_norm"), EMILE_DTYPE_F32) ||
            !is_dt(emile_tensor(a, "rope"), EMILE_DTYPE_F32) ||
            !is_dt(emile_tensor(a, "pos"), EMILE_DTYPE_I32) || q->ndim != 3 || k->ndim != 3 ||
            v->ndim != 3)
            return 1;
        const int64_t D = q->shape[2];
        if (D % 2 || k->shape[2] != D || v->shape[2] != D || q->shape[0] != g.n ||
            g.rows != (q->shape[1] + k->shape[1] + v->shape[1]) * D)
            return 2;
        g.epi = EPI_QKV;
        g.out[0] = q; g.out[1] = k; g.out[2] = v;
        g.split[0] = q->shape[1] * D;
        g.split[1] = g.split[0] + k->shape[1] * D;
    } else if (h) {
        if (!is_dt(h, EMILE_DTYPE_F32) || h->ndim != 2 || h->shape[0] != g.n ||
            g.rows != 2 * h->shape[1])
            return h->dtype == EMILE_DTYPE_F32 ? 2 : 1;
        g.epi = EPI_SWIGLU;
        g.out[0] = h;
        g.rows = h->shape[1];                 /* gate rows; up rows follow */
    } else if (lg) {
        const emile_tensor_t *idx = emile_tensor(a, "idx");
        if (!is_dt(lg, EMILE_DTYPE_F32) || !is_dt(idx, EMILE_DTYPE_I32) || lg->ndim != 2 ||
            lg->shape[0] != g.n || lg->shape[1] != g.rows || idx->shape[0] != g.n)
            return 1;
        g.epi = EPI_ARGMAX;
        g.out[0] = lg;
    } else if (y) {
        if (!is_dt(y, EMILE_DTYPE_F32) || y->ndim != 2 || y->shape[0] != g.n ||
            y->shape[1] != g.rows)
            return 2;
        g.epi = EPI_PLAIN;
        g.out[0] = y;
    } else {
        return 1;
    }
    const int nthr = EMILE_THREADS > 0 ? EMILE_THREADS : omp_get_max_threads();
    const int par = w->shape[0] * g.K >= EMILE_PAR_MIN;
    run_rows(&g, nthr, par);
    if (g.epi == EPI_QKV)
        return qkv_post(a, &g, nthr, par);
    if (g.epi == EPI_ARGMAX)
        argmax(&g, emile_tensor(a, "idx"));
    return 0;
}
