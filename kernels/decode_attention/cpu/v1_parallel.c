/*
 * v1_parallel.c -- decode attention on the CPU, rung 1: the keys split over
 * every core, each K/V row read once for its whole query-head group, dot
 * products on vector registers, an online softmax, partials merged.
 *
 * Idea: decode attention reads the KV cache once per step: 4 FLOPs per
 * element per query head, so with GQA's group of G heads it is memory bound
 * (the cache is read once for the group, G dot products per row).  The
 * reference walks one head at a time (the cache is re-read G times), keeps
 * every score, and runs on one core.  Here the work items are (kv head,
 * split of the keys): each holds the running max, sum and G x D accumulator
 * of its group (online softmax: one pass, no score array), the items go to
 * the threads, and a last pass merges the splits of each head with their
 * maxima.  Splits are sized so that every thread gets work
 * (EMILE_SPLIT_KEYS keys at least per split).
 *
 * Expected gain over the reference: G x fewer cache bytes, cores x SIMD
 * (~10-30x on a 2-core machine).  Diagnosis it answers: single_threaded,
 * scalar_code.  Profile should show memory_bound / near_roofline.
 *
 * Parameters (the agent prepends #define lines; defaults below):
 *   EMILE_THREADS     OpenMP threads, 0 = all                       (default 0)
 *   EMILE_SPLIT_KEYS  fewest keys per split 64, 128, 256, 512, 1024 (default 256)
 *   EMILE_VEC_BYTES   vector width 16, 32, 64                       (default native)
 *
 * Fast path when head_dim is a multiple of the vector width and rows are
 * unit-stride; otherwise a scalar path (same structure).  f32 only,
 * head_dim <= 256, groups of at most 16 heads.  Scratch: the partials of
 * the splits (malloc'd per call, freed before return).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "emile.h"

#ifndef EMILE_THREADS
#define EMILE_THREADS 0
#endif
#ifndef EMILE_SPLIT_KEYS
#define EMILE_SPLIT_KEYS 256
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

#define VL (EMILE_VEC_BYTES / 4)
#define MAX_D 256
#define MAX_G 16
typedef float vf __attribute__((vector_size(EMILE_VEC_BYTES)));

static inline vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }

static int is_f32(const emile_tensor_t *t, int ndim)
{
    return t && t->dtype == EMILE_DTYPE_F32 && t->ndim == ndim && t->data;
}

typedef struct att {
    const float *q, *k, *v;
    int64_t qs, qd, ks, kh, kd, vs, vh, vd;   /* strides */
    int64_t Hq, Hkv, G, D, L;
    float scale;
    int fast;
} att_t;

/* Keys [j0, j1) of kv head g for its G query heads: max, sum and the
 * unnormalised accumulator of each head into part (G x (D + 2)). */
