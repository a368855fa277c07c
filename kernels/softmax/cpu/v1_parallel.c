/*
 * v1_parallel.c -- row softmax, rung 1: rows spread over every core (OpenMP),
 * each row in three vectorised passes with a polynomial exp.
 *
 * Idea: the reference is one core, libm's scalar expf and one dependent add
 * chain per row.  Here rows are split statically over the threads (all rows
 * cost the same); within a row, pass 1 is a vector max over EMILE_ACC
 * independent accumulators, pass 2 computes e = exp(x - max) with a vector
 * exp (range reduction to [-ln2/2, ln2/2], a degree-6 polynomial, 2^n put in
 * the exponent bits: relative error < 2e-7, far inside f32's 1e-4 bound) and
 * sums it on EMILE_ACC accumulators while storing e, pass 3 scales by 1/sum.
 * Softmax is memory bound (8 bytes per element for 5 FLOPs), so the ceiling
 * is the copy bandwidth: passes 2 and 3 re-read a row from L1/L2 for rows of
 * up to ~64K floats.  Small tensors stay on one thread (EMILE_PAR_MIN).
 *
 * Diagnosis it answers: single_threaded, scalar_code.  Profile should show
 * memory_bound / near_roofline.
 *
 * Parameters (the agent prepends #define lines; defaults below):
 *   EMILE_THREADS   OpenMP threads, 0 = all                 (default 0)
 *   EMILE_ACC       vector accumulators 1, 2, 4              (default 2)
 *   EMILE_PAR_MIN   elements below which one thread runs   (default 32768)
 *   EMILE_VEC_BYTES vector width in bytes 16, 32, 64        (default native)
 *
 * Fast path for unit-stride rows; other strides take a scalar path (still
 * parallel over rows).  f32 only.  No scratch.
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
#ifndef EMILE_PAR_MIN
#define EMILE_PAR_MIN 32768
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
#if EMILE_ACC < 1 || EMILE_ACC > 4
#error "EMILE_ACC must be in 1..4"
#endif

#define VL (EMILE_VEC_BYTES / 4)
typedef float vf __attribute__((vector_size(EMILE_VEC_BYTES)));
typedef int32_t vi __attribute__((vector_size(EMILE_VEC_BYTES)));

static inline vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf vsplat(float a) { return (vf){0} + a; }
static inline vf vmax(vf a, vf b)
{
    const vi m = a > b;           /* lanes of -1 where a wins */
    return (vf)(((vi)a & m) | ((vi)b & ~m));
}

/* exp(x) for x <= 0 (x - max): x = n ln2 + r, |r| <= ln2/2, exp(r) by a
 * degree-6 Taylor polynomial (error r^7/7! < 1.2e-7 relative), 2^n in the
 * exponent bits.  Below -87 the result is flushed towards 0. */
static inline vf vexp(vf x)
{
    x = vmax(x, vsplat(-87.0f));
    const vf t = x * 1.44269504088896341f - 0.5f;
    const vi n = __builtin_convertvector(t, vi);            /* round(x / ln2) for x <= 0 */
    const vf nf = __builtin_convertvector(n, vf);
    const vf r = x - nf * 0.693145751953125f - nf * 1.428606765330187e-06f;
    vf p = vsplat(1.0f / 720);
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const vi bits = (n + 127) << 23;
    vf scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static void row_fast(const float *x, float *y, int64_t cols)
{
    vf acc[EMILE_ACC];
    for (int a = 0; a < EMILE_ACC; a++)
        acc[a] = vsplat(-INFINITY);
    int64_t c = 0;
    for (; c + EMILE_ACC * VL <= cols; c += EMILE_ACC * VL)
        for (int a = 0; a < EMILE_ACC; a++)
            acc[a] = vmax(acc[a], vload(x + c + a * VL));
    for (; c + VL <= cols; c += VL)
        acc[0] = vmax(acc[0], vload(x + c));
    for (int a = 1; a < EMILE_ACC; a++)
        acc[0] = vmax(acc[0], acc[a]);
    float m = -INFINITY;
    for (int l = 0; l < VL; l++)
        m = fmaxf(m, acc[0][l]);
    for (; c < cols; c++)
        m = fmaxf(m, x[c]);

    for (int a = 0; a < EMILE_ACC; a++)
        acc[a] = (vf){0};
    c = 0;
    for (; c + EMILE_ACC * VL <= cols; c += EMILE_ACC * VL)
        for (int a = 0; a < EMILE_ACC; a++) {
            const vf e = vexp(vload(x + c + a * VL) - m);
            vstore(y + c + a * VL, e);
            acc[a] += e;
        }
    for (; c + VL <= cols; c += VL) {
        const vf e = vexp(vload(x + c) - m);
        vstore(y + c, e);
        acc[0] += e;
    }
    for (int a = 1; a < EMILE_ACC; a++)
        acc[0] += acc[a];
    float sum = 0.0f;
    for (int l = 0; l < VL; l++)
        sum += acc[0][l];
    for (; c < cols; c++)
        sum += y[c] = expf(x[c] - m);

    const float inv = 1.0f / sum;
    c = 0;
    for (; c + VL <= cols; c += VL)
        vstore(y + c, vload(y + c) * inv);
    for (; c < cols; c++)
        y[c] *= inv;
}

static int is_f32(const emile_tensor_t *t)
{
    return t && t->dtype == EMILE_DTYPE_F32 && t->ndim == 2 && t->data;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *tx = emile_tensor(args, "x"), *ty = emile_tensor(args, "y");
    if (tx && ty && (tx->dtype != EMILE_DTYPE_F32 || ty->dtype != EMILE_DTYPE_F32))
        return EMILE_ERR_DTYPE;           /* f32 only: say so, not "a tensor missing" */
    if (!is_f32(tx) || !is_f32(ty))
        return 1;
    const int64_t rows = tx->shape[0], cols = tx->shape[1];
    if (ty->shape[0] != rows || ty->shape[1] != cols || rows <= 0 || cols <= 0)
        return 2;
    const float *x = tx->data;
    float *y = ty->data;
    const int64_t xr = tx->strides[0], xc = tx->strides[1], yr = ty->strides[0], yc = ty->strides[1];
    const int fast = xc == 1 && yc == 1;
    const int nthr = EMILE_THREADS > 0 ? EMILE_THREADS : omp_get_max_threads();

    #pragma omp parallel for schedule(static) num_threads(nthr) if (rows * cols >= EMILE_PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        if (fast) {
            row_fast(x + r * xr, y + r * yr, cols);
            continue;
        }
        float m = -INFINITY, sum = 0.0f;
        for (int64_t c = 0; c < cols; c++)
            m = fmaxf(m, x[r * xr + c * xc]);
        for (int64_t c = 0; c < cols; c++)
            sum += y[r * yr + c * yc] = expf(x[r * xr + c * xc] - m);
        for (int64_t c = 0; c < cols; c++)
            y[r * yr + c * yc] /= sum;
    }
    return 0;
}
