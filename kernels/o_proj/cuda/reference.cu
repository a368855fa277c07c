/*
 * reference.cu -- o_proj on CUDA, the naive reference (oracle and floor of a
 * cuda o_proj task; kernels/o_proj/op.json): the attention output projection of a decode step.
 *
 *   tensors  x [n, q_dim]   w [hidden, q_dim]   y [n, hidden] fp32
 *   y[t, o] = sum_i x[t, i] w[o, i]
 *
 * One thread per output, the dot product in fp32 in order, one element at a
 * time: neighbouring threads read rows q_dim elements apart, so every load
 * of w is its own memory transaction.  Slow on purpose.
 *
 * Dtypes of x and w: fp32, fp16, bf16 (one of them); y is fp32.  Any
 * strides.  Returns 1 for a missing tensor or a dtype it does not take, 2
 * for shapes that disagree.
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
/* x rounded to T and back: what storing it in T keeps */
template <typename T> __device__ __forceinline__ float rnd(float x) { T t = cvt<T>(x); return ld(&t); }

/* A 2-d view: element (r, c) at data + r * s0 + c * s1. */
struct view2 { const void *data; int64_t s0, s1; };
static view2 view(const emile_tensor_t *t) { view2 v = { t->data, t->strides[0], t->strides[1] }; return v; }

/* y[t, r] = sum_i x[t, i] w[r, i] in fp32, in order. */
template <typename T>
__device__ __forceinline__ float dot_row(view2 x, view2 w, int64_t t, int64_t r, int64_t K)
{
    float acc = 0.f;
    for (int64_t i = 0; i < K; i++)
        acc += ld((const T *)x.data + t * x.s0 + i * x.s1) * ld((const T *)w.data + r * w.s0 + i * w.s1);
    return acc;
}

#define DISPATCH(dt, F, ...) \
    switch (dt) { \
    case EMILE_DTYPE_F32: F<float>(__VA_ARGS__); break; \
    case EMILE_DTYPE_F16: F<__half>(__VA_ARGS__); break; \
    case EMILE_DTYPE_BF16: F<__nv_bfloat16>(__VA_ARGS__); break; \
    default: return 1; }

template <typename T>
__global__ void ref_plain(view2 x, view2 w, float *y, int64_t ys0, int64_t ys1, int64_t n,
                          int64_t M, int64_t K)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * M)
        return;
    const int64_t t = i / M, r = i % M;
    y[t * ys0 + r * ys1] = dot_row<T>(x, w, t, r, K);
}

template <typename T>
static void launch(view2 x, view2 w, const emile_tensor_t *y, int64_t n, int64_t M, int64_t K,
                   cudaStream_t st)
{
    ref_plain<T><<<(unsigned)((n * M + 255) / 256), 256, 0, st>>>(x, w, (float *)y->data,
                                                                   y->strides[0], y->strides[1], n, M, K);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w"), *y = emile_tensor(a, "y");
    if (!x || !w || !y || x->ndim != 2 || w->ndim != 2 || y->ndim != 2 || w->dtype != x->dtype ||
        y->dtype != EMILE_DTYPE_F32)
        return 1;
    const int64_t n = x->shape[0], K = x->shape[1], M = w->shape[0];
    if (w->shape[1] != K || y->shape[0] != n || y->shape[1] != M)
        return 2;
    DISPATCH(x->dtype, launch, view(x), view(w), y, n, M, K, (cudaStream_t)a->stream)
    return cudaGetLastError() == cudaSuccess ? 0 : 10;
}
