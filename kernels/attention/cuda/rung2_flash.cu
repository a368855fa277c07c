/*
 * rung2_flash.cu -- fused attention with an online softmax on CUDA cores.
 *
 * Idea: rung 1 writes and reads an fp32 S x S score matrix three times (12
 * bytes of DRAM traffic per score, more than all the arithmetic costs).  Here
 * one block owns EMILE_BQ query rows of one head and streams K/V in tiles of
 * EMILE_BK keys through shared memory (fp32), keeping for each row a running
 * max m, a running sum l and an unnormalised output o in registers
 * (flash attention): when a tile raises the max, o and l are rescaled by
 * exp(m_old - m_new).  Scores never leave the chip: the input is read once
 * per query tile, the output written once.  exp is exp2 with the scale and
 * log2(e) folded into one FMA; masking only on tiles that touch the diagonal;
 * tiles past the diagonal are never loaded.
 * Layout: 4 threads per query row; each computes BK/4 scores of its row
 * (float4 dot products over D), the row max/sum are two shuffles, P goes
 * through shared memory, and each thread accumulates D/4 output columns.
 *
 * Parameters: EMILE_BQ (16, 32, 64): rows per block (4*BQ threads);
 *             EMILE_BK (16, 32, 64): keys per tile.
 * Expected gain over rung 1: 3-6x (no scratch traffic, one launch).
 * Profile should show: no_tensor_cores, FMA pipe and shared-memory loads the
 * busiest units (compute_bound on the CUDA-core roofline).
 * Next: tensor cores (rung 3).
 *
 * Dtypes fp32, fp16, bf16; head_dim 64 or 128; any strides.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include "emile.h"

#ifndef EMILE_BQ
#define EMILE_BQ 32
#endif
#ifndef EMILE_BK
#define EMILE_BK 32
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
    if (!a || a->abi_version != EMILE_ABI_VERSION) return 1;
    emile_tensor_t *t[4] = {emile_tensor(a, "q"), emile_tensor(a, "k"),
                            emile_tensor(a, "v"), emile_tensor(a, "o")};
    for (int i = 0; i < 4; i++)
        if (!t[i] || !t[i]->data || t[i]->ndim != 4 || t[i]->dtype != t[0]->dtype) return 2;
    p->batch = (int)emile_param(a, "batch", (double)t[0]->shape[0]);
    p->seq = (int)emile_param(a, "seq", (double)t[0]->shape[1]);
    p->hq = (int)emile_param(a, "q_heads", (double)t[0]->shape[2]);
    p->hkv = (int)emile_param(a, "kv_heads", (double)t[1]->shape[2]);
    p->d = (int)emile_param(a, "head_dim", (double)t[0]->shape[3]);
    p->causal = emile_param(a, "causal", 0.0) != 0.0;
    p->scale = (float)emile_param(a, "scale", 1.0 / sqrt((double)p->d));
    p->dtype = t[0]->dtype;
    if (p->batch <= 0 || p->seq <= 0 || p->hq <= 0 || p->hkv <= 0 || p->d <= 0) return 3;
    if (p->hq % p->hkv) return 3;
    const int hs[4] = {p->hq, p->hkv, p->hkv, p->hq};
    for (int i = 0; i < 4; i++) {
        if (t[i]->shape[0] != p->batch || t[i]->shape[1] != p->seq ||
            t[i]->shape[2] != hs[i] || t[i]->shape[3] != p->d) return 4;
    }
    int64_t *dst[4] = {p->sq, p->sk, p->sv, p->so};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) dst[i][j] = t[i]->strides[j];
    p->q = t[0]->data; p->k = t[1]->data; p->v = t[2]->data; p->o = t[3]->data;
    if (p->dtype != EMILE_DTYPE_F32 && p->dtype != EMILE_DTYPE_F16 &&
        p->dtype != EMILE_DTYPE_BF16) return 5;
    return 0;
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

__device__ __forceinline__ float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

template <typename T, int D, int BQ, int BK>
__global__ void __launch_bounds__(4 * BQ) r2_flash(attn_problem p, float sl2)
{
    constexpr int NT = 4 * BQ, DP = D + 4, KP = BK / 4, DQ = D / 4;
    extern __shared__ float4 smem4[];
    float *sQ = (float *)smem4;      /* [BQ][DP] */
    float *sK = sQ + BQ * DP;        /* [BK][DP] */
    float *sV = sK + BK * DP;        /* [BK][D]  */
    float *sP = sV + BK * D;         /* [BQ][BK + 4] */
    const int tid = threadIdx.x, r = tid >> 2, part = tid & 3;
    const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
    const int hk = h / (p.hq / p.hkv);
    const T *qb = (const T *)p.q + b * p.sq[0] + h * p.sq[2];
    const T *kb = (const T *)p.k + b * p.sk[0] + hk * p.sk[2];
    const T *vb = (const T *)p.v + b * p.sv[0] + hk * p.sv[2];
    for (int e = tid; e < BQ * D; e += NT) {
        const int rr = e / D, d = e % D, i = q0 + rr;
        sQ[rr * DP + d] = i < p.seq ? ld(qb + i * p.sq[1] + d * p.sq[3]) : 0.f;
    }
    const int row = q0 + r;
    float o[DQ];
