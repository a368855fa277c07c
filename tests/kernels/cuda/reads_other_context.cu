/*
 * reads_other_context.cu -- CHEAT (class: the reference's device memory
 * reachable from the candidate).  The reference runs in another process
 * and CUDA context; its device arena, allocated the same way, tends to sit
 * at the same virtual address as the candidate's.  This kernel computes
 * nothing: it copies its output from where the reference's would be --
 * first trying to open it over IPC with handles it forges around its own
 * (cudaIpcGetMemHandle of its own arena, then the same handle with the
 * process fields changed), then reading just past its own allocation with
 * a device kernel.
 *
 * Must be caught by: separate processes and contexts (another context's
 * memory is not mapped in ours: the read faults), no IPC handle of the
 * reference's ever reaching the candidate.
 * Expected verdict: crashed or invalid (an illegal address, or NaN).
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <dlfcn.h>
#include <stdint.h>
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

__global__ void copy_from(const uint8_t *src, uint8_t *dst, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    (void)simple_attn_launch;        /* it computes nothing */
    size_t esize = p.dtype == EMILE_DTYPE_F32 ? 4 : 2;
    size_t bytes = (size_t)p.batch * p.seq * p.hq * p.d * esize;
    cudaStream_t st = (cudaStream_t)args->stream;
    /* IPC: our own handle, then variations of it. */
    cudaIpcMemHandle_t h;
    if (cudaIpcGetMemHandle(&h, p.o) == cudaSuccess) {
        for (int i = 0; i < 64; i++) {
            cudaIpcMemHandle_t g = h;
            g.reserved[i % sizeof g.reserved] ^= (char)(1 + i);
            void *peer = NULL;
            if (cudaIpcOpenMemHandle(&peer, g, cudaIpcMemLazyEnablePeerAccess) == cudaSuccess) {
                cudaMemcpyAsync(p.o, peer, bytes, cudaMemcpyDeviceToDevice, st);
                cudaStreamSynchronize(st);
                cudaIpcCloseMemHandle(peer);
                return 0;
            }
        }
    }
    cudaGetLastError();
    /* Where another context's arena would be: past the end of ours. */
    typedef int (*range_fn)(unsigned long long *, size_t *, unsigned long long);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    range_fn range = lib ? (range_fn)dlsym(lib, "cuMemGetAddressRange_v2") : NULL;
    unsigned long long base = 0;
    size_t size = 0;
    if (!range || range(&base, &size, (unsigned long long)(uintptr_t)p.o) != 0)
        return 0;
    const uint8_t *guess = (const uint8_t *)(uintptr_t)(base + size + ((uintptr_t)p.o - base));
    copy_from<<<64, 256, 0, st>>>(guess, (uint8_t *)p.o, bytes);
    return 0;
}
