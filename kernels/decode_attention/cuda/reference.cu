/*
 * reference.cu -- decode attention on CUDA, the naive reference (oracle and
 * floor of a cuda decode_attention task; kernels/decode_attention/op.json).
 *
 *   tensors  q [Hq, D]   k, v [S, Hkv, D] (the cache)   kv_len [1] i32 (device)
 *            o [Hq, D]
 *   o[h] = sum_{j < kv_len} softmax_j(q[h] . k[j, h/(Hq/Hkv)] / sqrt(D)) v[j, h/(Hq/Hkv)]
 *
 * One block per query head, one thread per element of the head (D <= 512,
 * 128 threads, each up to four elements), one key at a time: the block sums
 * q . k_j (a shared-memory reduction), every thread updates the running max,
 * sum and its elements of the accumulator (online softmax), fp32 throughout.
 * kv_len is read on the device, so the launch does not depend on it.  No
 * reuse of the cache between the heads of a GQA group, no vector loads, two
 * barriers a key: slow on purpose.
 *
 * Dtypes: fp32, fp16, bf16 (q, k, v, o share one).  Any strides.  Returns
 * 1 for a missing tensor or a dtype it does not take, 2 for shapes that
 * disagree, 3 for head_dim above 512.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include "emile.h"

template <typename T> __device__ __forceinline__ float ld(const T *p);
template <> __device__ __forceinline__ float ld<float>(const float *p) { return *p; }
template <> __device__ __forceinline__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ T cvt(float x);
template <> __device__ __forceinline__ float cvt<float>(float x) { return x; }
template <> __device__ __forceinline__ __half cvt<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

struct dec_problem {
    const void *q, *k, *v;
    void *o;
    const int32_t *len;
    int64_t sq[2], sk[3], sv[3], so[2];
    int hq, hkv, d, seq;
};

#define REF_THREADS 128

/* Sum over the block; every thread gets it. */
__device__ static float block_sum(float x, float *red)
{
    for (int o = 16; o; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    __syncthreads();                               /* red is free again */
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = x;
    __syncthreads();
    float s = 0.f;
    for (int w = 0; w < REF_THREADS / 32; w++) s += red[w];
    return s;
}

template <typename T>
__global__ void __launch_bounds__(REF_THREADS) ref_decode(dec_problem p)
{
    __shared__ float red[REF_THREADS / 32];
    const int h = blockIdx.x, g = h / (p.hq / p.hkv);
    int L = *p.len;
    L = L < 1 ? 1 : (L > p.seq ? p.seq : L);
    const float scale = rsqrtf((float)p.d);
    float q[4], acc[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const int d = threadIdx.x + e * REF_THREADS;
        q[e] = d < p.d ? ld((const T *)p.q + h * p.sq[0] + d * p.sq[1]) * scale : 0.f;
        acc[e] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int j = 0; j < L; j++) {
        const T *kr = (const T *)p.k + j * p.sk[0] + g * p.sk[1];
        const T *vr = (const T *)p.v + j * p.sv[0] + g * p.sv[1];
        float part = 0.f;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int d = threadIdx.x + e * REF_THREADS;
            if (d < p.d)
                part += q[e] * ld(kr + d * p.sk[2]);
        }
        const float s = block_sum(part, red);
        const float mn = fmaxf(m, s), c = expf(m - mn), pj = expf(s - mn);
        l = l * c + pj;
        m = mn;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int d = threadIdx.x + e * REF_THREADS;
            if (d < p.d)
                acc[e] = acc[e] * c + pj * ld(vr + d * p.sv[2]);
        }
    }
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const int d = threadIdx.x + e * REF_THREADS;
        if (d < p.d)
            ((T *)p.o)[h * p.so[0] + d * p.so[1]] = cvt<T>(acc[e] / l);
    }
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k"), *v = emile_tensor(a, "v");
    emile_tensor_t *o = emile_tensor(a, "o"), *len = emile_tensor(a, "kv_len");
    if (!q || !k || !v || !o || !len || len->dtype != EMILE_DTYPE_I32 || q->ndim != 2 ||
        k->ndim != 3 || v->ndim != 3 || o->ndim != 2 || k->dtype != q->dtype ||
        v->dtype != q->dtype || o->dtype != q->dtype)
        return 1;
    dec_problem p;
    p.hq = (int)q->shape[0]; p.d = (int)q->shape[1];
    p.seq = (int)k->shape[0]; p.hkv = (int)k->shape[1];
    if (p.hkv <= 0 || p.hq % p.hkv || k->shape[2] != p.d || v->shape[0] != p.seq ||
        v->shape[1] != p.hkv || v->shape[2] != p.d || o->shape[0] != p.hq || o->shape[1] != p.d)
        return 2;
    if (p.d > 4 * REF_THREADS)
        return 3;
    for (int i = 0; i < 2; i++) { p.sq[i] = q->strides[i]; p.so[i] = o->strides[i]; }
    for (int i = 0; i < 3; i++) { p.sk[i] = k->strides[i]; p.sv[i] = v->strides[i]; }
    p.q = q->data; p.k = k->data; p.v = v->data; p.o = o->data;
    p.len = (const int32_t *)len->data;
    cudaStream_t st = (cudaStream_t)a->stream;
    switch (q->dtype) {
    case EMILE_DTYPE_F32: ref_decode<float><<<p.hq, REF_THREADS, 0, st>>>(p); break;
    case EMILE_DTYPE_F16: ref_decode<__half><<<p.hq, REF_THREADS, 0, st>>>(p); break;
    case EMILE_DTYPE_BF16: ref_decode<__nv_bfloat16><<<p.hq, REF_THREADS, 0, st>>>(p); break;
    default: return 1;
    }
    return cudaGetLastError() == cudaSuccess ? 0 : 10;
}