static void split_pass(const att_t *a, int64_t g, int64_t j0, int64_t j1, float *part)
{
    const int64_t G = a->G, D = a->D;
    float qv[MAX_G][MAX_D], acc[MAX_G][MAX_D], m[MAX_G], l[MAX_G];
    for (int64_t i = 0; i < G; i++) {
        for (int64_t d = 0; d < D; d++) {
            qv[i][d] = a->q[(g * G + i) * a->qs + d * a->qd] * a->scale;
            acc[i][d] = 0.0f;
        }
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    for (int64_t j = j0; j < j1; j++) {
        const float *kr = a->k + j * a->ks + g * a->kh, *vr = a->v + j * a->vs + g * a->vh;
        for (int64_t i = 0; i < G; i++) {
            float s = 0.0f;
            if (a->fast) {
                vf sv = (vf){0};
                for (int64_t d = 0; d < D; d += VL)
                    sv += vload(&qv[i][d]) * vload(kr + d);
                for (int e = 0; e < VL; e++)
                    s += sv[e];
            } else {
                for (int64_t d = 0; d < D; d++)
                    s += qv[i][d] * kr[d * a->kd];
            }
            const float mn = s > m[i] ? s : m[i], c = expf(m[i] - mn), p = expf(s - mn);
            l[i] = l[i] * c + p;
            m[i] = mn;
            if (a->fast) {
                const vf cv = (vf){0} + c, pv = (vf){0} + p;
                for (int64_t d = 0; d < D; d += VL)
                    vstore(&acc[i][d], vload(&acc[i][d]) * cv + pv * vload(vr + d));
            } else {
                for (int64_t d = 0; d < D; d++)
                    acc[i][d] = acc[i][d] * c + p * vr[d * a->vd];
            }
        }
    }
    for (int64_t i = 0; i < G; i++) {
        float *pp = part + i * (D + 2);
        pp[0] = m[i];
        pp[1] = l[i];
        memcpy(pp + 2, acc[i], (size_t)D * sizeof(float));
    }
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *q = emile_tensor(args, "q"), *k = emile_tensor(args, "k");
    const emile_tensor_t *v = emile_tensor(args, "v"), *len = emile_tensor(args, "kv_len");
    const emile_tensor_t *o = emile_tensor(args, "o");
    if (!is_f32(q, 2) || !is_f32(k, 3) || !is_f32(v, 3) || !is_f32(o, 2) || !len ||
        len->dtype != EMILE_DTYPE_I32 || !len->data)
        return 1;
    att_t a;
    a.Hq = q->shape[0]; a.D = q->shape[1]; a.Hkv = k->shape[1];
    const int64_t S = k->shape[0];
    if (a.Hkv <= 0 || a.Hq % a.Hkv != 0 || k->shape[2] != a.D || v->shape[0] != S ||
        v->shape[1] != a.Hkv || v->shape[2] != a.D || o->shape[0] != a.Hq || o->shape[1] != a.D)
        return 2;
    a.G = a.Hq / a.Hkv;
    if (a.D > MAX_D || a.G > MAX_G)
        return 5;
    a.L = ((const int32_t *)len->data)[0];
    if (a.L < 1 || a.L > S)
        return 3;
    a.q = q->data; a.k = k->data; a.v = v->data;
    a.qs = q->strides[0]; a.qd = q->strides[1];
    a.ks = k->strides[0]; a.kh = k->strides[1]; a.kd = k->strides[2];
    a.vs = v->strides[0]; a.vh = v->strides[1]; a.vd = v->strides[2];
    a.scale = (float)(1.0 / sqrt((double)a.D));
    a.fast = a.D % VL == 0 && a.kd == 1 && a.vd == 1;
    const int nthr = EMILE_THREADS > 0 ? EMILE_THREADS : omp_get_max_threads();
    /* enough splits for every thread, none shorter than EMILE_SPLIT_KEYS */
    int64_t nsp = (2 * nthr + a.Hkv - 1) / a.Hkv;
    if (nsp > (a.L + EMILE_SPLIT_KEYS - 1) / EMILE_SPLIT_KEYS)
        nsp = (a.L + EMILE_SPLIT_KEYS - 1) / EMILE_SPLIT_KEYS;
    if (nsp < 1)
        nsp = 1;
    const int64_t chunk = (a.L + nsp - 1) / nsp;
    float *part = malloc((size_t)(a.Hkv * nsp * a.G * (a.D + 2)) * sizeof(float));
    if (!part)
        return 4;
    #pragma omp parallel for collapse(2) schedule(static) num_threads(nthr)
    for (int64_t g = 0; g < a.Hkv; g++)
        for (int64_t s = 0; s < nsp; s++) {
            const int64_t j0 = s * chunk, j1 = j0 + chunk < a.L ? j0 + chunk : a.L;
            split_pass(&a, g, j0, j1 > j0 ? j1 : j0, part + (g * nsp + s) * a.G * (a.D + 2));
        }
    /* merge the splits of each head with their maxima */
    float *O = o->data;
    for (int64_t h = 0; h < a.Hq; h++) {
        const int64_t g = h / a.G, i = h % a.G;
        float M = -INFINITY;
        for (int64_t s = 0; s < nsp; s++) {
            const float ms = part[((g * nsp + s) * a.G + i) * (a.D + 2)];
            M = ms > M ? ms : M;
        }
        float L = 0.0f, acc[MAX_D] = {0};
        for (int64_t s = 0; s < nsp; s++) {
            const float *pp = part + ((g * nsp + s) * a.G + i) * (a.D + 2);
            if (pp[0] == -INFINITY)
                continue;                      /* a split that found no key */
            const float f = expf(pp[0] - M);
            L += pp[1] * f;
            for (int64_t d = 0; d < a.D; d++)
                acc[d] += pp[2 + d] * f;
        }
        for (int64_t d = 0; d < a.D; d++)
            O[h * o->strides[0] + d * o->strides[1]] = acc[d] / L;
    }
    free(part);
    return 0;
}
