/*
 * rung2_vec.cu -- the GEMV family on CUDA, rung 2: 16-byte loads, several
 * rows a warp, several slices of K in flight, the op's epilogue fused.
 *
 * One template for the five projections of a Qwen3 decode step
 * (kernels/<op>/op.json), told apart by their tensors: o_proj and
 * down_proj (y fp32), gate_up (SwiGLU of row pairs r, r + inter), qkv_proj
 * (the projections rounded to the dtype, then a small kernel per (token,
 * head) for the RMSNorm and RoPE of q and k), lm_head (fp32 logits, and
 * the argmax folded in: each block keeps the best of its rows, a second
 * tiny kernel picks among the blocks -- no pass over the logits).
 *
 * Idea: a decode projection reads every weight once for one token, 2 FLOPs
 * per 2 bytes: the time is the bytes over the bandwidth, and the bandwidth
 * comes only with enough bytes in flight (about 32-64 KB per SM on an
 * H100).  Rung 1 has a warp read one row with 2-byte loads, one load in
 * flight per lane.  Here each lane loads 16 bytes of each of EMILE_ROWS
 * rows per 256-element slice of K, EMILE_UNROLL slices before the first
 * multiply (EMILE_ROWS x EMILE_UNROLL x 16 bytes in flight per lane), the
 * slice of x (L1-resident) shared by the rows; weights are loaded
 * evict-first (read once a step).  The sums are warp shuffles; the
 * epilogue runs on the fp32 sums.
 *
 * Expected gain over rung 1: 3-6x; toward 80-90% of the copy bandwidth on
 * the large ones (gate_up, lm_head); o_proj and down_proj (2560 rows) have
 * few warps per SM: rung 3 splits their K.  Diagnosis it answers:
 * memory_bound_below_bandwidth, latency_bound.  Profile should show memory
 * bound near the bandwidth, no spills.
 *
 * Parameters (defaults first): EMILE_ROWS 2|1|4 rows (units) a warp;
 * EMILE_UNROLL 4|2|8 slices in flight; EMILE_WARPS 8|4|16 warps a block;
 * EMILE_STREAM 1|0 evict-first weight loads.
 *
 * fp16 and bf16 (x, w and the dtype outputs share one); unit-stride rows.
 * K a multiple of 8 and 16-byte aligned rows take the vector path; any
 * other K (validation's ragged sizes) takes rung 1's scalar path.  Returns 1
 * for a dtype or tensor it does not take, 2 for shapes that disagree, 6 for
 * rows that are not unit-stride.  The argmax's per-block bests live in a
 * static __device__ buffer (no allocation in the call).
 */
#ifndef EMILE_ROWS
#define EMILE_ROWS 2
#endif
#ifndef EMILE_UNROLL
#define EMILE_UNROLL 4
#endif
#ifndef EMILE_WARPS
#define EMILE_WARPS 8
#endif
#ifndef EMILE_STREAM
#define EMILE_STREAM 1
#endif
#define EMILE_KSPLIT 1
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include "emile.h"

/* ---- the op, from its tensors (shared by the GEMV family's rungs) ------- */
enum { EPI_PLAIN, EPI_SWIGLU, EPI_QKV, EPI_ARGMAX };

struct gemv_args {
    const void *x, *w;
    int64_t xs, ws;                 /* row strides (elements); the rows are unit-stride */
    int n, K, units;                /* tokens, in-features, outputs per token (gate_up: inter) */
    int epi;
    void *y;                        /* y / h / logits */
    int64_t ys;
    int y_f32;                      /* y is fp32 (else the dtype) */
    int32_t *idx;                   /* lm_head */
    int64_t is;
    void *q, *k, *v;                /* qkv_proj */
    int64_t sq0, sq1, sk0, sk1, sv0, sv1;
    int hq, hkv, d;
    const void *qn, *kn;            /* qkv_proj's norms, rope and position */
    int64_t sqn, skn;
    const float *rope;
    int64_t rs0, rs1, rs2;
    const int32_t *pos;
    float eps;
    int unit_stride;                /* every row unit-stride (else: return 6) */
    int vec_ok;                     /* 16-byte loads possible: K % 8, aligned rows */
};

