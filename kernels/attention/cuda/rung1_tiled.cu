/*
 * rung1_tiled.cu -- attention in three tiled passes on CUDA cores.
 *
 * Idea: the reference computes each score with its own pass over q and k
 * (every input element re-read S times from L2/DRAM).  Here the two matrix
 * products are classic shared-memory tiled GEMMs: a 16x16-thread block
 * computes a 64x64 tile, each thread a 4x4 register sub-tile, from 64x16
 * slices of the operands staged in shared memory, so each loaded element
 * feeds 64 multiply-adds instead of 1.  The softmax is still a separate pass
 * over an fp32 S x S scratch (chunked over heads, <= EMILE_SCRATCH_MB), and
 * causal tiles entirely above the diagonal are skipped in both GEMMs.
 *
 * Measured (H100, causal GQA bf16 Hq=32 Hkv=8 D=128, TFLOP/s at 1x1024
 *   1x2048 1x4096 1x8192 4x2048): 10.1 12.3 13.6 12.6 13.6 (reference 1.5).
 * Parameters: EMILE_SCRATCH_MB (scratch cap, default 2048).
 * Expected gain over the reference: 3-10x (operand reuse through shared
 * memory), still far from the tensor cores and bound by the 12 bytes per
 * score of scratch traffic.
 * Profile should show: no_tensor_cores; DRAM traffic dominated by the score
 * scratch (excess_dram_traffic against the q/k/v/o minimum).
 * Next: fuse the three passes with an online softmax (rung 2).
 *
 * Dtypes fp32, fp16, bf16; any strides.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include "emile.h"

#ifndef EMILE_SCRATCH_MB
#define EMILE_SCRATCH_MB 2048
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

/* scores = scale * Q K^T (causal: -inf above the diagonal) for one chunk of
 * (batch, head) pairs.  grid (S/64, S/64, pairs), block 16x16, 4x4 per thread. */
template <typename T>
__global__ void __launch_bounds__(256) r1_scores(attn_problem p, float *scores, int pair0)
{
    __shared__ float sq[16][64 + 4], sk[16][64 + 4];   /* [d][row] */
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int i0 = blockIdx.y * 64, j0 = blockIdx.x * 64;
    const int pair = pair0 + blockIdx.z;
    const int b = pair / p.hq, h = pair % p.hq, hk = h / (p.hq / p.hkv);
    float *out = scores + (size_t)blockIdx.z * p.seq * p.seq;
    if (p.causal && j0 > i0 + 63) {   /* tile fully masked */
        for (int e = tid; e < 64 * 64; e += 256) {
            const int i = i0 + e / 64, j = j0 + e % 64;
            if (i < p.seq && j < p.seq) out[(size_t)i * p.seq + j] = -INFINITY;
        }
        return;
    }
    const T *qb = (const T *)p.q + b * p.sq[0] + h * p.sq[2];
    const T *kb = (const T *)p.k + b * p.sk[0] + hk * p.sk[2];
    float acc[4][4] = {};
    for (int d0 = 0; d0 < p.d; d0 += 16) {
        for (int e = tid; e < 64 * 16; e += 256) {
            const int r = e / 16, d = d0 + e % 16;
            const int i = i0 + r, j = j0 + r;
            sq[e % 16][r] = (i < p.seq && d < p.d) ? ld(qb + i * p.sq[1] + d * p.sq[3]) : 0.f;
            sk[e % 16][r] = (j < p.seq && d < p.d) ? ld(kb + j * p.sk[1] + d * p.sk[3]) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int d = 0; d < 16; d++) {
            float a[4], c[4];
#pragma unroll
            for (int x = 0; x < 4; x++) { a[x] = sq[d][ty + 16 * x]; c[x] = sk[d][tx + 16 * x]; }
#pragma unroll
            for (int x = 0; x < 4; x++)
#pragma unroll
                for (int y = 0; y < 4; y++) acc[x][y] += a[x] * c[y];
        }
        __syncthreads();
    }
#pragma unroll
    for (int x = 0; x < 4; x++)
#pragma unroll
        for (int y = 0; y < 4; y++) {
            const int i = i0 + ty + 16 * x, j = j0 + tx + 16 * y;
            if (i < p.seq && j < p.seq)
                out[(size_t)i * p.seq + j] = (p.causal && j > i) ? -INFINITY : acc[x][y] * p.scale;
        }
}

/* One row per block: max, sum of exp, normalise in place. */
__global__ void r1_softmax(float *scores, int seq, int causal)
{
    float *row = scores + (size_t)blockIdx.y * seq * seq + (size_t)blockIdx.x * seq;
    const int n = causal ? blockIdx.x + 1 : seq;
    __shared__ float red[32];
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, row[j]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)blockDim.x / 32; w++) mx = fmaxf(mx, red[w]);
    __syncthreads();
    float sum = 0.f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float e = __expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = sum;
    __syncthreads();
    sum = 0.f;
    for (int w = 0; w < (int)blockDim.x / 32; w++) sum += red[w];
    const float inv = 1.f / sum;
    for (int j = threadIdx.x; j < n; j += blockDim.x) row[j] *= inv;
}

