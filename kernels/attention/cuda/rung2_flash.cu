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
 * Layout: 16x16 threads; S = Q K^T and O += P V are register-tiled like
 * rung 1's GEMMs (thread (ty, tx) holds rows ty+16x and keys / output
 * columns tx+16y), Q and K are stored d-major so each inner step is RM + RN
 * shared loads for RM*RN FMAs; row max/sum are 16-lane shuffles; P goes
 * through shared memory (key-major) to the P V product.
 *
 * Measured (H100, same shapes as rung 1): 7.4 9.3 10.4 11.4 10.2 with
 *   BQ=32 BK=64 -- a LOSER against rung 1 (10-14): per-element strided
 *   scalar global loads, the fp32 conversion and three barriers per tile
 *   dominate; a first version with 4 threads per row did 4.5-6.  Next step
 *   for this rung: 16-byte loads, bf16 tiles in shared memory, two stages.
 * Parameters: EMILE_BQ (32, 64): rows per block; EMILE_BK (32, 64): keys per
 * tile.  Shared memory 4*(D*(BQ+BK+2) + BK*D + BK*(BQ+1)) bytes (~113 KB at
 * 64/64, D=128).
 * Expected gain over rung 1: 1.5-4x (no score scratch, one launch).
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
#define EMILE_BQ 64
#endif
#ifndef EMILE_BK
#define EMILE_BK 64
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
__global__ void __launch_bounds__(256) r2_flash(attn_problem p, float sl2)
{
    constexpr int RM = BQ / 16, RN = BK / 16, DN = D / 16;
    extern __shared__ float4 smem4[];
    float *sQ = (float *)smem4;      /* [D][BQ + 1]   d-major */
    float *sK = sQ + D * (BQ + 1);   /* [D][BK + 1]   d-major */
    float *sV = sK + D * (BK + 1);   /* [BK][D]        */
    float *sP = sV + BK * D;         /* [BK][BQ + 1]   key-major */
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4, tid = threadIdx.x;
    const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
    const int hk = h / (p.hq / p.hkv);
    const T *qb = (const T *)p.q + b * p.sq[0] + h * p.sq[2];
    const T *kb = (const T *)p.k + b * p.sk[0] + hk * p.sk[2];
    const T *vb = (const T *)p.v + b * p.sv[0] + hk * p.sv[2];
    for (int e = tid; e < BQ * D; e += 256) {
        const int r = e / D, d = e % D, i = q0 + r;
        sQ[d * (BQ + 1) + r] = i < p.seq ? ld(qb + i * p.sq[1] + d * p.sq[3]) : 0.f;
    }
    /* this thread: rows ty + 16*x (x < RM), keys tx + 16*y, columns tx + 16*y */
    float o[RM][DN], m[RM], l[RM];
#pragma unroll
    for (int x = 0; x < RM; x++) {
        m[x] = -INFINITY;
        l[x] = 0.f;
#pragma unroll
        for (int y = 0; y < DN; y++) o[x][y] = 0.f;
    }
    int jend = p.seq;
    if (p.causal) jend = min(jend, q0 + BQ);
    for (int j0 = 0; j0 < jend; j0 += BK) {
        __syncthreads();
        for (int e = tid; e < BK * D; e += 256) {
            const int kk = e / D, d = e % D, j = j0 + kk;
            const bool ok = j < p.seq;
            sK[d * (BK + 1) + kk] = ok ? ld(kb + j * p.sk[1] + d * p.sk[3]) : 0.f;
            sV[kk * D + d] = ok ? ld(vb + j * p.sv[1] + d * p.sv[3]) : 0.f;
        }
        __syncthreads();
        float s[RM][RN];
#pragma unroll
        for (int x = 0; x < RM; x++)
#pragma unroll
            for (int y = 0; y < RN; y++) s[x][y] = 0.f;
#pragma unroll 4
        for (int d = 0; d < D; d++) {
            float a[RM], c[RN];
#pragma unroll
            for (int x = 0; x < RM; x++) a[x] = sQ[d * (BQ + 1) + ty + 16 * x];
#pragma unroll
            for (int y = 0; y < RN; y++) c[y] = sK[d * (BK + 1) + tx + 16 * y];
#pragma unroll
            for (int x = 0; x < RM; x++)
#pragma unroll
                for (int y = 0; y < RN; y++) s[x][y] = fmaf(a[x], c[y], s[x][y]);
        }
        const bool mask = (p.causal && j0 + BK - 1 > q0) || j0 + BK > p.seq;
#pragma unroll
        for (int x = 0; x < RM; x++) {
            const int row = q0 + ty + 16 * x;
            float mx = -INFINITY;
#pragma unroll
            for (int y = 0; y < RN; y++) {
                const int j = j0 + tx + 16 * y;
                if (mask && (j >= p.seq || (p.causal && j > row))) s[x][y] = -INFINITY;
                mx = fmaxf(mx, s[x][y]);
            }
#pragma unroll
            for (int off = 1; off < 16; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float mnew = fmaxf(m[x], mx);
            const float ms = mnew == -INFINITY ? 0.f : mnew * sl2;
            const float alpha = ex2(m[x] * sl2 - ms);
            float sum = 0.f;
#pragma unroll
            for (int y = 0; y < RN; y++) {
                const float e = ex2(fmaf(s[x][y], sl2, -ms));
                sum += e;
                sP[(tx + 16 * y) * (BQ + 1) + ty + 16 * x] = e;
            }
#pragma unroll
            for (int off = 1; off < 16; off <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            l[x] = l[x] * alpha + sum;
            m[x] = mnew;
#pragma unroll
            for (int y = 0; y < DN; y++) o[x][y] *= alpha;
        }
        __syncthreads();
#pragma unroll 4
        for (int kk = 0; kk < BK; kk++) {
            float a[RM], c[DN];
#pragma unroll
            for (int x = 0; x < RM; x++) a[x] = sP[kk * (BQ + 1) + ty + 16 * x];
#pragma unroll
            for (int y = 0; y < DN; y++) c[y] = sV[kk * D + tx + 16 * y];
#pragma unroll
            for (int x = 0; x < RM; x++)
#pragma unroll
                for (int y = 0; y < DN; y++) o[x][y] = fmaf(a[x], c[y], o[x][y]);
        }
    }
#pragma unroll
    for (int x = 0; x < RM; x++) {
        const int row = q0 + ty + 16 * x;
        if (row < p.seq) {
            const float inv = 1.f / l[x];
            T *ob = (T *)p.o + b * p.so[0] + row * p.so[1] + h * p.so[2];
#pragma unroll
            for (int y = 0; y < DN; y++) ob[(tx + 16 * y) * p.so[3]] = cvt<T>(o[x][y] * inv);
        }
    }
}

template <typename T, int D>
static int r2_launch(const attn_problem *p, cudaStream_t st)
{
    constexpr int BQ = EMILE_BQ, BK = EMILE_BK;
    static_assert(BQ % 16 == 0 && BK % 16 == 0, "BQ and BK must be multiples of 16");
    const size_t smem = sizeof(float) * (D * (BQ + 1) + D * (BK + 1) + BK * D + BK * (BQ + 1));
    static bool attr_done = false;
    if (!attr_done) {
        if (cudaFuncSetAttribute(r2_flash<T, D, BQ, BK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)smem) != cudaSuccess) return 20;
        attr_done = true;
    }
    dim3 grid((p->seq + BQ - 1) / BQ, p->hq, p->batch);
    if (grid.y > 65535 || grid.z > 65535) return 21;
    r2_flash<T, D, BQ, BK><<<grid, 256, smem, st>>>(*p, p->scale * 1.4426950408889634f);
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