static int aligned16(const void *p, int64_t stride)
{
    return ((uintptr_t)p & 15) == 0 && stride % 8 == 0;
}

/* Fill g from the tensors; 0, or the ABI's return code (1 dtype or tensor,
 * 2 shapes). */
static int gemv_parse(const emile_args_t *a, gemv_args *g, int *dtype)
{
    memset(g, 0, sizeof *g);
    emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    if (!x || !w || x->ndim != 2 || w->ndim != 2 || w->dtype != x->dtype ||
        (x->dtype != EMILE_DTYPE_BF16 && x->dtype != EMILE_DTYPE_F16))
        return 1;
    *dtype = x->dtype;
    g->x = x->data; g->w = w->data;
    g->xs = x->strides[0]; g->ws = w->strides[0];
    g->n = (int)x->shape[0]; g->K = (int)x->shape[1];
    if (w->shape[1] != g->K)
        return 2;
    g->unit_stride = x->strides[1] == 1 && w->strides[1] == 1;
    g->vec_ok = g->K % 8 == 0 && aligned16(x->data, x->strides[0]) && aligned16(w->data, w->strides[0]);
    emile_tensor_t *q = emile_tensor(a, "q"), *h = emile_tensor(a, "h");
    emile_tensor_t *lg = emile_tensor(a, "logits"), *y = emile_tensor(a, "y");
    if (q) {
        emile_tensor_t *k = emile_tensor(a, "k"), *v = emile_tensor(a, "v");
        emile_tensor_t *qn = emile_tensor(a, "q_norm"), *kn = emile_tensor(a, "k_norm");
        emile_tensor_t *rope = emile_tensor(a, "rope"), *pos = emile_tensor(a, "pos");
        if (!k || !v || !qn || !kn || !rope || !pos || q->ndim != 3 || k->ndim != 3 ||
            v->ndim != 3 || rope->ndim != 3 || q->dtype != *dtype || k->dtype != *dtype ||
            v->dtype != *dtype || qn->dtype != *dtype || kn->dtype != *dtype ||
            rope->dtype != EMILE_DTYPE_F32 || pos->dtype != EMILE_DTYPE_I32)
            return 1;
        g->hq = (int)q->shape[1]; g->hkv = (int)k->shape[1]; g->d = (int)q->shape[2];
        if (g->d % 2 || g->d > 1024 || k->shape[2] != g->d || v->shape[2] != g->d ||
            v->shape[1] != g->hkv || q->shape[0] != g->n || k->shape[0] != g->n ||
            v->shape[0] != g->n || w->shape[0] != (int64_t)(g->hq + 2 * g->hkv) * g->d ||
            qn->shape[0] != g->d || kn->shape[0] != g->d || rope->shape[1] != g->d / 2 ||
            rope->shape[2] != 2)
            return 2;
        if (q->strides[2] != 1 || k->strides[2] != 1 || v->strides[2] != 1)
            g->unit_stride = 0;
        g->epi = EPI_QKV;
        g->units = (int)w->shape[0];
        g->q = q->data; g->k = k->data; g->v = v->data;
        g->sq0 = q->strides[0]; g->sq1 = q->strides[1];
        g->sk0 = k->strides[0]; g->sk1 = k->strides[1];
        g->sv0 = v->strides[0]; g->sv1 = v->strides[1];
        g->qn = qn->data; g->kn = kn->data; g->sqn = qn->strides[0]; g->skn = kn->strides[0];
        g->rope = (const float *)rope->data;
        g->rs0 = rope->strides[0]; g->rs1 = rope->strides[1]; g->rs2 = rope->strides[2];
        g->pos = (const int32_t *)pos->data;
        g->eps = (float)emile_param(a, "eps", 1e-6);
    } else if (h) {
        if (h->ndim != 2 || h->dtype != *dtype)
            return 1;
        if (h->shape[0] != g->n || w->shape[0] != 2 * h->shape[1])
            return 2;
        if (h->strides[1] != 1)
            g->unit_stride = 0;
        g->epi = EPI_SWIGLU;
        g->units = (int)h->shape[1];
        g->y = h->data; g->ys = h->strides[0];
    } else if (lg) {
        emile_tensor_t *ix = emile_tensor(a, "idx");
        if (!ix || lg->ndim != 2 || ix->ndim != 1 || lg->dtype != EMILE_DTYPE_F32 ||
            ix->dtype != EMILE_DTYPE_I32)
            return 1;
        if (lg->shape[0] != g->n || lg->shape[1] != w->shape[0] || ix->shape[0] != g->n)
            return 2;
        if (lg->strides[1] != 1)
            g->unit_stride = 0;
        g->epi = EPI_ARGMAX;
        g->units = (int)w->shape[0];
        g->y = lg->data; g->ys = lg->strides[0]; g->y_f32 = 1;
        g->idx = (int32_t *)ix->data; g->is = ix->strides[0];
    } else if (y) {
        if (y->ndim != 2 || (y->dtype != EMILE_DTYPE_F32 && y->dtype != *dtype))
            return 1;
        if (y->shape[0] != g->n || y->shape[1] != w->shape[0])
            return 2;
        if (y->strides[1] != 1)
            g->unit_stride = 0;
        g->epi = EPI_PLAIN;
        g->units = (int)w->shape[0];
        g->y = y->data; g->ys = y->strides[0]; g->y_f32 = y->dtype == EMILE_DTYPE_F32;
    } else {
        return 1;
    }
    return 0;
}

