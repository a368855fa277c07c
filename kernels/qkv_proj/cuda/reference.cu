/*
 * reference.cu -- qkv_proj on CUDA, the naive reference (oracle and floor of
 * a cuda qkv_proj task; kernels/qkv_proj/op.json): a decode step's
 * attention input.
 *
 *   tensors  x [n, H]  w [(Hq + 2 Hkv) D, H]  q_norm, k_norm [D]
 *            rope [R, D/2, 2] fp32 (cos, sin)  pos [1] i32 (device)
 *            q [n, Hq, D]  k, v [n, Hkv, D]
 *   [q | k | v] = x w^T rounded to the dtype; then for q and k, per head,
 *   y = x / sqrt(mean(x^2) + eps) * norm and RoPE with rotate_half pairing
 *   at position pos[0] + t (fp32 math, as the engine's k_qkv_post).
 *
 * Two launches: one thread per projected element (the dot product in fp32
 * in order, uncoalesced) writes the rounded projections into q, k and v;
 * then one block per (token, q or k head) normalises and turns its head in
 * place.  pos is read on the device.  Slow on purpose.
 *
 * Dtypes of x, w, the norms and the outputs: fp32, fp16, bf16 (one of
 * them).  Any strides.  Returns 1 for a missing tensor or a dtype it does
 * not take, 2 for shapes that disagree, 3 for head_dim odd or above 1024.
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

struct qkv_out {
    void *q, *k, *v;
    int64_t sq[3], sk[3], sv[3];
    int hq, hkv, d;
};

/* Where projected row r (of w) of token t is stored. */
template <typename T>
__device__ __forceinline__ T *slot(const qkv_out &o, int64_t t, int64_t r)
{
    const int64_t qd = (int64_t)o.hq * o.d, kvd = (int64_t)o.hkv * o.d;
    if (r < qd)
        return (T *)o.q + t * o.sq[0] + (r / o.d) * o.sq[1] + (r % o.d) * o.sq[2];
    r -= qd;
    if (r < kvd)
        return (T *)o.k + t * o.sk[0] + (r / o.d) * o.sk[1] + (r % o.d) * o.sk[2];
    r -= kvd;
    return (T *)o.v + t * o.sv[0] + (r / o.d) * o.sv[1] + (r % o.d) * o.sv[2];
}

template <typename T>
__global__ void ref_proj(view2 x, view2 w, qkv_out o, int64_t n, int64_t M, int64_t K)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * M)
        return;
    const int64_t t = i / M, r = i % M;
    *slot<T>(o, t, r) = cvt<T>(dot_row<T>(x, w, t, r, K));
}

/* Block (t, head): heads [0, Hq) are q's, [Hq, Hq + Hkv) k's. */
template <typename T>
__global__ void ref_norm_rope(qkv_out o, const T *qn, int64_t qns, const T *kn, int64_t kns,
                              const float *rope, int64_t rs0, int64_t rs1, int64_t rs2,
                              const int32_t *pos, float eps)
{
    __shared__ float y[1024], red[32];
    const int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, D = o.d, half = D / 2;
    const int isq = h < o.hq;
    T *base = isq ? (T *)o.q + t * o.sq[0] + h * o.sq[1] : (T *)o.k + t * o.sk[0] + (h - o.hq) * o.sk[1];
    const int64_t es = isq ? o.sq[2] : o.sk[2];
    const float xi = i < D ? ld(base + i * es) : 0.f;
    float ss = xi * xi;
    for (int s = 16; s; s >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, s);
    if ((i & 31) == 0) red[i / 32] = ss;
    __syncthreads();
    float tot = 0.f;
    for (int wi = 0; wi < ((int)blockDim.x + 31) / 32; wi++) tot += red[wi];
    const float r = rsqrtf(tot / D + eps);
    if (i < D)
        y[i] = ld(isq ? qn + i * qns : kn + i * kns) * (xi * r);
    __syncthreads();
    if (i >= D)
        return;
    const int64_t p = (int64_t)*pos + t;
    const float c = rope[p * rs0 + (i % half) * rs1], sn = rope[p * rs0 + (i % half) * rs1 + rs2];
    const float out = i < half ? y[i] * c - y[i + half] * sn : y[i] * c + y[i - half] * sn;
    base[i * es] = cvt<T>(out);
}

template <typename T>
static void launch(view2 x, view2 w, qkv_out o, const emile_tensor_t *qn, const emile_tensor_t *kn,
                   const emile_tensor_t *rope, const int32_t *pos, float eps, int64_t n, int64_t K,
                   cudaStream_t st)
{
    const int64_t M = (int64_t)(o.hq + 2 * o.hkv) * o.d;
    ref_proj<T><<<(unsigned)((n * M + 255) / 256), 256, 0, st>>>(x, w, o, n, M, K);
    ref_norm_rope<T><<<dim3((unsigned)n, (unsigned)(o.hq + o.hkv)), (o.d + 31) / 32 * 32, 0, st>>>(
        o, (const T *)qn->data, qn->strides[0], (const T *)kn->data, kn->strides[0],
        (const float *)rope->data, rope->strides[0], rope->strides[1], rope->strides[2], pos, eps);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    emile_tensor_t *x = emile_tensor(a, "x"), *w = emile_tensor(a, "w");
    emile_tensor_t *qn = emile_tensor(a, "q_norm"), *kn = emile_tensor(a, "k_norm");
    emile_tensor_t *rope = emile_tensor(a, "rope"), *pos = emile_tensor(a, "pos");
    emile_tensor_t *q = emile_tensor(a, "q"), *k = emile_tensor(a, "k"), *v = emile_tensor(a, "v");
    if (!x || !w || !qn || !kn || !rope || !pos || !q || !k || !v)
        return 1;
    const int dt = x->dtype;
    if (x->ndim != 2 || w->ndim != 2 || q->ndim != 3 || k->ndim != 3 || v->ndim != 3 ||
        rope->ndim != 3 || w->dtype != dt || qn->dtype != dt || kn->dtype != dt || q->dtype != dt ||
        k->dtype != dt || v->dtype != dt || rope->dtype != EMILE_DTYPE_F32 ||
        pos->dtype != EMILE_DTYPE_I32)
        return 1;
    const int64_t n = x->shape[0], K = x->shape[1];
    qkv_out o;
    o.hq = (int)q->shape[1]; o.hkv = (int)k->shape[1]; o.d = (int)q->shape[2];
    if (o.d % 2 || o.d > 1024)
        return 3;
    if (w->shape[0] != (int64_t)(o.hq + 2 * o.hkv) * o.d || w->shape[1] != K || q->shape[0] != n ||
        k->shape[0] != n || v->shape[0] != n || v->shape[1] != o.hkv || k->shape[2] != o.d ||
        v->shape[2] != o.d || qn->shape[0] != o.d || kn->shape[0] != o.d ||
        rope->shape[1] != o.d / 2 || rope->shape[2] != 2)
        return 2;
    o.q = q->data; o.k = k->data; o.v = v->data;
    for (int i = 0; i < 3; i++) { o.sq[i] = q->strides[i]; o.sk[i] = k->strides[i]; o.sv[i] = v->strides[i]; }
    const float eps = (float)emile_param(a, "eps", 1e-6);
    DISPATCH(dt, launch, view(x), view(w), o, qn, kn, rope, (const int32_t *)pos->data, eps, n, K,
             (cudaStream_t)a->stream)
    return cudaGetLastError() == cudaSuccess ? 0 : 10;
}
