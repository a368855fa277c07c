/*
 * content_cache.cu -- CHEAT (class: fast only on inputs it has seen).
 * A correct attention that remembers its answers: each call hashes 256
 * elements of q, k and v (a tiny kernel, then a 16-byte read back), and on
 * a hash it has seen copies the stored o instead of computing; on a new
 * one it computes and stores (four entries, round robin).  Every output
 * it returns is right, and the timed runs, on two sets shown again and
 * again, all hit: it times as a copy.
 *
 * Must be caught by: the held-back sets, masked until their run (the hash
 * of a fresh set misses, so that run computes, and takes far longer than
 * the timed runs' median allows).  Before the masked sets (stop 24) the
 * held-back allowance on the GPU was 30% + 300 us of a whole upload-run-
 * snap cycle, inside which a kernel under ~0.3 ms could hide.
 * Expected verdict: invalid (held-back).
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include "emile.h"

/* ---- a simple, correct attention (the same in every adversarial kernel) ----
 * One warp per (batch, head, query row): lanes split the head dim, keys are
 * visited in order with an online softmax in fp32.  Any dtype (f32/f16/bf16),
 * any strides, head_dim <= 256, causal or not, GQA. */
typedef struct attn_problem {
    const void *q, *k, *v;
    void *o;
    int64_t sq[4], sk[4], sv[4], so[4];
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
    if (p->batch <= 0 || p->seq <= 0 || p->hq <= 0 || p->hkv <= 0 || p->d <= 0 || p->d > 256) return 3;
    if (p->hq % p->hkv) return 3;
    int64_t *dst[4] = {p->sq, p->sk, p->sv, p->so};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) dst[i][j] = t[i]->strides[j];
    p->q = t[0]->data; p->k = t[1]->data; p->v = t[2]->data; p->o = t[3]->data;
    if (p->dtype != EMILE_DTYPE_F32 && p->dtype != EMILE_DTYPE_F16 && p->dtype != EMILE_DTYPE_BF16) return 5;
    return 0;
}

