/*
 * rung1_split.cu -- decode attention, rung 1: the sequence split over
 * blocks, a warp per key, a second pass that merges the splits.
 *
 * Idea: the reference runs one block per query head (32 blocks on 132 SMs)
 * and two barriers per key.  Decode attention is a read of the KV cache:
 * it needs many SMs pulling at once.  Here the grid is (query head, split):
 * the keys 0..kv_len-1 are cut into gridDim.y equal chunks (the chunk
 * computed on the device from kv_len, so the grid depends only on the
 * cache's size and a captured CUDA graph serves every position), each of
 * EMILE_WARPS warps takes every EMILE_WARPS-th key of its chunk, its lanes
 * hold ceil(D/32) consecutive elements of q and of the accumulator, the
 * dot product is a warp shuffle reduction, the softmax online (running
 * max and sum, rescaled accumulator).  The warps merge in shared memory;
 * with several splits each block writes (max, sum, accumulator) to a
 * partial buffer and a second kernel merges them per head.  The same
 * algorithm as the engine's own decode attention (src/engine/cuda).
 *
 * Expected gain over the reference: 5-20x (all SMs busy, no per-key
 * barrier).  Diagnosis it answers: latency_bound, memory_bound_below_
 * bandwidth.  Profile should show: still below the bandwidth (each query
 * head re-reads its group's K/V: GQA's G x the minimum bytes, from L2 at
 * best), short scalar loads.
 *
 * Parameters (defaults first): EMILE_WARPS 8|4|16 warps a block;
 * EMILE_SPLIT_KEYS 128|64|256|512 cache rows per split (the split count is
 * seq / EMILE_SPLIT_KEYS, at most 64).
 *
 * The partials live in a static __device__ buffer of this module (no
 * allocation in the call, so the engine can capture it in a graph): calls
 * on one stream are ordered; two streams at once would share it.  fp32,
 * fp16, bf16; any strides with a unit-stride head_dim; head_dim <= 256;
 * query heads <= 128.  Returns 1 for a dtype or tensor it does not take, 2
 * for shapes that disagree, 6 for head_dim, heads or strides it does not
 * handle.
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
#ifndef EMILE_SPLIT_KEYS
#define EMILE_SPLIT_KEYS 128
#endif

#define R1_MAX_D 256
#define R1_MAX_HEADS 128
#define R1_MAX_SPLITS 64
#define R1_EPL (R1_MAX_D / 32)          /* elements per lane at most */

template <typename T> __device__ __forceinline__ float ld(const T *p);
template <> __device__ __forceinline__ float ld<float>(const float *p) { return *p; }
template <> __device__ __forceinline__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ T cvt(float x);
template <> __device__ __forceinline__ float cvt<float>(float x) { return x; }
template <> __device__ __forceinline__ __half cvt<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* (max, sum, accumulator[D]) of each (head, split) */
__device__ float r1_part[R1_MAX_HEADS * R1_MAX_SPLITS * (R1_MAX_D + 2)];

struct r1_problem {
    const void *q, *k, *v;
    void *o;
    const int32_t *len;
    int64_t sq, sk0, sk1, sv0, sv1, so;     /* head / row strides (head_dim unit-stride) */
    int hq, hkv, d, seq;
};

template <typename T>
__global__ void __launch_bounds__(EMILE_WARPS * 32) r1_split(r1_problem p)
{
    __shared__ float sm[EMILE_WARPS], sl[EMILE_WARPS], sacc[EMILE_WARPS][R1_MAX_D];
    const int h = blockIdx.x, sp = blockIdx.y, nsp = gridDim.y;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = h / (p.hq / p.hkv);
    int L = *p.len;
    L = L < 1 ? 1 : (L > p.seq ? p.seq : L);
    const int chunk = (L + nsp - 1) / nsp, j0 = sp * chunk, j1 = min(L, j0 + chunk);
    const int epl = (p.d + 31) / 32, e0 = lane * epl;
    const int ne = e0 >= p.d ? 0 : min(epl, p.d - e0);
    const float scale = rsqrtf((float)p.d);
    float qv[R1_EPL], acc[R1_EPL];
#pragma unroll
    for (int e = 0; e < R1_EPL; e++) {
        qv[e] = e < ne ? ld((const T *)p.q + h * p.sq + e0 + e) * scale : 0.f;
        acc[e] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int j = j0 + w; j < j1; j += EMILE_WARPS) {
        const T *kr = (const T *)p.k + j * p.sk0 + g * p.sk1 + e0;
        const T *vr = (const T *)p.v + j * p.sv0 + g * p.sv1 + e0;
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < R1_EPL; e++)
            if (e < ne)
                s += qv[e] * ld(kr + e);
        for (int o = 16; o; o >>= 1)
            s += __shfl_xor_sync(0xffffffffu, s, o);
        const float mn = fmaxf(m, s), c = __expf(m - mn), pj = __expf(s - mn);
        l = l * c + pj;
#pragma unroll
        for (int e = 0; e < R1_EPL; e++)
            if (e < ne)
                acc[e] = acc[e] * c + pj * ld(vr + e);
        m = mn;
    }
    if (lane == 0) { sm[w] = m; sl[w] = l; }