/* ---- element access ------------------------------------------------------ */
template <typename T> __device__ __forceinline__ float ld(const T *p);
template <> __device__ __forceinline__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ T cvt(float x);
template <> __device__ __forceinline__ __half cvt<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
/* x rounded to T and back: what storing it in T keeps */
template <typename T> __device__ __forceinline__ float rnd(float x) { T t = cvt<T>(x); return ld(&t); }

/* The row of w that unit u's part wr reads (swiglu: gate wr 0, up wr 1). */
__device__ __forceinline__ int64_t w_row(const gemv_args &g, int u, int wr)
{
    return (int64_t)u + (int64_t)wr * g.units;
}

/* Store the finished sums of unit u, token t (part 0, and the up part for
 * swiglu) where the op wants them. */
template <typename T>
__device__ __forceinline__ void store(const gemv_args &g, int u, int t, float s0, float s1)
{
    switch (g.epi) {
    case EPI_PLAIN:
    case EPI_ARGMAX:
        if (g.y_f32)
            ((float *)g.y)[t * g.ys + u] = s0;
        else
            ((T *)g.y)[t * g.ys + u] = cvt<T>(s0);
        break;
    case EPI_SWIGLU: {
        const float gg = rnd<T>(s0), uu = rnd<T>(s1);
        ((T *)g.y)[t * g.ys + u] = cvt<T>(gg / (1.f + __expf(-gg)) * uu);
        break;
    }
    case EPI_QKV: {
        const int qd = g.hq * g.d, kvd = g.hkv * g.d;
        T *dst;
        if (u < qd)
            dst = (T *)g.q + t * g.sq0 + (u / g.d) * g.sq1 + u % g.d;
        else if (u < qd + kvd)
            dst = (T *)g.k + t * g.sk0 + ((u - qd) / g.d) * g.sk1 + (u - qd) % g.d;
        else
            dst = (T *)g.v + t * g.sv0 + ((u - qd - kvd) / g.d) * g.sv1 + (u - qd - kvd) % g.d;
        *dst = cvt<T>(s0);
        break;
    }
    }
}

