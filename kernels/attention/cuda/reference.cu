/*
 * reference.cu -- naive attention prefill on CUDA: the oracle and the floor.
 *
 * The usual PyTorch eager algorithm, kept simple on purpose (no tensor cores,
 * no tiling, fp32 throughout):
 *   for each chunk of (batch, head) pairs:
 *     scores[i,j] = scale * q[i,:].k[j,:]      (fp32, S x S per head, scratch)
 *     scores[i,j] = -inf where j > i           (causal)
 *     p[i,:]      = softmax(scores[i,:])       (in place)
 *     o[i,:]      = sum_j p[i,j] v[j,:]        (fp32 accumulate, stored in o's dtype)
 * The scratch (cudaMallocAsync/cudaFreeAsync on the stream, nothing outlives
 * the call) holds as many heads as fit in EMILE_REF_SCRATCH_MB (default
 * 2048 MiB), so B=1, S=16384 (1 GiB per head) runs in chunks of 2 heads.
 *
 * Dtypes: fp32, fp16, bf16 (inputs and output share one dtype).  Any strides
 * (element units, last dimension contiguous or not).  Grouped-query heads:
 * head h reads kv head h / (Hq/Hkv).
 *
 * Measured (H100, bench/attention_cuda.py, causal GQA bf16 Hq=32 Hkv=8 D=128):
 *   1.5 TFLOP/s at every shape from 1x1024 to 1x8192 (360 ms at 1x8192).
 * Cost: 4 B Hq S^2 D flops on CUDA cores with no reuse beyond L1/L2, plus
 * 12 B Hq S^2 bytes of scratch traffic; expect a few TFLOP/s at best.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include "emile.h"

#ifndef EMILE_REF_SCRATCH_MB
#define EMILE_REF_SCRATCH_MB 2048
#endif

/* ---- the problem, read from the ABI ------------------------------------ */
typedef struct attn_problem {
    const void *q, *k, *v;
    void *o;
    int64_t sq[4], sk[4], sv[4], so[4];   /* element strides: batch, seq, head, dim */
    int batch, seq, hq, hkv, d, causal, dtype;
    float scale;
} attn_problem;

static int attn_parse(const emile_args_t *a, attn_problem *p)
{
    if (!a || a->abi_version != EMILE_ABI_VERSION) return EMILE_ERR_ARGS;
    emile_tensor_t *t[4] = {emile_tensor(a, "q"), emile_tensor(a, "k"),
                            emile_tensor(a, "v"), emile_tensor(a, "o")};
    for (int i = 0; i < 4; i++) {
        if (!t[i] || !t[i]->data || t[i]->ndim != 4) return EMILE_ERR_ARGS;
        if (t[i]->dtype != t[0]->dtype) return EMILE_ERR_DTYPE;
    }
    p->batch = (int)emile_param(a, "batch", (double)t[0]->shape[0]);
    p->seq = (int)emile_param(a, "seq", (double)t[0]->shape[1]);
    p->hq = (int)emile_param(a, "q_heads", (double)t[0]->shape[2]);
    p->hkv = (int)emile_param(a, "kv_heads", (double)t[1]->shape[2]);
    p->d = (int)emile_param(a, "head_dim", (double)t[0]->shape[3]);
    p->causal = emile_param(a, "causal", 0.0) != 0.0;
    p->scale = (float)emile_param(a, "scale", 1.0 / sqrt((double)p->d));
    p->dtype = t[0]->dtype;
    if (p->batch <= 0 || p->seq <= 0 || p->hq <= 0 || p->hkv <= 0 || p->d <= 0) return EMILE_ERR_PARAM;
    if (p->hq % p->hkv) return EMILE_ERR_PARAM;
    const int hs[4] = {p->hq, p->hkv, p->hkv, p->hq};
    for (int i = 0; i < 4; i++) {
        if (t[i]->shape[0] != p->batch || t[i]->shape[1] != p->seq ||
            t[i]->shape[2] != hs[i] || t[i]->shape[3] != p->d) return EMILE_ERR_SHAPE;
    }
    int64_t *dst[4] = {p->sq, p->sk, p->sv, p->so};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) dst[i][j] = t[i]->strides[j];
    p->q = t[0]->data; p->k = t[1]->data; p->v = t[2]->data; p->o = t[3]->data;
    if (p->dtype != EMILE_DTYPE_F32 && p->dtype != EMILE_DTYPE_F16 &&
        p->dtype != EMILE_DTYPE_BF16) {
        fprintf(stderr, "reference.cu: dtype %d is not supported (f32, f16, bf16)\n", p->dtype);
        return EMILE_ERR_DTYPE;
    }
    return EMILE_OK;
}

