/*
 * rung3_merge.cu -- decode attention, rung 3: rung 2 with splits sized by
 * the keys actually in the cache, and the splits merged in parallel.
 *
 * Idea: rung 2 fixes its split count by the cache's capacity (about
 * EMILE_BLOCKS_PER_SM blocks per SM: 33 splits of a 4096-row cache on an
 * H100), so a cache holding 1024 keys still runs 33 splits of 31 keys, and
 * its last block merges them with one thread an element looping over every
 * split, each step's loads waiting on the previous step's max test: 33
 * round trips to L2, most of its 31-36 us at 1024 and at 4096 keys against
 * torch's 14-19 (bench/op_ladders_cuda.py, H100).  Here the grid is the
 * same (fixed by the cache, so a CUDA graph serves every position), but
 * each split takes at least EMILE_MIN_KEYS keys of kv_len, computed on the
 * device: the splits past the keys leave at once, and only the active ones
 * take a ticket and leave partials.  The last block merges in three steps:
 * every split's max into shared memory at once, one warp per head turning
 * them into weights and the head's sum, then each output element a sum over
 * the splits of independent loads (unrolled, so they are all in flight).
 *
 * Expected gain over rung 2: 3-6x at decode lengths (the merge from ~25 us
 * to ~1 us; fewer, fuller splits at short caches).  Diagnosis it answers:
 * latency_bound, memory_bound_below_bandwidth, tail_effect.  Profile should
 * show memory bound, toward the copy bandwidth at 4K keys.
 *
 * Parameters (defaults first): EMILE_WARPS 8|4 warps a block;
 * EMILE_UNROLL 4|2|1 key steps loaded ahead; EMILE_BLOCKS_PER_SM 2|1|4
 * (the grid); EMILE_MIN_KEYS 64|32|128|256 fewest keys of kv_len per active
 * split; EMILE_STREAM 1|0 (1: evict-first cache loads).
 *
 * fp16 and bf16; head_dim 64, 128 or 256; G = q_heads/kv_heads 1, 2, 4 or
 * 8; kv_heads <= 64; head_dim unit-stride, every other stride a multiple
 * of 8 elements, 16-byte aligned tensors.  The partials live in a static
 * __device__ buffer (no allocation in the call): calls on one stream are
 * ordered; two streams at once would share it.  Returns 1 for a dtype or
 * tensor it does not take, 2 for shapes that disagree, 6 for a head_dim,
 * group, layout or size it does not handle.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include "emile.h"

#ifndef EMILE_WARPS
#define EMILE_WARPS 8
#endif
#ifndef EMILE_UNROLL
#define EMILE_UNROLL 4
#endif
#ifndef EMILE_BLOCKS_PER_SM
#define EMILE_BLOCKS_PER_SM 2
#endif
#ifndef EMILE_MIN_KEYS
#define EMILE_MIN_KEYS 64
#endif
#ifndef EMILE_STREAM
#define EMILE_STREAM 1
#endif

#define R3_MAX_KV_HEADS 64
#define R3_MAX_SPLITS 64
#define R3_PART_FLOATS (4u << 20)       /* 16 MB of partials */

__device__ float r3_part[R3_PART_FLOATS];
__device__ unsigned int r3_ticket[R3_MAX_KV_HEADS];