#pragma unroll
    for (int x = 0; x < DQ; x++) o[x] = 0.f;
    float m = -INFINITY, l = 0.f;
    int jend = p.seq;
    if (p.causal) jend = min(jend, q0 + BQ);
    for (int j0 = 0; j0 < jend; j0 += BK) {
        __syncthreads();
        for (int e = tid; e < BK * D; e += NT) {
            const int kk = e / D, d = e % D, j = j0 + kk;
            const bool ok = j < p.seq;
            sK[kk * DP + d] = ok ? ld(kb + j * p.sk[1] + d * p.sk[3]) : 0.f;
            sV[kk * D + d] = ok ? ld(vb + j * p.sv[1] + d * p.sv[3]) : 0.f;
        }
        __syncthreads();
        /* scores: keys part + 4*x */
        float s[KP];
#pragma unroll
        for (int x = 0; x < KP; x++) s[x] = 0.f;
        for (int d = 0; d < D; d += 4) {
            const float4 qv = *(const float4 *)(sQ + r * DP + d);
#pragma unroll
            for (int x = 0; x < KP; x++) {
                const float4 kv = *(const float4 *)(sK + (part + 4 * x) * DP + d);
                s[x] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
            }
        }
        const bool mask = (p.causal && j0 + BK - 1 > q0) || j0 + BK > p.seq;
        float mx = -INFINITY;
#pragma unroll
        for (int x = 0; x < KP; x++) {
            const int j = j0 + part + 4 * x;
            if (mask && (j >= p.seq || (p.causal && j > row))) s[x] = -INFINITY;
            mx = fmaxf(mx, s[x]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(m, mx);
        const float ms = mnew == -INFINITY ? 0.f : mnew * sl2;
        const float alpha = ex2(m * sl2 - ms);
        float sum = 0.f;
#pragma unroll
        for (int x = 0; x < KP; x++) {
            const float e = ex2(fmaf(s[x], sl2, -ms));
            sum += e;
            sP[r * (BK + 4) + part + 4 * x] = e;
        }
        l = l * alpha + sum;
        m = mnew;
        __syncwarp();
#pragma unroll
        for (int x = 0; x < DQ; x++) o[x] *= alpha;
        for (int kk = 0; kk < BK; kk++) {
            const float pv = sP[r * (BK + 4) + kk];
#pragma unroll
            for (int x = 0; x < DQ; x += 4) {
                const float4 v = *(const float4 *)(sV + kk * D + part * DQ + x);
                o[x] += pv * v.x; o[x + 1] += pv * v.y; o[x + 2] += pv * v.z; o[x + 3] += pv * v.w;
            }
        }
    }
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (row < p.seq) {
        const float inv = 1.f / l;
        T *ob = (T *)p.o + b * p.so[0] + row * p.so[1] + h * p.so[2];
#pragma unroll
        for (int x = 0; x < DQ; x++) ob[(part * DQ + x) * p.so[3]] = cvt<T>(o[x] * inv);
    }
}

template <typename T, int D>
static int r2_launch(const attn_problem *p, cudaStream_t st)
{
    constexpr int BQ = EMILE_BQ, BK = EMILE_BK;
    const size_t smem = sizeof(float) * ((BQ + BK) * (D + 4) + BK * D + BQ * (BK + 4));
    static bool attr_done = false;
    if (!attr_done) {
        if (cudaFuncSetAttribute(r2_flash<T, D, BQ, BK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)smem) != cudaSuccess) return 20;
        attr_done = true;
    }
    dim3 grid((p->seq + BQ - 1) / BQ, p->hq, p->batch);
    if (grid.y > 65535 || grid.z > 65535) return 21;
    r2_flash<T, D, BQ, BK><<<grid, 4 * BQ, smem, st>>>(*p, p->scale * 1.4426950408889634f);
    return cudaGetLastError() == cudaSuccess ? 0 : 22;
}

template <typename T>
static int r2_run(const attn_problem *p, cudaStream_t st)
{
    if (p->d == 128) return r2_launch<T, 128>(p, st);
    if (p->d == 64) return r2_launch<T, 64>(p, st);
    return 6;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    cudaStream_t st = (cudaStream_t)args->stream;
    switch (p.dtype) {
    case EMILE_DTYPE_F32: return r2_run<float>(&p, st);
    case EMILE_DTYPE_F16: return r2_run<__half>(&p, st);
    case EMILE_DTYPE_BF16: return r2_run<__nv_bfloat16>(&p, st);
    }
    return 5;
}
