/*
 * steals_answers.cu -- CHEAT (class: the candidate's process, or its
 * device memory, holds the answers).  Looks for the expected outputs
 * wherever a kernel of the old design could find them: the runner's shared
 * host arena (the "emile-arena" mapping: the worker copied whole input sets
 * there, outputs included), the whole device allocation its tensors live
 * in (cuMemGetAddressRange: other sets' regions), a fresh uninitialised
 * allocation (memory the reference freed, were it in this process), and
 * cudaIpcOpenMemHandle on handles it could guess.  It computes the first
 * set honestly; on the next two (the ragged and small validation sets) it
 * computes nothing and copies what it found (bytes at its output's offset
 * that are neither poison nor zero); finding nothing, it writes nothing.
 * Later calls compute.
 *
 * Must be caught by: the candidate's arenas (host and device) holding only
 * inputs, its outputs (poisoned) and guards; the reference in another
 * process and context; the driver scrubbing memory between processes.
 * Expected verdict: invalid ("NaN/Inf or unwritten").
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- the cheat ---------------------------------------------------------- */

static int g_calls;

/* The host arena: the "emile-arena" mapping. */
static uint8_t *host_arena(size_t *len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uint8_t *at = NULL;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (strstr(line, "emile-arena") && sscanf(line, "%lx-%lx", &a, &b) == 2) {
            at = (uint8_t *)a;
            *len = b - a;
        }
    }
    if (f)
        fclose(f);
    return at;
}

/* Whether n bytes hold data: no all-ones word (poison), not all zero. */
static int looks_like_data(const uint8_t *p, size_t n)
{
    int nonzero = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w == UINT64_MAX)
            return 0;
        nonzero |= w != 0;
    }
    return nonzero;
}

/* The same offset as o's in the device allocation, found in the host
 * arena (the old design copied whole sets there); or in a fresh allocation
 * (a freed buffer of the reference's, were it ours); or through IPC. */
static int find_answer(const attn_problem *p, void *host, size_t bytes)
{
    typedef int (*range_fn)(unsigned long long *, size_t *, unsigned long long);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    range_fn range = lib ? (range_fn)dlsym(lib, "cuMemGetAddressRange_v2") : NULL;
    unsigned long long base = 0;
    size_t size = 0;
    size_t hlen = 0;
    uint8_t *ha = host_arena(&hlen);
    if (range && range(&base, &size, (unsigned long long)(uintptr_t)p->o) == 0 && ha) {
        size_t off = (size_t)((uintptr_t)p->o - base);
        if (off + bytes <= hlen && looks_like_data(ha + off, bytes)) {
            memcpy(host, ha + off, bytes);
            return 1;
        }
    }
    void *fresh = NULL;
    if (cudaMalloc(&fresh, (size_t)256 << 20) == cudaSuccess) {
        int found = cudaMemcpy(host, fresh, bytes, cudaMemcpyDeviceToHost) == cudaSuccess &&
                    looks_like_data((const uint8_t *)host, bytes);
        cudaFree(fresh);
        if (found)
            return 1;
    }
    cudaIpcMemHandle_t h;
    memset(&h, 0, sizeof h);
    void *peer = NULL;
    if (cudaIpcOpenMemHandle(&peer, h, cudaIpcMemLazyEnablePeerAccess) == cudaSuccess) {
        int found = cudaMemcpy(host, peer, bytes, cudaMemcpyDeviceToHost) == cudaSuccess &&
                    looks_like_data((const uint8_t *)host, bytes);
        cudaIpcCloseMemHandle(peer);
        if (found)
            return 1;
    }
    cudaGetLastError();
    return 0;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    int call = ++g_calls;
    if (call == 1 || call > 3)
        return simple_attn_launch(&p, (cudaStream_t)args->stream);
    size_t esize = p.dtype == EMILE_DTYPE_F32 ? 4 : 2;
    size_t bytes = (size_t)p.batch * p.seq * p.hq * p.d * esize;
    void *host = malloc(bytes);
    if (!host)
        return 0;
    if (find_answer(&p, host, bytes))
        cudaMemcpyAsync(p.o, host, bytes, cudaMemcpyHostToDevice, (cudaStream_t)args->stream);
    cudaStreamSynchronize((cudaStream_t)args->stream);
    free(host);
    return 0;
}