/* 8 elements of a 16-byte vector as floats. */
__device__ __forceinline__ void unpack8(uint4 u, __nv_bfloat16 *, float *f)
{
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ void unpack8(uint4 u, __half *, float *f)
{
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __half22float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
template <typename T> __device__ __forceinline__ T cvt(float x);
template <> __device__ __forceinline__ __half cvt<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ uint4 load16(const void *p)
{
#if EMILE_STREAM
    return __ldcs(reinterpret_cast<const uint4 *>(p));
#else
    return __ldg(reinterpret_cast<const uint4 *>(p));
#endif
}

struct r3_problem {
    const void *q, *k, *v;
    void *o;
    const int32_t *len;
    int64_t sq, sk0, sk1, sv0, sv1, so;
    int hkv, seq;
};

template <typename T, int D, int G>
__global__ void __launch_bounds__(EMILE_WARPS * 32) r3_gqa(r3_problem p)
{
    constexpr int LPK = D / 8, KPW = 32 / LPK, STEP = EMILE_WARPS * KPW;
    extern __shared__ float smem[];                 /* [warps][G][D + 2]: m, l, acc */
    __shared__ int s_last;
    const int sp = blockIdx.x, nsp = gridDim.x, kh = blockIdx.y;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, grp = lane / LPK, li = lane % LPK;
    int L = *p.len;
    L = L < 1 ? 1 : (L > p.seq ? p.seq : L);
    /* the active splits: at least EMILE_MIN_KEYS keys each, the rest leave */
    const int chunk = max((L + nsp - 1) / nsp, EMILE_MIN_KEYS), na = (L + chunk - 1) / chunk;
    if (sp >= na)
        return;
    const int j0 = sp * chunk, j1 = min(L, j0 + chunk);
    const float qscale = rsqrtf((float)D) * 1.4426950408889634f;     /* 1/sqrt(D) log2(e) */
    float q[G][8], acc[G][8], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; g++) {
        unpack8(__ldg(reinterpret_cast<const uint4 *>((const T *)p.q + (kh * G + g) * p.sq + li * 8)),
                (T *)0, q[g]);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            q[g][e] *= qscale;
            acc[g][e] = 0.f;
        }
        m[g] = -INFINITY;
        l[g] = 0.f;
    }
    const char *kbase = (const char *)((const T *)p.k + kh * p.sk1 + li * 8);
    const char *vbase = (const char *)((const T *)p.v + kh * p.sv1 + li * 8);
    const int64_t krow = p.sk0 * (int64_t)sizeof(T), vrow = p.sv0 * (int64_t)sizeof(T);
    /* the loop bound is the warp's, so every lane takes every shuffle */
    for (int jw = j0 + w * KPW; jw < j1; jw += STEP * EMILE_UNROLL) {
        uint4 kv[EMILE_UNROLL], vv[EMILE_UNROLL];
#pragma unroll
        for (int u = 0; u < EMILE_UNROLL; u++) {
            const int j = jw + u * STEP + grp;
            if (j < j1) {
                kv[u] = load16(kbase + j * krow);
                vv[u] = load16(vbase + j * vrow);
            } else {
                kv[u] = make_uint4(0, 0, 0, 0);
                vv[u] = make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < EMILE_UNROLL; u++) {
            const int j = jw + u * STEP + grp;
            float kf[8], s[G];
            unpack8(kv[u], (T *)0, kf);
#pragma unroll
            for (int g = 0; g < G; g++) {
                s[g] = 0.f;
#pragma unroll
                for (int e = 0; e < 8; e++)
                    s[g] = fmaf(q[g][e], kf[e], s[g]);
            }
#pragma unroll
            for (int off = LPK / 2; off > 0; off >>= 1)
#pragma unroll
                for (int g = 0; g < G; g++)
                    s[g] += __shfl_xor_sync(0xffffffffu, s[g], off);
            if (j < j1) {
                float vf[8];
                unpack8(vv[u], (T *)0, vf);
#pragma unroll
                for (int g = 0; g < G; g++) {
                    const float mn = fmaxf(m[g], s[g]), c = exp2f(m[g] - mn), pj = exp2f(s[g] - mn);
                    l[g] = l[g] * c + pj;
                    m[g] = mn;
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        acc[g][e] = fmaf(acc[g][e], c, pj * vf[e]);
                }
            }
        }
    }
    /* the KPW key groups of the warp into one */
#pragma unroll
    for (int off = LPK; off < 32; off <<= 1)
#pragma unroll
        for (int g = 0; g < G; g++) {
            const float mo = __shfl_xor_sync(0xffffffffu, m[g], off);
            const float lo = __shfl_xor_sync(0xffffffffu, l[g], off);
            const float M = fmaxf(m[g], mo);
            const float a = m[g] == -INFINITY ? 0.f : exp2f(m[g] - M);
            const float b = mo == -INFINITY ? 0.f : exp2f(mo - M);
            l[g] = l[g] * a + lo * b;
#pragma unroll
            for (int e = 0; e < 8; e++)
                acc[g][e] = acc[g][e] * a + __shfl_xor_sync(0xffffffffu, acc[g][e], off) * b;
            m[g] = M;
        }
    if (grp == 0)
#pragma unroll
        for (int g = 0; g < G; g++) {
            float *row = smem + (w * G + g) * (D + 2);
            if (li == 0) { row[0] = m[g]; row[1] = l[g]; }
#pragma unroll
            for (int e = 0; e < 8; e++)
                row[2 + li * 8 + e] = acc[g][e];
        }
    __syncthreads();
    /* the warps into one: the block's (max, sum, accumulator) per head */
    float *part = r3_part + ((size_t)kh * nsp + sp) * G * (D + 2);
    for (int i = threadIdx.x; i < G * D; i += blockDim.x) {
        const int g = i / D, d = i % D;
        float M = -INFINITY;
        for (int ww = 0; ww < EMILE_WARPS; ww++)
            M = fmaxf(M, smem[(ww * G + g) * (D + 2)]);
        float Ls = 0.f, o = 0.f;
        for (int ww = 0; ww < EMILE_WARPS; ww++) {
            const float *row = smem + (ww * G + g) * (D + 2);
            if (row[0] == -INFINITY) continue;
            const float f = exp2f(row[0] - M);
            Ls += row[1] * f;
            o += row[2 + d] * f;
        }
        if (na == 1) {
            ((T *)p.o)[(kh * G + g) * p.so + d] = cvt<T>(o / Ls);
        } else {
            part[g * (D + 2) + 2 + d] = o;
            if (d == 0) { part[g * (D + 2)] = M; part[g * (D + 2) + 1] = Ls; }
        }
    }
    if (na == 1)
        return;
    /* the last active block of this kv head to finish merges the splits */
    __shared__ float s_w[R3_MAX_SPLITS * 8], s_sum[8];
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        s_last = atomicAdd(&r3_ticket[kh], 1u) == (unsigned)na - 1;
    __syncthreads();
    if (!s_last)
        return;
    __threadfence();
    const float *all = r3_part + (size_t)kh * nsp * G * (D + 2);
    /* 1: every split's max at once (row s * G + g) */
    for (int i = threadIdx.x; i < na * G; i += blockDim.x)
        s_w[i] = __ldcg(all + (size_t)i * (D + 2));
    __syncthreads();
    /* 2: a warp per head: the max over the splits, each split's weight, the sum */
    for (int g = w; g < G; g += EMILE_WARPS) {
        float M = -INFINITY;
        for (int s = lane; s < na; s += 32)
            M = fmaxf(M, s_w[s * G + g]);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1)
            M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
        float Ls = 0.f;
        for (int s = lane; s < na; s += 32) {
            const float ms = s_w[s * G + g];
            const float f = ms == -INFINITY ? 0.f : exp2f(ms - M);
            Ls += f * __ldcg(all + (size_t)(s * G + g) * (D + 2) + 1);
            s_w[s * G + g] = f;
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1)
            Ls += __shfl_xor_sync(0xffffffffu, Ls, off);
        if (lane == 0)
            s_sum[g] = Ls;
    }
    __syncthreads();
    /* 3: each element a sum of independent loads, all in flight */
    for (int i = threadIdx.x; i < G * D; i += blockDim.x) {
        const int g = i / D, d = i % D;
        const float *col = all + (size_t)g * (D + 2) + 2 + d;
        float o = 0.f;
#pragma unroll 8
        for (int s = 0; s < na; s++)
            o = fmaf(__ldcg(col + (size_t)s * G * (D + 2)), s_w[s * G + g], o);
        ((T *)p.o)[(kh * G + g) * p.so + d] = cvt<T>(o / s_sum[g]);
    }
    if (threadIdx.x == 0)
        r3_ticket[kh] = 0;
}

