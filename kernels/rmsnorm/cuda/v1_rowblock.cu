/*
 * v1_rowblock.cu -- RMSNorm on CUDA, rung 1: one thread block per row.
 *
 * Idea: RMSNorm is memory bound (x read, y written, w from L2), so the
 * kernel's job is to stream every row at the bandwidth: a block of
 * EMILE_BLOCK threads walks its row with coalesced loads twice (the sum of
 * squares, then y = x * rsqrt(mean + eps) * w), the second pass hitting L2;
 * the reduction is warp shuffles then one shared-memory step.  fp32
 * arithmetic whatever the storage dtype (f32, f16, bf16).
 * Every launch is on args->stream.
 *
 * Diagnosis it answers: memory_bound_below_bandwidth, latency_bound.
 * Parameters: EMILE_BLOCK threads per block 128, 256, 512, 1024 (default 256).
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include "emile.h"

#ifndef EMILE_BLOCK
#define EMILE_BLOCK 256
#endif

template <typename T> __device__ __forceinline__ float ld(const T *p);
template <> __device__ __forceinline__ float ld<float>(const float *p) { return *p; }
template <> __device__ __forceinline__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ void st(T *p, float v);
template <> __device__ __forceinline__ void st<float>(float *p, float v) { *p = v; }
template <> __device__ __forceinline__ void st<__half>(__half *p, float v) { *p = __float2half(v); }
template <> __device__ __forceinline__ void st<__nv_bfloat16>(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }

/* Block-wide max or sum; every thread gets the result. */
template <bool MAX> __device__ float block_reduce(float v)
{
    __shared__ float part[32];
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = MAX ? fmaxf(v, w) : v + w;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? part[lane] : (MAX ? -INFINITY : 0.0f);
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) {
            float w = __shfl_xor_sync(0xffffffffu, v, o);
            v = MAX ? fmaxf(v, w) : v + w;
        }
    if (threadIdx.x == 0)
        part[0] = v;
    __syncthreads();
    v = part[0];
    __syncthreads();
    return v;
}

template <typename T>
__global__ void __launch_bounds__(EMILE_BLOCK) rmsnorm_rows(const T *x, const T *w, T *y, int64_t cols, float eps,
                                                            int64_t xr, int64_t xc, int64_t ws, int64_t yr,
                                                            int64_t yc)
{
    const T *xrow = x + blockIdx.x * xr;
    T *yrow = y + blockIdx.x * yr;
    float ss = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = ld(xrow + c * xc);
        ss += v * v;
    }
    ss = block_reduce<false>(ss);
    const float inv = rsqrtf(ss / (float)cols + eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        st(yrow + c * yc, ld(xrow + c * xc) * inv * ld(w + c * ws));
}

template <typename T>
static int launch(const emile_tensor_t *x, const emile_tensor_t *w, emile_tensor_t *y, float eps, cudaStream_t s)
{
    rmsnorm_rows<T><<<(unsigned)x->shape[0], EMILE_BLOCK, 0, s>>>((const T *)x->data, (const T *)w->data,
                                                               (T *)y->data, x->shape[1], eps, x->strides[0],
                                                               x->strides[1], w->strides[0], y->strides[0],
                                                               y->strides[1]);
    return cudaGetLastError() == cudaSuccess ? 0 : 4;
}

extern "C" EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *x = emile_tensor(args, "x"), *w = emile_tensor(args, "w");
    emile_tensor_t *y = emile_tensor(args, "y");
    if (!x || !w || !y || x->ndim != 2 || w->ndim != 1 || y->ndim != 2 || x->dtype != y->dtype ||
        w->dtype != x->dtype)
        return 1;
    if (x->shape[0] != y->shape[0] || x->shape[1] != y->shape[1] || w->shape[0] != x->shape[1] ||
        x->shape[0] <= 0 || x->shape[1] <= 0 || x->shape[0] > 2147483647)
        return 2;
    const float eps = (float)emile_param(args, "eps", 1e-6);
    cudaStream_t s = (cudaStream_t)args->stream;
    switch (x->dtype) {
    case EMILE_DTYPE_F32: return launch<float>(x, w, y, eps, s);
    case EMILE_DTYPE_F16: return launch<__half>(x, w, y, eps, s);
    case EMILE_DTYPE_BF16: return launch<__nv_bfloat16>(x, w, y, eps, s);
    default: return 1;
    }
}
