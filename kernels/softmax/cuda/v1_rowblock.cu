/*
 * v1_rowblock.cu -- row softmax on CUDA, rung 1: one thread block per row.
 *
 * Idea: softmax is memory bound (each element read once and written once),
 * so the kernel's job is to stream every row at the bandwidth: a block of
 * EMILE_BLOCK threads walks its row with coalesced loads three times (max,
 * sum of exp, write), the second and third passes hitting L2 for rows of up
 * to a few hundred KB; reductions are warp shuffles then one shared-memory
 * step.  fp32 arithmetic whatever the storage dtype (f32, f16, bf16).
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
__global__ void __launch_bounds__(EMILE_BLOCK) softmax_rows(const T *x, T *y, int64_t cols, int64_t xr, int64_t xc,
                                                            int64_t yr, int64_t yc)
{
    const T *xrow = x + blockIdx.x * xr;
    T *yrow = y + blockIdx.x * yr;
    float m = -INFINITY;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        m = fmaxf(m, ld(xrow + c * xc));
    m = block_reduce<true>(m);
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        s += __expf(ld(xrow + c * xc) - m);
    s = block_reduce<false>(s);
    const float inv = 1.0f / s;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        st(yrow + c * yc, __expf(ld(xrow + c * xc) - m) * inv);
}

template <typename T> static int launch(const emile_tensor_t *x, emile_tensor_t *y, cudaStream_t s)
{
    softmax_rows<T><<<(unsigned)x->shape[0], EMILE_BLOCK, 0, s>>>((const T *)x->data, (T *)y->data, x->shape[1],
                                                               x->strides[0], x->strides[1], y->strides[0],
                                                               y->strides[1]);
    return cudaGetLastError() == cudaSuccess ? 0 : 4;
}

extern "C" EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *x = emile_tensor(args, "x");
    emile_tensor_t *y = emile_tensor(args, "y");
    if (!x || !y || x->ndim != 2 || y->ndim != 2 || x->dtype != y->dtype)
        return 1;
    if (x->shape[0] != y->shape[0] || x->shape[1] != y->shape[1] || x->shape[0] <= 0 || x->shape[1] <= 0 ||
        x->shape[0] > 2147483647)
        return 2;
    cudaStream_t s = (cudaStream_t)args->stream;
    switch (x->dtype) {
    case EMILE_DTYPE_F32: return launch<float>(x, y, s);
    case EMILE_DTYPE_F16: return launch<__half>(x, y, s);
    case EMILE_DTYPE_BF16: return launch<__nv_bfloat16>(x, y, s);
    default: return 1;
    }
}