/* O = P V.  grid (ceil(D/64), S/64, pairs), block 16x16, 4x4 per thread.
 * Under a causal mask, keys past the tile's last row are skipped. */
template <typename T>
__global__ void __launch_bounds__(256) r1_pv(attn_problem p, const float *scores, int pair0)
{
    __shared__ float sp[16][64 + 4];   /* [key][row] */
    __shared__ float sv[16][64 + 4];   /* [key][d] */
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int i0 = blockIdx.y * 64, c0 = blockIdx.x * 64;
    const int pair = pair0 + blockIdx.z;
    const int b = pair / p.hq, h = pair % p.hq, hk = h / (p.hq / p.hkv);
    const float *P = scores + (size_t)blockIdx.z * p.seq * p.seq;
    const T *vb = (const T *)p.v + b * p.sv[0] + hk * p.sv[2];
    int jend = p.seq;
    if (p.causal) jend = min(jend, i0 + 64);
    float acc[4][4] = {};
    for (int j0 = 0; j0 < jend; j0 += 16) {
        for (int e = tid; e < 64 * 16; e += 256) {
            const int r = e / 16, jj = e % 16, j = j0 + jj, i = i0 + r;
            sp[jj][r] = (i < p.seq && j < p.seq && !(p.causal && j > i)) ? P[(size_t)i * p.seq + j] : 0.f;
            const int d = c0 + e % 64, k2 = e / 64;
            sv[k2][e % 64] = (j0 + k2 < p.seq && d < p.d) ? ld(vb + (j0 + k2) * p.sv[1] + d * p.sv[3]) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int jj = 0; jj < 16; jj++) {
            float a[4], c[4];
#pragma unroll
            for (int x = 0; x < 4; x++) { a[x] = sp[jj][ty + 16 * x]; c[x] = sv[jj][tx + 16 * x]; }
#pragma unroll
            for (int x = 0; x < 4; x++)
#pragma unroll
                for (int y = 0; y < 4; y++) acc[x][y] += a[x] * c[y];
        }
        __syncthreads();
    }
    T *ob = (T *)p.o + b * p.so[0] + h * p.so[2];
#pragma unroll
    for (int x = 0; x < 4; x++)
#pragma unroll
        for (int y = 0; y < 4; y++) {
            const int i = i0 + ty + 16 * x, d = c0 + tx + 16 * y;
            if (i < p.seq && d < p.d) ob[i * p.so[1] + d * p.so[3]] = cvt<T>(acc[x][y]);
        }
}

template <typename T>
static int r1_run(const attn_problem *p, cudaStream_t st)
{
    const size_t per_head = (size_t)p->seq * p->seq * sizeof(float);
    const int pairs = p->batch * p->hq;
    size_t cap = ((size_t)EMILE_SCRATCH_MB << 20) / per_head;
    if (cap < 1) cap = 1;
    if (cap > (size_t)pairs) cap = pairs;
    if (cap > 65535) cap = 65535;
    /* The scratch is stream-ordered; the device's pool keeps it between
     * calls (release threshold raised to its size), else every call would
     * give it back to the driver at the stream's synchronisation and ask
     * for it again on the host (a real cudaMalloc of up to 2 GiB, outside
     * the stream's timing, which the harness rightly counts against us).
     * The threshold is the device's, for the whole process: inside a
     * PyTorch process it keeps up to EMILE_SCRATCH_MB that PyTorch's own
     * allocator does not see. */
    int dev = 0;
    cudaMemPool_t pool;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
        uint64_t keep = 0;
        if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess &&
            keep < (uint64_t)(cap * per_head)) {
            keep = (uint64_t)(cap * per_head);
            cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
        }
    }
    float *scores = 0;
    if (cudaMallocAsync((void **)&scores, cap * per_head, st) != cudaSuccess) return 10;
    const int nt = (p->seq + 63) / 64;
    for (int pair0 = 0; pair0 < pairs; pair0 += (int)cap) {
        const int n = pairs - pair0 < (int)cap ? pairs - pair0 : (int)cap;
        r1_scores<T><<<dim3(nt, nt, n), dim3(16, 16), 0, st>>>(*p, scores, pair0);
        r1_softmax<<<dim3(p->seq, n), 256, 0, st>>>(scores, p->seq, p->causal);
        r1_pv<T><<<dim3((p->d + 63) / 64, nt, n), dim3(16, 16), 0, st>>>(*p, scores, pair0);
    }
    cudaFreeAsync(scores, st);
    return cudaGetLastError() == cudaSuccess ? 0 : 11;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    if (p.seq > 65535 * 64) return 6;
    cudaStream_t st = (cudaStream_t)args->stream;
    switch (p.dtype) {
    case EMILE_DTYPE_F32: return r1_run<float>(&p, st);
    case EMILE_DTYPE_F16: return r1_run<__half>(&p, st);
    case EMILE_DTYPE_BF16: return r1_run<__nv_bfloat16>(&p, st);
    }
    return 5;
}
