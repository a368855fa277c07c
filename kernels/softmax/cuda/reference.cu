/*
 * reference.cu -- row softmax on CUDA, the naive reference (oracle and floor
 * of a cuda softmax task written in C): one thread per row, three passes,
 * fp32 arithmetic, libm's expf.  f32, f16, bf16; any strides.
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
__global__ void softmax_naive(const T *x, T *y, int64_t rows, int64_t cols, int64_t xr, int64_t xc, int64_t yr,
                              int64_t yc)
{
    int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows)
        return;
    float m = -INFINITY, s = 0.0f;
    for (int64_t c = 0; c < cols; c++)
        m = fmaxf(m, ld(x + r * xr + c * xc));
    for (int64_t c = 0; c < cols; c++)
        s += expf(ld(x + r * xr + c * xc) - m);
    for (int64_t c = 0; c < cols; c++)
        st(y + r * yr + c * yc, expf(ld(x + r * xr + c * xc) - m) / s);
}

template <typename T> static int launch(const emile_tensor_t *x, emile_tensor_t *y, cudaStream_t s)
{
    int64_t rows = x->shape[0];
    softmax_naive<T><<<(unsigned)((rows + 127) / 128), 128, 0, s>>>((const T *)x->data, (T *)y->data, rows, x->shape[1],
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
    if (x->shape[0] != y->shape[0] || x->shape[1] != y->shape[1] || x->shape[0] <= 0 || x->shape[1] <= 0)
        return 2;
    cudaStream_t s = (cudaStream_t)args->stream;
    switch (x->dtype) {
    case EMILE_DTYPE_F32: return launch<float>(x, y, s);
    case EMILE_DTYPE_F16: return launch<__half>(x, y, s);
    case EMILE_DTYPE_BF16: return launch<__nv_bfloat16>(x, y, s);
    default: return 1;
    }
}
