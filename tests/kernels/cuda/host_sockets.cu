/*
 * host_sockets.cu -- HARM (class: the sandbox's reach; CUDA only).  The
 * CUDA runner's filter lets socket(AF_UNIX) through (the driver uses it),
 * and a network namespace hides abstract sockets and the network, but not
 * named sockets in the file system: Landlock before ABI 9 does not govern
 * connect() to one.  Before every call the kernel tries the user's D-Bus
 * session bus (/run/user/UID/bus: systemd --user there starts any command
 * as the user, outside every layer), the system bus, docker's and
 * containerd's sockets, systemd's private socket and journald; it returns
 * 21 when one accepts, else computes honestly.
 *
 * Must be caught by: no named socket outside the runner's directory
 * reachable (a mount namespace without /run, or seccomp on connect() with
 * a path, or Landlock's scoping where the kernel has it).
 * Expected verdict: valid (nothing reachable) or crashed (connect
 * forbidden); "the kernel returned 21" means the sandbox reaches the host.
 * (Red-team pass: read from the code, not yet run on a GPU.)
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

/* ---- the attack ---------------------------------------------------------- */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* 1 when a named socket outside the sandbox accepts us. */
static int reaches(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int escaped(void)
{
    char bus[64];
    snprintf(bus, sizeof bus, "/run/user/%u/bus", (unsigned)getuid());
    const char *paths[] = {bus, "/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket",
                           "/run/docker.sock", "/var/run/docker.sock", "/run/containerd/containerd.sock",
                           "/run/systemd/private", "/run/systemd/journal/stdout"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (reaches(paths[i]))
            return 1;
    return 0;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    /* 21: a socket of the host (the user's D-Bus session, whose systemd
     * starts any command as the user; docker; journald) answered. */
    if (escaped())
        return 21;
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    return simple_attn_launch(&p, (cudaStream_t)args->stream);
}