/* qkv_proj after the projections: per (token, q or k head) block, RMSNorm
 * and RoPE in place (the projections already rounded to T). */
template <typename T>
__global__ void qk_norm_rope(gemv_args g)
{
    __shared__ float y[1024], red[32];
    const int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, D = g.d, half = D / 2;
    const int isq = h < g.hq;
    T *base = isq ? (T *)g.q + t * g.sq0 + h * g.sq1 : (T *)g.k + t * g.sk0 + (h - g.hq) * g.sk1;
    const float xi = i < D ? ld(base + i) : 0.f;
    float ss = xi * xi;
    for (int s = 16; s; s >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, s);
    if ((i & 31) == 0) red[i / 32] = ss;
    __syncthreads();
    float tot = 0.f;
    for (int wi = 0; wi < ((int)blockDim.x + 31) / 32; wi++) tot += red[wi];
    const float r = rsqrtf(tot / D + g.eps);
    if (i < D)
        y[i] = ld(isq ? (const T *)g.qn + i * g.sqn : (const T *)g.kn + i * g.skn) * (xi * r);
    __syncthreads();
    if (i >= D)
        return;
    const int64_t p = (int64_t)*g.pos + t;
    const float *cs = g.rope + p * g.rs0 + (i % half) * g.rs1;
    const float c = cs[0], sn = cs[g.rs2];
    base[i] = cvt<T>(i < half ? y[i] * c - y[i + half] * sn : y[i] * c + y[i - half] * sn);
}

/* lm_head: the first index of the largest logit of token blockIdx.x, from
 * the logits (a whole second pass; the fast paths fold it into theirs). */
