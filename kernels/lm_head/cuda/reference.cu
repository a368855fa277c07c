/*
 * reference.cu -- lm_head on CUDA, the naive reference (oracle and floor of a
 * cuda lm_head task; kernels/lm_head/op.json): a decode step's logits and
 * greedy pick.
 *
 *   tensors  x [n, hidden]   w [vocab, hidden]   logits [n, vocab] fp32
 *            idx [n] i32
 *   logits[t, o] = sum_i x[t, i] w[o, i];  idx[t] = the first o with the
 *   largest logits[t, o]
 *
 * One thread per logit (the dot product in fp32 in order, uncoalesced), then
 * one block per token scans its logits for the first largest.  Slow on
 * purpose.
 *
 * Dtypes of x and w: fp32, fp16, bf16 (one of them).  Any strides.  Returns
 * 1 for a missing tensor or a dtype it does not take, 2 for shapes that
 * disagree.
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
__global__ void ref_logits(view2 x, view2 w, float *lg, int64_t ls0, int64_t ls1, int64_t n,
                           int64_t V, int64_t K)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * V)
        return;
    const int64_t t = i / V, r = i % V;
    lg[t * ls0 + r * ls1] = dot_row<T>(x, w, t, r, K);
}

/* Block t: the first index of the largest logit of token t. */
__global__ void ref_argmax(const float *lg, int64_t ls0, int64_t ls1, int64_t V, int32_t *idx,
                           int64_t is0)
{
    __shared__ float bv[256];
    __shared__ int64_t bi[256];
    const int64_t t = blockIdx.x;
    float best = -INFINITY;
    int64_t at = -1;
    for (int64_t o = threadIdx.x; o < V; o += blockDim.x) {
        const float v = lg[t * ls0 + o * ls1];
        if (at < 0 || v > best) { best = v; at = o; }
    }
    bv[threadIdx.x] = best;
    bi[threadIdx.x] = at;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            const float ov = bv[threadIdx.x + s];
            const int64_t oi = bi[threadIdx.x + s];
            if (oi >= 0 && (bi[threadIdx.x] < 0 || ov > bv[threadIdx.x] ||
                            (ov == bv[threadIdx.x] && oi < bi[threadIdx.x]))) {
                bv[threadIdx.x] = ov;
                bi[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        idx[t * is0] = (int32_t)bi[0];
}

template <typename T>
static void launch(view2 x, view2 w, const emile_tensor_t *lg, const emile_tensor_t *idx,
                   int64_t n, int64_t V, int64_t K, cudaStream_t st)
{
    ref_logits<T><<<(unsigned)((n * V + 255) / 256), 256, 0, st>>>(
        x, w, (float *)lg->data, lg->strides[0], lg->strides[1], n, V, K);
    ref_argmax<<<(unsigned)n, 256, 0, st>>>((const float *)lg->data, lg->strides[0],
                                            lg->strides[1], V, (int32_t *)idx->data, idx->strides[0]);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    emile_tensor_t *lg = emile_tensor(a, "logits"), *idx = emile_tensor(a, "idx");
    if (!x || !w || !lg || !idx || x->ndim != 2 || w->ndim != 2 || lg->ndim != 2 ||
        idx->ndim != 1 || w->dtype != x->dtype || lg->dtype != EMILE_DTYPE_F32 ||
        idx->dtype != EMILE_DTYPE_I32)
        return 1;
    const int64_t n = x->shape[0], K = x->shape[1], V = w->shape[0];
    if (w->shape[1] != K || lg->shape[0] != n || lg->shape[1] != V || idx->shape[0] != n)
        return 2;
    DISPATCH(x->dtype, launch, view(x), view(w), lg, idx, n, V, K, (cudaStream_t)a->stream)
    return cudaGetLastError() == cudaSuccess ? 0 : 10;
}