/* ---- element access ----------------------------------------------------- */
template <typename T> __device__ __forceinline__ float ld(const T *p);
template <> __device__ __forceinline__ float ld<float>(const float *p) { return *p; }
template <> __device__ __forceinline__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ T cvt(float x);
template <> __device__ __forceinline__ float cvt<float>(float x) { return x; }
template <> __device__ __forceinline__ __half cvt<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* One scores element per thread.  grid (S/16, S/16, heads in chunk). */
template <typename T>
__global__ void ref_scores(attn_problem p, float *scores, int pair0)
{
    const int j = blockIdx.x * 16 + threadIdx.x;   /* key */
    const int i = blockIdx.y * 16 + threadIdx.y;   /* query */
    const int pair = pair0 + blockIdx.z;
    if (i >= p.seq || j >= p.seq) return;
    const int b = pair / p.hq, h = pair % p.hq, hk = h / (p.hq / p.hkv);
    float *out = scores + (size_t)blockIdx.z * p.seq * p.seq + (size_t)i * p.seq + j;
    if (p.causal && j > i) { *out = -INFINITY; return; }
    const T *q = (const T *)p.q + b * p.sq[0] + i * p.sq[1] + h * p.sq[2];
    const T *k = (const T *)p.k + b * p.sk[0] + j * p.sk[1] + hk * p.sk[2];
    float acc = 0.f;
    for (int d = 0; d < p.d; d++) acc += ld(q + d * p.sq[3]) * ld(k + d * p.sk[3]);
    *out = acc * p.scale;
}

/* One row per block: max, sum of exp, normalise in place. */
__global__ void ref_softmax(float *scores, int seq)
{
    float *row = scores + (size_t)blockIdx.y * seq * seq + (size_t)blockIdx.x * seq;
    __shared__ float red[32];
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < seq; j += blockDim.x) mx = fmaxf(mx, row[j]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)blockDim.x / 32; w++) mx = fmaxf(mx, red[w]);
    __syncthreads();
    float sum = 0.f;
    for (int j = threadIdx.x; j < seq; j += blockDim.x) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = sum;
    __syncthreads();
    sum = 0.f;
    for (int w = 0; w < (int)blockDim.x / 32; w++) sum += red[w];
    const float inv = 1.f / sum;
    for (int j = threadIdx.x; j < seq; j += blockDim.x) row[j] *= inv;
}

/* o[i, d] = sum_j p[i,j] v[j,d]; one output element per thread.
 * grid (ceil(D/32), S/8, heads in chunk), block (32, 8). */
template <typename T>
__global__ void ref_pv(attn_problem p, const float *scores, int pair0)
{
    const int d = blockIdx.x * 32 + threadIdx.x;
    const int i = blockIdx.y * 8 + threadIdx.y;
    const int pair = pair0 + blockIdx.z;
    if (i >= p.seq || d >= p.d) return;
    const int b = pair / p.hq, h = pair % p.hq, hk = h / (p.hq / p.hkv);
    const float *row = scores + (size_t)blockIdx.z * p.seq * p.seq + (size_t)i * p.seq;
    const T *v = (const T *)p.v + b * p.sv[0] + hk * p.sv[2] + d * p.sv[3];
    const int jmax = p.causal ? i + 1 : p.seq;
    float acc = 0.f;
    for (int j = 0; j < jmax; j++) acc += row[j] * ld(v + j * p.sv[1]);
    T *o = (T *)p.o + b * p.so[0] + i * p.so[1] + h * p.so[2] + d * p.so[3];
    *o = cvt<T>(acc);
}

template <typename T>
static int ref_run(const attn_problem *p, cudaStream_t st)
{
    const size_t per_head = (size_t)p->seq * p->seq * sizeof(float);
    const int pairs = p->batch * p->hq;
    size_t cap = ((size_t)EMILE_REF_SCRATCH_MB << 20) / per_head;
    if (cap < 1) cap = 1;
    if (cap > (size_t)pairs) cap = pairs;
    if (cap > 65535) cap = 65535;
    float *scores = 0;
    if (cudaMallocAsync((void **)&scores, cap * per_head, st) != cudaSuccess) {
        fprintf(stderr, "reference.cu: its score scratch (%zu bytes) could not be allocated\n", cap * per_head);
        return EMILE_ERR_MEMORY;
    }
    const int nt = (p->seq + 15) / 16;
    for (int pair0 = 0; pair0 < pairs; pair0 += (int)cap) {
        const int n = pairs - pair0 < (int)cap ? pairs - pair0 : (int)cap;
        ref_scores<T><<<dim3(nt, nt, n), dim3(16, 16), 0, st>>>(*p, scores, pair0);
        ref_softmax<<<dim3(p->seq, n), 256, 0, st>>>(scores, p->seq);
        ref_pv<T><<<dim3((p->d + 31) / 32, (p->seq + 7) / 8, n), dim3(32, 8), 0, st>>>(*p, scores, pair0);
    }
    cudaFreeAsync(scores, st);
    return cudaGetLastError() == cudaSuccess ? EMILE_OK : EMILE_ERR_DEVICE;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    if (p.seq > 65535 * 16) {
        fprintf(stderr, "reference.cu: seq %d is beyond its grid limit (%d)\n", p.seq, 65535 * 16);
        return EMILE_ERR_LIMIT;
    }
    cudaStream_t st = (cudaStream_t)args->stream;
    switch (p.dtype) {
    case EMILE_DTYPE_F32: return ref_run<float>(&p, st);
    case EMILE_DTYPE_F16: return ref_run<__half>(&p, st);
    case EMILE_DTYPE_BF16: return ref_run<__nv_bfloat16>(&p, st);
    }
    return EMILE_ERR_DTYPE;
}