/* The SMs of the current device, asked once (the engine's first call is
 * outside a graph capture). */
static int sm_count(void)
{
    static int n;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1)
            n = 132;
    }
    return n;
}

template <typename T, int D, int G>
static int launch(const r3_problem &p, cudaStream_t st)
{
    static int smem_ok;
    const size_t smem = (size_t)EMILE_WARPS * G * (D + 2) * sizeof(float);
    if (!smem_ok) {
        if (smem > 48 * 1024 &&
            cudaFuncSetAttribute(r3_gqa<T, D, G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)smem) != cudaSuccess)
            return 6;
        smem_ok = 1;
    }
    int nsp = (sm_count() * EMILE_BLOCKS_PER_SM + p.hkv - 1) / p.hkv;
    const int by_keys = (p.seq + EMILE_MIN_KEYS - 1) / EMILE_MIN_KEYS;
    const int by_room = (int)(R3_PART_FLOATS / ((size_t)p.hkv * G * (D + 2)));
    nsp = nsp > by_keys ? by_keys : nsp;
    nsp = nsp > by_room ? by_room : nsp;
    nsp = nsp > R3_MAX_SPLITS ? R3_MAX_SPLITS : nsp;
    nsp = nsp < 1 ? 1 : nsp;
    r3_gqa<T, D, G><<<dim3(nsp, p.hkv), EMILE_WARPS * 32, smem, st>>>(p);
    return 0;
}

