/*
 * reference.cu -- RMSNorm on CUDA, the naive reference (oracle and floor of a
 * cuda rmsnorm task written in C): one thread per row, two passes, fp32
 * arithmetic.  f32, f16, bf16; any strides.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include "emile.h"

template <typename T> __device__ float ld(const T *p) { return (float)*p; }
template <> __device__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
template <> __device__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <typename T> __device__ void st(T *p, float v) { *p = (T)v; }
template <> __device__ void st<__nv_bfloat16>(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }
template <> __device__ void st<__half>(__half *p, float v) { *p = __float2half(v); }

template <typename T>
__global__ void rmsnorm_naive(const T *x, const T *w, T *y, int64_t rows, int64_t cols, float eps, int64_t xr,
                              int64_t xc, int64_t ws, int64_t yr, int64_t yc)
{
    int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows)
        return;
    float ss = 0.0f;
    for (int64_t c = 0; c < cols; c++) {
        float v = ld(x + r * xr + c * xc);
        ss += v * v;
    }
    float inv = 1.0f / sqrtf(ss / (float)cols + eps);
    for (int64_t c = 0; c < cols; c++)
        st(y + r * yr + c * yc, ld(x + r * xr + c * xc) * inv * ld(w + c * ws));
}

template <typename T>
static int launch(const emile_tensor_t *x, const emile_tensor_t *w, emile_tensor_t *y, float eps, cudaStream_t s)
{
    int64_t rows = x->shape[0];
    rmsnorm_naive<T><<<(unsigned)((rows + 127) / 128), 128, 0, s>>>((const T *)x->data, (const T *)w->data,
                                                                    (T *)y->data, rows, x->shape[1], eps,
                                                                    x->strides[0], x->strides[1], w->strides[0],
                                                                    y->strides[0], y->strides[1]);
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
        x->shape[0] <= 0 || x->shape[1] <= 0)
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
