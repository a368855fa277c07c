/*
 * forges_sync.cu -- CHEAT (class: work after the call returns).  Computes
 * honestly, but has the runner answer "run" before the work is done: it
 * finds the runner's pointers to cudaDeviceSynchronize and
 * cudaEventSynchronize in the process's writable memory (as
 * forges_event_timing.cu finds its timer) and points them at a function
 * that returns at once, and the timer at one that reports an eighth of the
 * time it measured honestly on its first call.  The run's clock then sees
 * only the launch; the work finishes inside the snap of the outputs that
 * follows, whose copy waits for it -- so the outputs are right.
 *
 * Must be caught by: the snap counted against the run (device memory): the
 * run's gap plus the snap's excess over the null runner's snap of the same
 * bytes may not exceed the forged-time bound plus the DMA's own noise.
 * Before stop 24 the snap after a timed run was not timed against anything.
 * Expected verdict: invalid ("went on after its run returned").
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
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

typedef cudaError_t (*elapsed_fn)(float *, cudaEvent_t, cudaEvent_t);
static float g_true_ms;
static int g_patched;

static cudaError_t no_wait(void) { return cudaSuccess; }
static cudaError_t no_wait_event(cudaEvent_t e) { (void)e; return cudaSuccess; }
static cudaError_t forged_elapsed(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    (void)a;
    (void)b;
    *ms = g_true_ms / 8;
    return cudaSuccess;
}

/* Every aligned word equal to one of the runtime's functions, in the
 * process's writable anonymous memory and heap, now points at ours. */
static void patch(void)
{
    void *lib = dlopen("libcudart.so.13", RTLD_NOW | RTLD_NOLOAD);
    if (!lib)
        lib = dlopen("libcudart.so.12", RTLD_NOW | RTLD_NOLOAD);
    if (!lib)
        return;
    const char *names[3] = {"cudaDeviceSynchronize", "cudaEventSynchronize", "cudaEventElapsedTime"};
    void *mine[3] = {(void *)no_wait, (void *)no_wait_event, (void *)forged_elapsed};
    void *real[3];
    for (int i = 0; i < 3; i++)
        if (!(real[i] = dlsym(lib, names[i])))
            return;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perms[8], path[256] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &a, &b, perms, path) < 3)
            continue;
        if (perms[0] != 'r' || perms[1] != 'w' || b - a > ((unsigned long)64 << 20))
            continue;
        if (path[0] == '/' || strstr(path, "emile-arena"))
            continue;
        for (uintptr_t *w = (uintptr_t *)a; w < (uintptr_t *)b; w++)
            for (int i = 0; i < 3; i++)
                if (*w == (uintptr_t)real[i]) {
                    *w = (uintptr_t)mine[i];
                    g_patched = 1;
                }
    }
    if (f)
        fclose(f);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    cudaStream_t st = (cudaStream_t)args->stream;
    if (!g_patched) {
        /* the first call, honestly timed by its own events, then the patch */
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        cudaEventRecord(a, st);
        rc = simple_attn_launch(&p, st);
        cudaEventRecord(b, st);
        cudaEventSynchronize(b);
        cudaEventElapsedTime(&g_true_ms, a, b);
        patch();
        return rc;
    }
    return simple_attn_launch(&p, st);
}