template <typename T, int D>
static int by_group(const r3_problem &p, int G, cudaStream_t st)
{
    switch (G) {
    case 1: return launch<T, D, 1>(p, st);
    case 2: return launch<T, D, 2>(p, st);
    case 4: return launch<T, D, 4>(p, st);
    case 8: return launch<T, D, 8>(p, st);
    default: return 6;
    }
}

template <typename T>
static int by_dim(const r3_problem &p, int D, int G, cudaStream_t st)
{
    switch (D) {
    case 64: return by_group<T, 64>(p, G, st);
    case 128: return by_group<T, 128>(p, G, st);
    case 256: return by_group<T, 256>(p, G, st);
    default: return 6;
    }
}

static int aligned(const void *ptr, int64_t s0, int64_t s1)
{
    return ((uintptr_t)ptr & 15) == 0 && s0 % 8 == 0 && s1 % 8 == 0;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k"), *v = emile_tensor(a, "v");
    emile_tensor_t *o = emile_tensor(a, "o"), *len = emile_tensor(a, "kv_len");
    if (!q || !k || !v || !o || !len || len->dtype != EMILE_DTYPE_I32 || q->ndim != 2 ||
        k->ndim != 3 || v->ndim != 3 || o->ndim != 2 || k->dtype != q->dtype ||
        v->dtype != q->dtype || o->dtype != q->dtype)
        return 1;
    const int hq = (int)q->shape[0], D = (int)q->shape[1];
    r3_problem p;
    p.seq = (int)k->shape[0]; p.hkv = (int)k->shape[1];
    if (p.seq < 1 || p.hkv <= 0 || hq % p.hkv || k->shape[2] != D || v->shape[0] != p.seq ||
        v->shape[1] != p.hkv || v->shape[2] != D || o->shape[0] != hq || o->shape[1] != D)
        return 2;
    if (p.hkv > R3_MAX_KV_HEADS || q->strides[1] != 1 || k->strides[2] != 1 ||
        v->strides[2] != 1 || o->strides[1] != 1 || !aligned(q->data, q->strides[0], 0) ||
        !aligned(k->data, k->strides[0], k->strides[1]) ||
        !aligned(v->data, v->strides[0], v->strides[1]))
        return 6;
    p.sq = q->strides[0]; p.so = o->strides[0];
    p.sk0 = k->strides[0]; p.sk1 = k->strides[1];
    p.sv0 = v->strides[0]; p.sv1 = v->strides[1];
    p.q = q->data; p.k = k->data; p.v = v->data; p.o = o->data;
    p.len = (const int32_t *)len->data;
    cudaStream_t st = (cudaStream_t)a->stream;
    int rc;
    switch (q->dtype) {
    case EMILE_DTYPE_F16: rc = by_dim<__half>(p, D, hq / p.hkv, st); break;
    case EMILE_DTYPE_BF16: rc = by_dim<__nv_bfloat16>(p, D, hq / p.hkv, st); break;
    default: return 1;
    }
    if (rc)
        return rc;
    return cudaGetLastError() == cudaSuccess ? 0 : 10;
}