#pragma unroll
    for (int e = 0; e < R1_EPL; e++)
        if (e < ne)
            sacc[w][e0 + e] = acc[e];
    __syncthreads();
    float M = -INFINITY;
    for (int i = 0; i < EMILE_WARPS; i++) M = fmaxf(M, sm[i]);
    float Ls = 0.f;
    for (int i = 0; i < EMILE_WARPS; i++)
        if (sm[i] != -INFINITY) Ls += sl[i] * __expf(sm[i] - M);
    float *pp = r1_part + ((size_t)h * nsp + sp) * (p.d + 2);
    if (nsp > 1 && threadIdx.x == 0) { pp[0] = M; pp[1] = Ls; }
    for (int d = threadIdx.x; d < p.d; d += blockDim.x) {
        float o = 0.f;
        for (int i = 0; i < EMILE_WARPS; i++)
            if (sm[i] != -INFINITY) o += sacc[i][d] * __expf(sm[i] - M);
        if (nsp > 1)
            pp[2 + d] = o;
        else
            ((T *)p.o)[h * p.so + d] = cvt<T>(o / Ls);
    }
}

/* Merge the splits of head blockIdx.x (those that found no key: max -inf). */
template <typename T>
__global__ void r1_combine(r1_problem p, int nsp)
{
    const int h = blockIdx.x;
    const float *pp = r1_part + (size_t)h * nsp * (p.d + 2);
    float M = -INFINITY;
    for (int s = 0; s < nsp; s++) M = fmaxf(M, pp[s * (p.d + 2)]);
    for (int d = threadIdx.x; d < p.d; d += blockDim.x) {
        float L = 0.f, o = 0.f;
        for (int s = 0; s < nsp; s++) {
            const float ms = pp[s * (p.d + 2)];
            if (ms == -INFINITY) continue;
            const float f = __expf(ms - M);
            L += pp[s * (p.d + 2) + 1] * f;
            o += pp[s * (p.d + 2) + 2 + d] * f;
        }
        ((T *)p.o)[h * p.so + d] = cvt<T>(o / L);
    }
}

template <typename T>
static int launch(const r1_problem &p, cudaStream_t st)
{
    int nsp = (p.seq + EMILE_SPLIT_KEYS - 1) / EMILE_SPLIT_KEYS;
    nsp = nsp < 1 ? 1 : (nsp > R1_MAX_SPLITS ? R1_MAX_SPLITS : nsp);
    r1_split<T><<<dim3(p.hq, nsp), EMILE_WARPS * 32, 0, st>>>(p);
    if (nsp > 1)
        r1_combine<T><<<p.hq, 128, 0, st>>>(p, nsp);
    return 0;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k"), *v = emile_tensor(a, "v");
    emile_tensor_t *o = emile_tensor(a, "o"), *len = emile_tensor(a, "kv_len");
    if (!q || !k || !v || !o || !len || len->dtype != EMILE_DTYPE_I32 || q->ndim != 2 ||
        k->ndim != 3 || v->ndim != 3 || o->ndim != 2 || k->dtype != q->dtype ||
        v->dtype != q->dtype || o->dtype != q->dtype)
        return 1;
    r1_problem p;
    p.hq = (int)q->shape[0]; p.d = (int)q->shape[1];
    p.seq = (int)k->shape[0]; p.hkv = (int)k->shape[1];
    if (p.hkv <= 0 || p.hq % p.hkv || k->shape[2] != p.d || v->shape[0] != p.seq ||
        v->shape[1] != p.hkv || v->shape[2] != p.d || o->shape[0] != p.hq || o->shape[1] != p.d)
        return 2;
    if (p.d > R1_MAX_D || p.hq > R1_MAX_HEADS || q->strides[1] != 1 || k->strides[2] != 1 ||
        v->strides[2] != 1 || o->strides[1] != 1)
        return 6;
    p.sq = q->strides[0]; p.so = o->strides[0];
    p.sk0 = k->strides[0]; p.sk1 = k->strides[1];
    p.sv0 = v->strides[0]; p.sv1 = v->strides[1];
    p.q = q->data; p.k = k->data; p.v = v->data; p.o = o->data;
    p.len = (const int32_t *)len->data;
    cudaStream_t st = (cudaStream_t)a->stream;
    switch (q->dtype) {
    case EMILE_DTYPE_F32: launch<float>(p, st); break;
    case EMILE_DTYPE_F16: launch<__half>(p, st); break;
    case EMILE_DTYPE_BF16: launch<__nv_bfloat16>(p, st); break;
    default: return 1;
    }
    return cudaGetLastError() == cudaSuccess ? 0 : 10;
}