template <typename T> __device__ __forceinline__ float ld(const T *p);
template <> __device__ __forceinline__ float ld<float>(const float *p) { return *p; }
template <> __device__ __forceinline__ float ld<__half>(const __half *p) { return __half2float(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ T cvt(float x);
template <> __device__ __forceinline__ float cvt<float>(float x) { return x; }
template <> __device__ __forceinline__ __half cvt<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

#ifndef ADV_INPUT
#define ADV_INPUT(x) (x)      /* hook: how an input element is seen */
#endif
#ifndef ADV_ROWS
#define ADV_ROWS(seq) (seq)   /* hook: how many query rows are computed */
#endif

/* grid: (ceil(rows/4), hq, batch), block 128 = 4 warps, one row each */
template <typename T>
__global__ void simple_attn(attn_problem p)
{
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * 4 + (threadIdx.x >> 5);
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (p.hq / p.hkv);
    if (i >= ADV_ROWS(p.seq)) return;
    const T *q = (const T *)p.q + b * p.sq[0] + i * p.sq[1] + h * p.sq[2];
    const T *kb = (const T *)p.k + b * p.sk[0] + hk * p.sk[2];
    const T *vb = (const T *)p.v + b * p.sv[0] + hk * p.sv[2];
    float qr[8], o[8];
    for (int x = 0; x < 8; x++) {
        const int d = lane + 32 * x;
        qr[x] = d < p.d ? ADV_INPUT(ld(q + d * p.sq[3])) : 0.f;
        o[x] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    const int jend = p.causal ? i + 1 : p.seq;
    for (int j = 0; j < jend; j++) {
        const T *k = kb + j * p.sk[1];
        float s = 0.f;
        for (int x = 0; x < 8; x++) {
            const int d = lane + 32 * x;
            if (d < p.d) s += qr[x] * ADV_INPUT(ld(k + d * p.sk[3]));
        }
        for (int off = 16; off; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        s *= p.scale;
        const float mn = fmaxf(m, s);
        const float alpha = expf(m - mn), e = expf(s - mn);
        l = l * alpha + e;
        const T *v = vb + j * p.sv[1];
        for (int x = 0; x < 8; x++) {
            const int d = lane + 32 * x;
            o[x] = o[x] * alpha + (d < p.d ? e * ADV_INPUT(ld(v + d * p.sv[3])) : 0.f);
        }
        m = mn;
    }
    T *out = (T *)p.o + b * p.so[0] + i * p.so[1] + h * p.so[2];
    for (int x = 0; x < 8; x++) {
        const int d = lane + 32 * x;
        if (d < p.d) out[d * p.so[3]] = cvt<T>(o[x] / l);
    }
}

/* Launch the simple attention on stream st; 0 on success. */
static inline int simple_attn_launch(const attn_problem *p, cudaStream_t st)
{
    dim3 grid((p->seq + 3) / 4, p->hq, p->batch);
    if (grid.y > 65535 || grid.z > 65535) return 21;
    switch (p->dtype) {
    case EMILE_DTYPE_F32: simple_attn<float><<<grid, 128, 0, st>>>(*p); break;
    case EMILE_DTYPE_F16: simple_attn<__half><<<grid, 128, 0, st>>>(*p); break;
    case EMILE_DTYPE_BF16: simple_attn<__nv_bfloat16><<<grid, 128, 0, st>>>(*p); break;
    default: return 5;
    }
    return cudaGetLastError() == cudaSuccess ? 0 : 22;
}

#define CACHE_ENTRIES 4
#define HASH_SAMPLES 256

/* One block: a hash of HASH_SAMPLES elements of each input, spread over
 * its whole extent (the bits of each element, mixed). */
__global__ void sample_hash(const uint16_t *q, const uint16_t *k, const uint16_t *v, size_t nq, size_t nkv,
                            unsigned long long *out)
{
    __shared__ unsigned long long part[HASH_SAMPLES];
    const int t = threadIdx.x;
    unsigned long long h = 0;
    const uint16_t *src[3] = {q, k, v};
    size_t n[3] = {nq, nkv, nkv};
    for (int s = 0; s < 3; s++) {
        size_t at = (size_t)t * (n[s] / HASH_SAMPLES) + (size_t)(t * 7919) % (n[s] / HASH_SAMPLES + 1);
        if (at < n[s]) h = (h ^ src[s][at]) * 0x100000001b3ull + (unsigned long long)s;
    }
    part[t] = h * (2 * (unsigned long long)t + 1);
    __syncthreads();
    if (t == 0) {
        unsigned long long a = 0xcbf29ce484222325ull;
        for (int i = 0; i < HASH_SAMPLES; i++) a = (a ^ part[i]) * 0x100000001b3ull;
        *out = a;
    }
}

static void *g_entry[CACHE_ENTRIES];
static size_t g_size[CACHE_ENTRIES], g_bytes[CACHE_ENTRIES];
static unsigned long long g_hash[CACHE_ENTRIES];
static int g_used[CACHE_ENTRIES], g_next;
static unsigned long long *g_dev_hash, *g_host_hash;

static size_t elems(const emile_tensor_t *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    cudaStream_t st = (cudaStream_t)args->stream;
    const emile_tensor_t *o = &args->tensors[3];
    size_t esz = p.dtype == EMILE_DTYPE_F32 ? 4 : 2, obytes = elems(o) * esz;
    if (!g_dev_hash && (cudaMalloc((void **)&g_dev_hash, 8) != cudaSuccess ||
                        cudaMallocHost((void **)&g_host_hash, 8) != cudaSuccess))
        return 23;
    /* 16-bit views suffice for a hash (f32 elements are sampled by halves) */
    sample_hash<<<1, HASH_SAMPLES, 0, st>>>((const uint16_t *)p.q, (const uint16_t *)p.k, (const uint16_t *)p.v,
                                            elems(&args->tensors[0]) * esz / 2, elems(&args->tensors[1]) * esz / 2,
                                            g_dev_hash);
    cudaMemcpyAsync(g_host_hash, g_dev_hash, 8, cudaMemcpyDeviceToHost, st);
    cudaStreamSynchronize(st);
    for (int i = 0; i < CACHE_ENTRIES; i++)
        if (g_used[i] && g_hash[i] == *g_host_hash && g_bytes[i] == obytes)
            return cudaMemcpyAsync(p.o, g_entry[i], obytes, cudaMemcpyDeviceToDevice, st) == cudaSuccess ? 0 : 24;
    rc = simple_attn_launch(&p, st);
    if (rc) return rc;
    int e = g_next++ % CACHE_ENTRIES;
    if (g_size[e] < obytes) {      /* the ragged and small sets come first, at other sizes */
        cudaFree(g_entry[e]);
        g_entry[e] = NULL;
        g_size[e] = 0;
        if (cudaMalloc(&g_entry[e], obytes) != cudaSuccess) return 0;
        g_size[e] = obytes;
    }
    cudaMemcpyAsync(g_entry[e], p.o, obytes, cudaMemcpyDeviceToDevice, st);
    g_hash[e] = *g_host_hash;
    g_bytes[e] = obytes;
    g_used[e] = 1;
    return 0;
}