__global__ void argmax_logits(gemv_args g)
{
    __shared__ float bv[1024];
    __shared__ int bi[1024];
    const int t = blockIdx.x;
    const float *row = (const float *)g.y + t * g.ys;
    float best = -INFINITY;
    int at = -1;
    for (int o = threadIdx.x; o < g.units; o += blockDim.x)
        if (at < 0 || row[o] > best) { best = row[o]; at = o; }
    bv[threadIdx.x] = best;
    bi[threadIdx.x] = at;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            const float ov = bv[threadIdx.x + s];
            const int oi = bi[threadIdx.x + s];
            if (oi >= 0 && (bi[threadIdx.x] < 0 || ov > bv[threadIdx.x] ||
                            (ov == bv[threadIdx.x] && oi < bi[threadIdx.x]))) {
                bv[threadIdx.x] = ov;
                bi[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        g.idx[t * g.is] = bi[0];
}

/* A logit and its index as one 64-bit key whose unsigned order is "larger
 * logit, then lower index" (NaN aside). */
__device__ __forceinline__ unsigned long long argmax_key(float v, int i)
{
    unsigned int b = __float_as_uint(v);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((unsigned long long)b << 32) | (0xffffffffu - (unsigned int)i);
}

/* The fused argmax's per-block bests: [token][block]. */
#define ARGMAX_SLOTS (1 << 18)
__device__ unsigned long long g_block_best[ARGMAX_SLOTS];

/* Reduce the per-block bests of token blockIdx.x into idx. */
__global__ void argmax_blocks(gemv_args g, int nblocks)
{
    __shared__ unsigned long long best[1024];
    const int t = blockIdx.x;
    unsigned long long b = 0;
    for (int i = threadIdx.x; i < nblocks; i += blockDim.x) {
        const unsigned long long k = g_block_best[(size_t)t * nblocks + i];
        b = k > b ? k : b;
    }
    best[threadIdx.x] = b;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s && best[threadIdx.x + s] > best[threadIdx.x])
            best[threadIdx.x] = best[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        g.idx[t * g.is] = (int32_t)(0xffffffffu - (unsigned int)(best[0] & 0xffffffffu));
}

/* ---- the scalar path: any K, any alignment (a warp a unit, a lane every
 * 32nd element); also what rung 1 is ------------------------------------------ */
template <typename T>
__global__ void gemv_scalar(gemv_args g)
{
    const int warp = (int)((blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32), lane = threadIdx.x % 32;
    const int u = warp / g.n, t = warp % g.n;
    if (u >= g.units)
        return;
    const T *xr = (const T *)g.x + t * g.xs;
    float s[2] = { 0.f, 0.f };
    const int parts = g.epi == EPI_SWIGLU ? 2 : 1;
    for (int wr = 0; wr < parts; wr++) {
        const T *wrow = (const T *)g.w + w_row(g, u, wr) * g.ws;
        float acc = 0.f;
        for (int i = lane; i < g.K; i += 32)
            acc = fmaf(ld(xr + i), ld(wrow + i), acc);
        for (int o = 16; o; o >>= 1)
            acc += __shfl_xor_sync(0xffffffffu, acc, o);
        s[wr] = acc;
    }
    if (lane == 0)
        store<T>(g, u, t, s[0], s[1]);
}

/* The scalar path and the op's second pass, if any. */
template <typename T>
static void run_scalar(const gemv_args &g, cudaStream_t st)
{
    const int64_t warps = (int64_t)g.units * g.n;
    gemv_scalar<T><<<(unsigned)((warps + 7) / 8), 256, 0, st>>>(g);
    if (g.epi == EPI_QKV)
        qk_norm_rope<T><<<dim3(g.n, g.hq + g.hkv), (g.d + 31) / 32 * 32, 0, st>>>(g);
    if (g.epi == EPI_ARGMAX)
        argmax_logits<<<g.n, 1024, 0, st>>>(g);
}

/* ---- the vector path ---------------------------------------------------- */
#define NTV 4                       /* tokens a pass when n > 1 */

__device__ __forceinline__ void unpack8(uint4 u, const __nv_bfloat16 *, float *f)
{
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ void unpack8(uint4 u, const __half *, float *f)
{
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

/* Weights are read once a step: EMILE_STREAM loads them evict-first. */
__device__ __forceinline__ uint4 load_w(const void *p)
{
#if EMILE_STREAM
    return __ldcs(reinterpret_cast<const uint4 *>(p));
#else
    return __ldg(reinterpret_cast<const uint4 *>(p));
#endif
}

/* acc += w . x over one 8-element slice of every row and token. */
template <typename T, int R, int PARTS, int NT>
__device__ __forceinline__ void fma_slice(float (&acc)[R][PARTS][NT], const uint4 (&wv)[R][PARTS],
                                          const uint4 (&xv)[NT])
{
    float xf[NT][8];
#pragma unroll
    for (int t = 0; t < NT; t++)
        unpack8(xv[t], (const T *)0, xf[t]);
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int p = 0; p < PARTS; p++) {
            float wf[8];
            unpack8(wv[r][p], (const T *)0, wf);
#pragma unroll
            for (int t = 0; t < NT; t++)
#pragma unroll
                for (int e = 0; e < 8; e++)
                    acc[r][p][t] = fmaf(wf[e], xf[t][e], acc[r][p][t]);
        }
}

/*
 * Block: EMILE_WARPS warps, KSPLIT of them on each group of EMILE_ROWS
 * units (the K dimension dealt out in 256-element slices: warp k of a group
 * takes slices k, k + KSPLIT, ...), so a block covers
 * EMILE_WARPS / KSPLIT * EMILE_ROWS units.  A lane loads 16 bytes (8
 * elements) of each of its rows per slice, EMILE_UNROLL slices ahead of the
 * first use.  PARTS: 2 for gate_up (the gate and the up row of a unit).
 * NT tokens of x from t0 on.  The sums meet in shared memory when KSPLIT >
 * 1; the epilogue is the op's (store); lm_head's argmax leaves each
 * block's best per token in g_block_best.
 */
template <typename T, int PARTS, int NT, int KSPLIT>
__global__ void __launch_bounds__(EMILE_WARPS * 32, 16 / EMILE_WARPS > 0 ? 16 / EMILE_WARPS : 1) gemv_vec(gemv_args g, int t0)
{
    constexpr int GROUPS = EMILE_WARPS / KSPLIT, R = EMILE_ROWS;
    __shared__ float red[EMILE_WARPS][R * PARTS * NT];
    __shared__ unsigned long long sbest[EMILE_WARPS][NT];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int grp = warp / KSPLIT, ks = warp % KSPLIT;
    const int u0 = (blockIdx.x * GROUPS + grp) * R;
    const T *wp[R][PARTS];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int p = 0; p < PARTS; p++) {
            const int u = min(u0 + r, g.units - 1);      /* past the end: read a real row */
            wp[r][p] = (const T *)g.w + w_row(g, u, p) * g.ws + lane * 8;
        }
    const T *xp[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
        xp[t] = (const T *)g.x + (int64_t)min(t0 + t, g.n - 1) * g.xs + lane * 8;
    float acc[R][PARTS][NT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int p = 0; p < PARTS; p++)
#pragma unroll
            for (int t = 0; t < NT; t++)
                acc[r][p][t] = 0.f;
    /* Full steps first: EMILE_UNROLL slices every lane has, loaded without
     * a condition (so all are in flight before the first multiply); then
     * the fewer than EMILE_UNROLL slices left, as one guarded step. */
    const int kend = g.K - lane * 8;                     /* this lane's elements: k < kend */
    constexpr int SLICE = 256 * KSPLIT, STEP = SLICE * EMILE_UNROLL;
    int kb = ks * 256;
    for (; kb + (EMILE_UNROLL - 1) * SLICE + 256 <= g.K; kb += STEP) {
        uint4 wv[EMILE_UNROLL][R][PARTS], xv[EMILE_UNROLL][NT];
#pragma unroll
        for (int s = 0; s < EMILE_UNROLL; s++) {
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int p = 0; p < PARTS; p++)
                    wv[s][r][p] = load_w(wp[r][p] + kb + s * SLICE);
#pragma unroll
            for (int t = 0; t < NT; t++)
                xv[s][t] = __ldg(reinterpret_cast<const uint4 *>(xp[t] + kb + s * SLICE));
        }
#pragma unroll
        for (int s = 0; s < EMILE_UNROLL; s++)
            fma_slice<T, R, PARTS, NT>(acc, wv[s], xv[s]);
    }
    if (kb < kend) {
        /* fewer than EMILE_UNROLL slices left: one step whose loads are all
         * issued (those past this lane's end read nothing and add zeros) */
        uint4 wv[EMILE_UNROLL][R][PARTS], xv[EMILE_UNROLL][NT];
#pragma unroll
        for (int s = 0; s < EMILE_UNROLL; s++) {
            const int k = kb + s * SLICE;
            const bool in = k < kend;
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int p = 0; p < PARTS; p++)
                    wv[s][r][p] = in ? load_w(wp[r][p] + k) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int t = 0; t < NT; t++)
                xv[s][t] = in ? __ldg(reinterpret_cast<const uint4 *>(xp[t] + k))
                              : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int s = 0; s < EMILE_UNROLL; s++)
            fma_slice<T, R, PARTS, NT>(acc, wv[s], xv[s]);
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int p = 0; p < PARTS; p++)
#pragma unroll
            for (int t = 0; t < NT; t++)
#pragma unroll
                for (int o = 16; o; o >>= 1)
                    acc[r][p][t] += __shfl_xor_sync(0xffffffffu, acc[r][p][t], o);
    if (KSPLIT > 1) {
        if (lane == 0)
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int p = 0; p < PARTS; p++)
#pragma unroll
                    for (int t = 0; t < NT; t++)
                        red[warp][(r * PARTS + p) * NT + t] = acc[r][p][t];
        __syncthreads();
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int p = 0; p < PARTS; p++)
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    float s = 0.f;
                    for (int k2 = 0; k2 < KSPLIT; k2++)
                        s += red[grp * KSPLIT + k2][(r * PARTS + p) * NT + t];
                    acc[r][p][t] = s;
                }
    }
    /* the op's epilogue, by the first warp of the group; lm_head keeps the
     * best of what it stored */
    unsigned long long best[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
        best[t] = 0;
    if (ks == 0 && lane == 0)
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (u0 + r < g.units && t0 + t < g.n) {
                    store<T>(g, u0 + r, t0 + t, acc[r][0][t], acc[r][PARTS - 1][t]);
                    if (g.epi == EPI_ARGMAX) {
                        const unsigned long long key = argmax_key(acc[r][0][t], u0 + r);
                        best[t] = key > best[t] ? key : best[t];
                    }
                }
    if (g.epi != EPI_ARGMAX)
        return;
    if (lane == 0)
#pragma unroll
        for (int t = 0; t < NT; t++)
            sbest[warp][t] = best[t];
    __syncthreads();
    if (threadIdx.x < NT && t0 + (int)threadIdx.x < g.n) {
        unsigned long long b = 0;
        for (int w2 = 0; w2 < EMILE_WARPS; w2++)
            b = sbest[w2][threadIdx.x] > b ? sbest[w2][threadIdx.x] : b;
        g_block_best[(size_t)(t0 + threadIdx.x) * gridDim.x + blockIdx.x] = b;
    }
}

template <typename T, int PARTS, int KSPLIT>
static void run_vec(const gemv_args &g, cudaStream_t st)
{
    constexpr int per_block = EMILE_WARPS / KSPLIT * EMILE_ROWS;
    const int blocks = (g.units + per_block - 1) / per_block;
    for (int t0 = 0; t0 < g.n; t0 += g.n == 1 ? 1 : NTV) {
        if (g.n == 1)
            gemv_vec<T, PARTS, 1, KSPLIT><<<blocks, EMILE_WARPS * 32, 0, st>>>(g, t0);
        else
            gemv_vec<T, PARTS, NTV, KSPLIT><<<blocks, EMILE_WARPS * 32, 0, st>>>(g, t0);
    }
    if (g.epi == EPI_QKV)
        qk_norm_rope<T><<<dim3(g.n, g.hq + g.hkv), (g.d + 31) / 32 * 32, 0, st>>>(g);
    if (g.epi == EPI_ARGMAX)
        argmax_blocks<<<g.n, 1024, 0, st>>>(g, blocks);
}

template <typename T>
static int run(const gemv_args &g, cudaStream_t st)
{
    constexpr int per_block = EMILE_WARPS / EMILE_KSPLIT * EMILE_ROWS;
    const int64_t blocks = (g.units + per_block - 1) / per_block;
    if (!g.vec_ok || (g.epi == EPI_ARGMAX && blocks * g.n > ARGMAX_SLOTS)) {
        run_scalar<T>(g, st);
        return 0;
    }
    if (g.epi == EPI_SWIGLU)
        run_vec<T, 2, EMILE_KSPLIT>(g, st);
    else
        run_vec<T, 1, EMILE_KSPLIT>(g, st);
    return 0;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    gemv_args g;
    int dtype = 0;
    int rc = gemv_parse(a, &g, &dtype);
    if (rc)
        return rc;
    if (!g.unit_stride)
        return 6;
    cudaStream_t st = (cudaStream_t)a->stream;
    rc = dtype == EMILE_DTYPE_BF16 ? run<__nv_bfloat16>(g, st) : run<__half>(g, st);
    if (rc)
        return rc;
    return cudaGetLastError() == cudaSuccess ? 0 : 10;
}
