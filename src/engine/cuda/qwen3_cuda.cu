/*
 * qwen3_cuda.cu -- the engine's GPU path (see src/engine/qwen3_cuda.h).
 *
 * Build (`make build/libemile-engine-cuda.so`):
 *   nvcc -O3 -arch=sm_90a -std=c++17 -shared -Xcompiler -fPIC -cudart shared -Iinclude -Isrc
 *        src/engine/cuda/qwen3_cuda.cu -o build/libemile-engine-cuda.so -lcublas
 * (the shared CUDA runtime, as the kernels put in the slot are built, so the
 * engine and the kernel share one runtime and the stream handle means the
 * same thing to both).
 *
 * Per layer, for a chunk of n tokens at position pos (residual stream x in
 * fp32, everything else bf16):
 *   xb = rmsnorm(x) * attn_norm              (fused with the previous residual add)
 *   qkv = xb [Wq; Wk; Wv]^T                  (one cuBLAS GEMM: the three stacked)
 *   q = rope(rmsnorm_head(q) * q_norm); cache[pos] = rope(rmsnorm_head(k) * k_norm), v
 *                                            (one kernel, writes q and the cache rows)
 *   att = attention(q, cache)                (pos 0: the slot's kernel; else ours)
 *   x += att Wo^T;  xb = rmsnorm(x) * mlp_norm           (fp32 GEMM output, fused add+norm)
 *   gu = xb [Wgate; Wup]^T                   (one GEMM: gate and up stacked)
 *   x += (silu(g) * u) Wdown^T;  xb = rmsnorm(x) * next norm
 * then logits = xb lm_head^T in fp32.
 *
 * Decode with a CUDA graph: the tokens and the position are read from
 * device memory (tok_d, pos_d), never baked into a launch, and every
 * pointer a launch gets is fixed (the cache row is chosen inside the
 * kernels, the attention's split count is fixed by max_seq), so one
 * single-token step -- all layers, final norm, lm_head and argmax -- is
 * captured once per model (in create, after an eager warm-up so cuBLAS has
 * chosen and loaded its kernels) and replayed for every token after a
 * one-thread kernel sets (token, pos).  cuBLAS runs inside the capture
 * with a preallocated workspace on the capture stream.  When the capture
 * fails, or EMILE_ENGINE_NO_GRAPH is set, the same launches run eagerly on
 * the stream; qwen3_cuda_decode_path says which path runs and why.
 *
 * Op slots (op_slot.h): qwen3_cuda_set_ops puts kernels of the ABI in the
 * decode ops' slots; a decode step then calls them on the stream instead
 * of the engine's own launches, with bf16 device tensors and the position
 * and length in device memory (pos_d, len_d), so the step stays one graph.
 * A qkv_proj kernel writes the new key and value rows to knew/vnew, which
 * k_append copies to the cache row *pos_d; a decode_attention kernel reads
 * the cache [max_seq, Hkv, D] and its length *len_d; an lm_head kernel
 * writes the logits and the argmax.  The slots are set before the graph is
 * captured (after an eager step that lets each kernel load its module and
 * choose its launch outside the capture).
 *
 * Breakdown (qwen3_cuda_set_profile): every section of a forward (an op,
 * or the norms and adds between ops) ends with a CUDA event; decode replays
 * a second graph captured with those events as event nodes; the times
 * between consecutive events are the ops' (qwen3_cuda_profile_take).
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <initializer_list>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../qwen3_cuda.h"

typedef __nv_bfloat16 bf16;

/* Return -1 from the enclosing function with file, line and the error. */
#define CK(call) do { \
        cudaError_t e_ = (call); \
        if (e_ != cudaSuccess) { \
            snprintf(err, errlen, "%s:%d: %s: %s", __FILE__, __LINE__, #call, \
                     cudaGetErrorString(e_)); \
            return -1; \
        } \
    } while (0)
#define CB(call) do { \
        cublasStatus_t s_ = (call); \
        if (s_ != CUBLAS_STATUS_SUCCESS) { \
            snprintf(err, errlen, "%s:%d: %s: cuBLAS status %d", __FILE__, __LINE__, #call, \
                     (int)s_); \
            return -1; \
        } \
    } while (0)

struct layer_w {
    bf16 *attn_norm, *wqkv, *q_norm, *k_norm, *wo, *mlp_norm, *w_gateup, *w_down;
};

struct qwen3_cuda {
    qwen3_config_t c;
    int max_seq, max_chunk, last_rows;
    cudaStream_t stream;
    cublasHandle_t blas;
    bf16 *embed, *final_norm, *lm_head;
    layer_w *L;               /* host array of device pointers */
    float *x, *tmp, *logits;  /* [chunk, H], [chunk, H], [chunk, vocab] */
    bf16 *xb, *qkv, *q, *att, *gu, *hb;   /* qkv: [chunk, qd + 2 kvd] */
    bf16 *kc, *vc;            /* [layers, max_seq, kvd] */
    float2 *rope;             /* [max_seq, D/2] (cos, sin) */
    int *tok_d, *argmax_d;
    int *pos_d;               /* position of the forward's first token */
    int *len_d;               /* cache rows valid after the forward (pos + n) */
    bf16 *knew, *vnew;        /* [kvd]: a qkv_proj kernel's new k and v rows */
    emile_kernel_fn ops[ENGINE_OP_COUNT];   /* decode slots; NULL: the engine's own */
    /* breakdown: an event at the end of each section of a forward */
    int prof_on, prof_cap, prof_n, prof_phase, capturing;
    cudaEvent_t *prof_ev;     /* [prof_cap + 1]: [0] the start */
    int *prof_op;             /* row of the section that ends at prof_ev[i] */
    int *prof_op_graph, prof_graph_n;   /* the same for the profiled decode graph */
    double prof_ms[2][ENGINE_PROF_N], prof_step_ms[2], prof_kv_len;
    long prof_calls[2];
    int prof_last_tokens, prof_pending, prof_pos;
    cudaGraphExec_t decode_graph_prof;   /* the decode step with the event nodes */
    int *next_h;              /* pinned host word the argmax is read back into */
    float *part;              /* split attention partials [4, Hq, splits, D + 2] */
    int att_splits;           /* key splits of the few-query attention (fixed by max_seq) */
    void *blas_ws;            /* cuBLAS workspace (graph capture needs one set) */
    cudaGraphExec_t decode_graph;   /* one decode step, NULL: eager path */
    char decode_path[192];    /* "graph" or "stream (why)" */
};

#define ATT_SPLIT_KEYS 128
#define ATT_MAX_SPLITS 64
#define BLAS_WORKSPACE ((size_t)32 << 20)   /* what cuBLAS asks for on Hopper */
/* Rows of logits kept: a prefill needs only its last row, and a whole
 * chunk's logits at a 151936-token vocabulary is 1.2 GB per 2048 tokens;
 * all_logits (golden checks) works for chunks up to this many tokens. */
#define LOGITS_MAX_ROWS 256

// ----------------------------------------------------------------------------
// kernels

__device__ static float block_sum(float v, float *sh)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = (blockDim.x + 31) / 32;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < nw; i++) s += sh[i];
    return s;
}

__global__ static void k_embed(const bf16 *emb, const int *tok, float *x, int H)
{
    const bf16 *row = emb + (size_t)tok[blockIdx.x] * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        x[(size_t)blockIdx.x * H + i] = __bfloat162float(row[i]);
}

/* x += add (when add), then out = bf16(w * x / rms(x)), one block of
 * NORM_THREADS per row.  A decode step has one row, so the block is the
 * whole kernel: wide (1024 threads) and 16-byte loads, so a 2560-wide row
 * is one load a thread, not ten in a row (the kernel ran 36 x 2 times a
 * step at several us each: issue 13's breakdown). */
#define NORM_THREADS 1024
__global__ static void __launch_bounds__(NORM_THREADS)
k_add_rmsnorm(float *x, const float *add, const bf16 *w, bf16 *out, int H, float eps)
{
    __shared__ float sh[32];
    float *xr = x + (size_t)blockIdx.x * H;
    const float *ar = add ? add + (size_t)blockIdx.x * H : NULL;
    bf16 *orow = out + (size_t)blockIdx.x * H;
    float ss = 0.0f;
    if ((H & 3) == 0 && (((uintptr_t)x | (uintptr_t)add | (uintptr_t)w | (uintptr_t)out) & 15) == 0) {
        float4 *x4 = (float4 *)xr;
        const float4 *a4 = (const float4 *)ar;
        const int H4 = H / 4;
        for (int i = threadIdx.x; i < H4; i += blockDim.x) {
            float4 v = x4[i];
            if (a4) {
                const float4 a = a4[i];
                v.x += a.x; v.y += a.y; v.z += a.z; v.w += a.w;
                x4[i] = v;
            }
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
        const float r = rsqrtf(block_sum(ss, sh) / H + eps);
        for (int i = threadIdx.x; i < H4; i += blockDim.x) {
            const float4 v = x4[i];                 /* this thread's own values */
            const uint2 wb = *(const uint2 *)(w + 4 * i);
            const __nv_bfloat162 *w2 = (const __nv_bfloat162 *)&wb;
            const float2 w01 = __bfloat1622float2(w2[0]), w23 = __bfloat1622float2(w2[1]);
            __nv_bfloat162 o[2] = { __floats2bfloat162_rn(w01.x * (v.x * r), w01.y * (v.y * r)),
                                    __floats2bfloat162_rn(w23.x * (v.z * r), w23.y * (v.w * r)) };
            *(uint2 *)(orow + 4 * i) = *(const uint2 *)o;
        }
        return;
    }
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        float v = xr[i] + (ar ? ar[i] : 0.0f);
        xr[i] = v;
        ss += v * v;
    }
    float r = rsqrtf(block_sum(ss, sh) / H + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        orow[i] = __float2bfloat16(__bfloat162float(w[i]) * (xr[i] * r));
}

/* The step's token, position and cache length, set before a forward or a
 * graph replay. */
__global__ static void k_set_step(int *tok, int *pos_d, int *len_d, int token, int pos, int n)
{
    if (token >= 0)
        *tok = token;
    *pos_d = pos;
    *len_d = pos + n;
}

/* A qkv_proj kernel's new key and value rows into the cache row *pos_d:
 * 16 bytes a thread when the rows allow (one load each, not four). */
__global__ static void k_append(const bf16 *knew, const bf16 *vnew, bf16 *kc, bf16 *vc,
                                const int *pos_d, int kvd)
{
    size_t row = (size_t)*pos_d * kvd;
    if ((kvd & 7) == 0 &&
        (((uintptr_t)knew | (uintptr_t)vnew | (uintptr_t)kc | (uintptr_t)vc) & 15) == 0) {
        const int n = kvd / 8;
        for (int i = threadIdx.x; i < 2 * n; i += blockDim.x) {
            const int j = i < n ? i : i - n;
            const uint4 *src = (const uint4 *)(i < n ? knew : vnew) + j;
            ((uint4 *)((i < n ? kc : vc) + row))[j] = *src;
        }
        return;
    }
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
        kc[row + i] = knew[i];
        vc[row + i] = vnew[i];
    }
}

/* From the stacked projections qkv[t] = [q heads | k heads | v heads]:
 * per-head RMSNorm then RoPE (rotate_half pairing) of q into q_out and of k
 * into the key cache row, v copied into the value cache row; the row is
 * *pos_d + t, read here so a captured launch serves every position.
 * Block (t, head), D rounded up to whole warps threads; heads [0, Hq) are
 * q's, [Hq, Hq+Hkv) k's, [Hq+Hkv, Hq+2Hkv) v's. */
__global__ static void k_qkv_post(const bf16 *qkv, bf16 *q_out, bf16 *kc, bf16 *vc,
                                  const bf16 *qn, const bf16 *kn, const float2 *rope,
                                  const int *pos_d, int Hq, int Hkv, int D, float eps)
{
    __shared__ float sh[32];
    __shared__ float y[512];
    int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = D / 2;
    int pos = *pos_d + t, kvd = Hkv * D;
    const bf16 *src = qkv + (size_t)t * (Hq + 2 * Hkv) * D + (size_t)h * D;
    if (h >= Hq + Hkv) {                 /* the whole block: v */
        if (i < D)
            vc[(size_t)pos * kvd + (size_t)(h - Hq - Hkv) * D + i] = src[i];
        return;
    }
    bf16 *dst = h < Hq ? q_out + ((size_t)t * Hq + h) * D
                       : kc + (size_t)pos * kvd + (size_t)(h - Hq) * D;
    const bf16 *w = h < Hq ? qn : kn;
    float xi = i < D ? __bfloat162float(src[i]) : 0.0f;
    float r = rsqrtf(block_sum(xi * xi, sh) / D + eps);
    if (i < D)
        y[i] = __bfloat162float(w[i]) * (xi * r);
    __syncthreads();
    if (i >= D)
        return;
    float2 cs = rope[(size_t)pos * half + (i % half)];
    float o = i < half ? y[i] * cs.x - y[i + half] * cs.y : y[i] * cs.x + y[i - half] * cs.y;
    dst[i] = __float2bfloat16(o);
}

/* Attention of query t (position pos + t, pos = *pos_d) over cache rows
 * 0..pos+t, online softmax.  Block (t, h, split), ATT_WARPS warps; the
 * gridDim.x queries' keys 0..pos+n-1 are cut into gridDim.z equal chunks
 * (computed here from pos, so the grid is fixed and a captured launch
 * serves every position; splits past the keys find nothing), split s takes
 * [s * chunk, (s + 1) * chunk), each warp every ATT_WARPS-th of them, lanes
 * hold ceil(D/32) consecutive elements.  One split writes the output; with
 * several (decode: one query, many keys, too few blocks otherwise) each
 * writes (max, sum, acc[D]) to part and k_attn_combine merges them. */
#define ATT_WARPS 8
__global__ static void k_attention(const bf16 *q, const bf16 *kc, const bf16 *vc, bf16 *out,
                                   float *part, const int *pos_d, int Hq, int Hkv, int D,
                                   float scale)
{
    __shared__ float sm[ATT_WARPS], sl[ATT_WARPS], sacc[ATT_WARPS][256];
    int t = blockIdx.x, h = blockIdx.y, sp = blockIdx.z, nsp = gridDim.z;
    int pos = *pos_d, chunk = (pos + (int)gridDim.x + nsp - 1) / nsp;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int epl = (D + 31) / 32, kvd = Hkv * D, kh = h / (Hq / Hkv), e0 = lane * epl;
    int ne = e0 >= D ? 0 : (D - e0 < epl ? D - e0 : epl);
    const bf16 *qr = q + ((size_t)t * Hq + h) * D + e0;
    float qv[8], acc[8];
    for (int e = 0; e < 8; e++) {
        qv[e] = e < ne ? __bfloat162float(qr[e]) * scale : 0.0f;
        acc[e] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int jend = min(pos + t + 1, (sp + 1) * chunk);
    for (int j = sp * chunk + w; j < jend; j += ATT_WARPS) {
        const bf16 *kr = kc + (size_t)j * kvd + (size_t)kh * D + e0;
        const bf16 *vr = vc + (size_t)j * kvd + (size_t)kh * D + e0;
        float s = 0.0f;
        for (int e = 0; e < ne; e++)
            s += qv[e] * __bfloat162float(kr[e]);
        for (int o = 16; o > 0; o >>= 1)
            s += __shfl_xor_sync(0xffffffffu, s, o);
        float m2 = fmaxf(m, s), c = __expf(m - m2), p = __expf(s - m2);
        l = l * c + p;
        for (int e = 0; e < ne; e++)
            acc[e] = acc[e] * c + p * __bfloat162float(vr[e]);
        m = m2;
    }
    if (lane == 0) { sm[w] = m; sl[w] = l; }
    for (int e = 0; e < ne; e++)
        sacc[w][e0 + e] = acc[e];
    __syncthreads();
    float M = -INFINITY;
    for (int i = 0; i < ATT_WARPS; i++) M = fmaxf(M, sm[i]);
    float Lsum = 0.0f;
    for (int i = 0; i < ATT_WARPS; i++)
        Lsum += sm[i] == -INFINITY ? 0.0f : sl[i] * __expf(sm[i] - M);
    float *pp = part + (((size_t)t * Hq + h) * nsp + sp) * (D + 2);
    if (nsp > 1 && threadIdx.x == 0) { pp[0] = M; pp[1] = Lsum; }
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
        for (int i = 0; i < ATT_WARPS; i++)
            if (sm[i] != -INFINITY)
                o += sacc[i][d] * __expf(sm[i] - M);
        if (nsp > 1)
            pp[2 + d] = o;
        else
            out[((size_t)t * Hq + h) * D + d] = __float2bfloat16(o / Lsum);
    }
}

/* Merge the splits of k_attention (those that found no key have max
 * -inf and are skipped): block (t, h), D threads. */
__global__ static void k_attn_combine(const float *part, bf16 *out, int nsp, int Hq, int D)
{
    int t = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
    const float *pp = part + ((size_t)t * Hq + h) * nsp * (D + 2);
    float M = -INFINITY;
    for (int s = 0; s < nsp; s++) M = fmaxf(M, pp[s * (D + 2)]);
    float L = 0.0f, o = 0.0f;
    for (int s = 0; s < nsp; s++) {
        float ms = pp[s * (D + 2)];
        if (ms == -INFINITY) continue;
        float f = __expf(ms - M);
        L += pp[s * (D + 2) + 1] * f;
        o += pp[s * (D + 2) + 2 + d] * f;
    }
    out[((size_t)t * Hq + h) * D + d] = __float2bfloat16(o / L);
}

/* hb = silu(gate) * up, gu rows = [gate (I) | up (I)]. */
__global__ static void k_swiglu(const bf16 *gu, bf16 *hb, int I, size_t total)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t t = i / I, j = i % I;
    float g = __bfloat162float(gu[t * 2 * I + j]), u = __bfloat162float(gu[t * 2 * I + I + j]);
    hb[i] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
}

__device__ static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The draw of qwen3_weights_random, rounded to bf16. */
__global__ static void k_random(bf16 *dst, size_t n, uint64_t key, int is_norm)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float u = (float)((double)(splitmix64(key + i) >> 40) * (2.0 / 16777216.0) - 1.0);
        dst[i] = __float2bfloat16(is_norm ? 1.0f + 0.1f * u : 0.034641016f * u);
    }
}

__global__ static void k_argmax(const float *x, int n, int *out)
{
    __shared__ float bv[1024];
    __shared__ int bi[1024];
    float best = -INFINITY;
    int idx = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (x[i] > best) { best = x[i]; idx = i; }
    bv[threadIdx.x] = best;
    bi[threadIdx.x] = idx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float ov = bv[threadIdx.x + s];
            int oi = bi[threadIdx.x + s];
            if (ov > bv[threadIdx.x] || (ov == bv[threadIdx.x] && oi < bi[threadIdx.x])) {
                bv[threadIdx.x] = ov;
                bi[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = bi[0];
}

// ----------------------------------------------------------------------------
// weights

static float f16_to_f32(uint16_t h)
{
    __half_raw r;
    r.x = h;
    return __half2float(__half(r));
}

static uint16_t f32_to_bf16_bits(float f)
{
    __nv_bfloat16_raw r = __float2bfloat16(f);
    return r.x;
}

static uint64_t random_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return seed ^ h;
}

struct loader {
    qwen3_cuda_t *m;
    qwen3_cuda_get_fn get;
    void *user;
    uint64_t seed;
    uint16_t *stage;          /* host bf16 staging for F32/F16 sources */
    size_t stage_n;
};

/* Fill numel bf16 elements at dst from the tensor called name. */
static int fill(loader *ld, const char *name, bf16 *dst, size_t numel, int is_norm, char *err,
                size_t errlen)
{
    cudaStream_t st = ld->m->stream;
    if (!ld->get) {
        k_random<<<1024, 256, 0, st>>>(dst, numel, random_key(ld->seed, name), is_norm);
        CK(cudaGetLastError());
        return 0;
    }
    const void *data;
    int dtype;
    int64_t n;
    if (ld->get(ld->user, name, &data, &dtype, &n) != 0) {
        snprintf(err, errlen, "checkpoint has no tensor %s", name);
        return -1;
    }
    if ((size_t)n != numel) {
        snprintf(err, errlen, "tensor %s: %lld elements, %zu expected", name, (long long)n, numel);
        return -1;
    }
    if (dtype == EMILE_DTYPE_BF16) {
        CK(cudaMemcpy(dst, data, numel * 2, cudaMemcpyHostToDevice));
        return 0;
    }
    if (dtype != EMILE_DTYPE_F32 && dtype != EMILE_DTYPE_F16) {
        snprintf(err, errlen, "tensor %s: dtype %d (F32, F16, BF16 only)", name, dtype);
        return -1;
    }
    for (size_t off = 0; off < numel; off += ld->stage_n) {
        size_t k = numel - off < ld->stage_n ? numel - off : ld->stage_n;
        for (size_t i = 0; i < k; i++) {
            float f;
            if (dtype == EMILE_DTYPE_F32) {
                memcpy(&f, (const char *)data + (off + i) * 4, 4);
            } else {
                uint16_t h;
                memcpy(&h, (const char *)data + (off + i) * 2, 2);
                f = f16_to_f32(h);
            }
            ld->stage[i] = f32_to_bf16_bits(f);
        }
        CK(cudaMemcpy(dst + off, ld->stage, k * 2, cudaMemcpyHostToDevice));
    }
    return 0;
}

static int alloc_bf16(bf16 **p, size_t n, char *err, size_t errlen)
{
    CK(cudaMalloc((void **)p, n * sizeof(bf16)));
    return 0;
}

static int load_weights(loader *ld, char *err, size_t errlen)
{
    qwen3_cuda_t *m = ld->m;
    const qwen3_config_t *c = &m->c;
    size_t H = c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, I = c->intermediate, D = c->head_dim;
    char nm[160];
    if (alloc_bf16(&m->embed, (size_t)c->vocab * H, err, errlen) ||
        fill(ld, "model.embed_tokens.weight", m->embed, (size_t)c->vocab * H, 0, err, errlen))
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        layer_w *L = &m->L[l];
        /* alloc: the elements of the stacked tensor its first part allocates
         * (q, k, v share one [qd + 2 kvd, H] matrix, gate and up one [2 I, H]) */
        struct { bf16 **p; const char *name; size_t n; size_t off; size_t alloc; int norm; } t[] = {
            { &L->attn_norm, "input_layernorm.weight", H, 0, H, 1 },
            { &L->wqkv, "self_attn.q_proj.weight", qd * H, 0, (qd + 2 * kvd) * H, 0 },
            { &L->wqkv, "self_attn.k_proj.weight", kvd * H, qd * H, 0, 0 },
            { &L->wqkv, "self_attn.v_proj.weight", kvd * H, (qd + kvd) * H, 0, 0 },
            { &L->q_norm, "self_attn.q_norm.weight", D, 0, D, 1 },
            { &L->k_norm, "self_attn.k_norm.weight", D, 0, D, 1 },
            { &L->wo, "self_attn.o_proj.weight", H * qd, 0, H * qd, 0 },
            { &L->mlp_norm, "post_attention_layernorm.weight", H, 0, H, 1 },
            { &L->w_gateup, "mlp.gate_proj.weight", I * H, 0, 2 * I * H, 0 },
            { &L->w_gateup, "mlp.up_proj.weight", I * H, I * H, 0, 0 },
            { &L->w_down, "mlp.down_proj.weight", H * I, 0, H * I, 0 },
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, t[i].name);
            if (t[i].alloc && alloc_bf16(t[i].p, t[i].alloc, err, errlen))
                return -1;
            if (fill(ld, nm, *t[i].p + t[i].off, t[i].n, t[i].norm, err, errlen))
                return -1;
        }
    }
    if (alloc_bf16(&m->final_norm, H, err, errlen) ||
        fill(ld, "model.norm.weight", m->final_norm, H, 1, err, errlen))
        return -1;
    if (c->tie_embeddings) {
        m->lm_head = m->embed;
    } else if (alloc_bf16(&m->lm_head, (size_t)c->vocab * H, err, errlen) ||
               fill(ld, "lm_head.weight", m->lm_head, (size_t)c->vocab * H, 0, err, errlen)) {
        return -1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// create, destroy

extern "C" void qwen3_cuda_destroy(qwen3_cuda_t *m)
{
    if (!m)
        return;
    if (m->L) {
        for (int l = 0; l < m->c.n_layers; l++) {
            layer_w *L = &m->L[l];
            bf16 *p[] = { L->attn_norm, L->wqkv, L->q_norm, L->k_norm, L->wo, L->mlp_norm,
                          L->w_gateup, L->w_down };
            for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
                cudaFree(p[i]);
        }
        free(m->L);
    }
    if (m->lm_head != m->embed)
        cudaFree(m->lm_head);
    if (m->decode_graph)
        cudaGraphExecDestroy(m->decode_graph);
    if (m->decode_graph_prof)
        cudaGraphExecDestroy(m->decode_graph_prof);
    for (int i = 0; m->prof_ev && i <= m->prof_cap; i++)
        if (m->prof_ev[i])
            cudaEventDestroy(m->prof_ev[i]);
    free(m->prof_ev);
    free(m->prof_op);
    free(m->prof_op_graph);
    void *bufs[] = { m->embed, m->final_norm, m->x, m->tmp, m->logits, m->xb, m->qkv, m->q,
                     m->att, m->gu, m->hb, m->kc, m->vc, m->rope, m->tok_d, m->argmax_d,
                     m->pos_d, m->len_d, m->knew, m->vnew, m->part, m->blas_ws };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        cudaFree(bufs[i]);
    cudaFreeHost(m->next_h);
    if (m->blas)
        cublasDestroy(m->blas);
    if (m->stream)
        cudaStreamDestroy(m->stream);
    free(m);
}

static int capture_decode(qwen3_cuda_t *m, char *err, size_t errlen);

static int create(qwen3_cuda_t *m, qwen3_cuda_get_fn get, void *user, uint64_t seed, char *err,
                  size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    if (c->head_dim % 2 != 0 || c->head_dim > 256) {
        snprintf(err, errlen, "head_dim %d: the GPU path needs an even head_dim up to 256",
                 c->head_dim);
        return -1;
    }
    CK(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    CB(cublasCreate(&m->blas));
    CB(cublasSetStream(m->blas, m->stream));
    CK(cudaMalloc(&m->blas_ws, BLAS_WORKSPACE));
    CB(cublasSetWorkspace(m->blas, m->blas_ws, BLAS_WORKSPACE));
    m->L = (layer_w *)calloc((size_t)c->n_layers, sizeof *m->L);
    if (!m->L) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    loader ld = { m, get, user, seed, NULL, (size_t)1 << 22 };
    if (get && !(ld.stage = (uint16_t *)malloc(ld.stage_n * 2))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = load_weights(&ld, err, errlen);
    free(ld.stage);
    if (rc)
        return -1;
    size_t T = m->max_chunk, H = c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, I = c->intermediate;
    size_t cache = (size_t)c->n_layers * m->max_seq * kvd;
    CK(cudaMalloc((void **)&m->x, T * H * 4));
    CK(cudaMalloc((void **)&m->tmp, T * H * 4));
    CK(cudaMalloc((void **)&m->logits, (T < LOGITS_MAX_ROWS ? T : LOGITS_MAX_ROWS) *
                                       (size_t)c->vocab * 4));
    CK(cudaMalloc((void **)&m->xb, T * H * 2));
    CK(cudaMalloc((void **)&m->qkv, T * (qd + 2 * kvd) * 2));
    CK(cudaMalloc((void **)&m->q, T * qd * 2));
    CK(cudaMalloc((void **)&m->att, T * qd * 2));
    CK(cudaMalloc((void **)&m->gu, T * 2 * I * 2));
    CK(cudaMalloc((void **)&m->hb, T * I * 2));
    CK(cudaMalloc((void **)&m->kc, cache * 2));
    CK(cudaMalloc((void **)&m->vc, cache * 2));
    CK(cudaMalloc((void **)&m->tok_d, T * 4));
    CK(cudaMalloc((void **)&m->argmax_d, 4));
    CK(cudaMalloc((void **)&m->pos_d, 4));
    CK(cudaMalloc((void **)&m->len_d, 4));
    CK(cudaMalloc((void **)&m->knew, kvd * 2));
    CK(cudaMalloc((void **)&m->vnew, kvd * 2));
    CK(cudaMallocHost((void **)&m->next_h, 4));
    m->att_splits = (m->max_seq + ATT_SPLIT_KEYS - 1) / ATT_SPLIT_KEYS;
    if (m->att_splits > ATT_MAX_SPLITS)
        m->att_splits = ATT_MAX_SPLITS;
    CK(cudaMalloc((void **)&m->part, (size_t)4 * c->n_heads * ATT_MAX_SPLITS *
                                     (c->head_dim + 2) * 4));
    /* RoPE table as the CPU path computes it (float inv_freq and angle) */
    int half = c->head_dim / 2;
    float2 *tab = (float2 *)malloc((size_t)m->max_seq * half * sizeof *tab);
    if (!tab) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < half; i++) {
        float inv = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / c->head_dim));
        for (int p = 0; p < m->max_seq; p++) {
            float ang = (float)p * inv;
            tab[(size_t)p * half + i] = make_float2((float)cos((double)ang), (float)sin((double)ang));
        }
    }
    cudaError_t e = cudaMalloc((void **)&m->rope, (size_t)m->max_seq * half * sizeof *tab);
    if (e == cudaSuccess)
        e = cudaMemcpy(m->rope, tab, (size_t)m->max_seq * half * sizeof *tab,
                       cudaMemcpyHostToDevice);
    free(tab);
    CK(e);
    CK(cudaDeviceSynchronize());
    return capture_decode(m, err, errlen);
}

extern "C" int qwen3_cuda_create(const qwen3_config_t *c, int max_seq, int max_chunk,
                                 qwen3_cuda_get_fn get, void *user, uint64_t seed,
                                 qwen3_cuda_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (max_seq <= 0 || max_chunk <= 0 || max_chunk > max_seq) {
        snprintf(err, errlen, "need 0 < max_chunk (%d) <= max_seq (%d)", max_chunk, max_seq);
        return -1;
    }
    qwen3_cuda_t *m = (qwen3_cuda_t *)calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->c = *c;
    m->max_seq = max_seq;
    m->max_chunk = max_chunk;
    if (create(m, get, user, seed, err, errlen) != 0) {
        qwen3_cuda_destroy(m);
        return -1;
    }
    *out = m;
    return 0;
}

// ----------------------------------------------------------------------------
// forward

/* y[n, out] = x[n, in] W[out, in]^T; y bf16 or fp32 (ytype). */
static int gemm(qwen3_cuda_t *m, const bf16 *W, int out, int in, const bf16 *x, int n, void *y,
                cudaDataType_t ytype, char *err, size_t errlen)
{
    const float one = 1.0f, zero = 0.0f;
    CB(cublasGemmEx(m->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, W, CUDA_R_16BF, in,
                    x, CUDA_R_16BF, in, &zero, y, ytype, out, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT));
    return 0;
}

static void tensor4(emile_tensor_t *t, const char *name, void *data, int64_t s, int64_t h,
                    int64_t d, int64_t row)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->name = name;
    t->dtype = EMILE_DTYPE_BF16;
    t->ndim = 4;
    t->shape[0] = 1; t->shape[1] = s; t->shape[2] = h; t->shape[3] = d;
    t->strides[3] = 1; t->strides[2] = d; t->strides[1] = row; t->strides[0] = row * s;
}

/* Breakdown: the section that ends here is op's (a row of engine_profile_t).
 * During a capture the event becomes an event node of the graph. */
static int section(qwen3_cuda_t *m, int op, char *err, size_t errlen)
{
    if (!m->prof_on || m->prof_n >= m->prof_cap)
        return 0;
    m->prof_n++;
    m->prof_op[m->prof_n] = op;
    if (m->capturing)
        CK(cudaEventRecordWithFlags(m->prof_ev[m->prof_n], m->stream, cudaEventRecordExternal));
    else
        CK(cudaEventRecord(m->prof_ev[m->prof_n], m->stream));
    return 0;
}

/* Call a decode slot's kernel on the stream: its status, then the launch's. */
static int slot_call(qwen3_cuda_t *m, int op, emile_tensor_t *t, int nt, const emile_param_t *p,
                     int np, int layer, char *err, size_t errlen)
{
    emile_args_t a = { EMILE_ABI_VERSION, nt, t, np, p, (void *)m->stream };
    int krc = m->ops[op](&a);
    if (krc != 0) {
        snprintf(err, errlen, "%s kernel returned %d in layer %d", engine_op_name(op), krc, layer);
        return -1;
    }
    CK(cudaGetLastError());
    return 0;
}

/* A shape for engine_tensor, alive until the end of the call's statement. */
#define SHAPE(...) (std::initializer_list<int64_t>{ __VA_ARGS__ }.begin())

static int attention(qwen3_cuda_t *m, emile_kernel_fn attn, int n, int pos, bf16 *kc, bf16 *vc,
                     int layer, char *err, size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    int D = c->head_dim, kvd = c->n_kv_heads * D;
    float scale = 1.0f / sqrtf((float)D);
    if (pos == 0 && attn) {
        emile_tensor_t t[4];
        tensor4(&t[0], "q", m->q, n, c->n_heads, D, (int64_t)c->n_heads * D);
        tensor4(&t[1], "k", kc, n, c->n_kv_heads, D, kvd);
        tensor4(&t[2], "v", vc, n, c->n_kv_heads, D, kvd);
        tensor4(&t[3], "o", m->att, n, c->n_heads, D, (int64_t)c->n_heads * D);
        emile_param_t p[] = { { "batch", 1 }, { "seq", (double)n },
                              { "q_heads", (double)c->n_heads },
                              { "kv_heads", (double)c->n_kv_heads }, { "head_dim", (double)D },
                              { "causal", 1 }, { "scale", 1.0 / sqrt((double)D) } };
        emile_args_t a = { EMILE_ABI_VERSION, 4, t, 7, p, (void *)m->stream };
        int krc = attn(&a);
        if (krc != 0) {
            snprintf(err, errlen, "attention kernel returned %d in layer %d", krc, layer);
            return -1;
        }
        CK(cudaGetLastError());
        return 0;
    }
    if (n == 1 && pos != 0 && m->ops[ENGINE_OP_DECODE_ATTENTION]) {
        emile_tensor_t t[5];
        engine_tensor(&t[0], "q", m->q, EMILE_DTYPE_BF16, 2, SHAPE(c->n_heads, D));
        engine_tensor(&t[1], "k", kc, EMILE_DTYPE_BF16, 3, SHAPE(m->max_seq, c->n_kv_heads, D));
        engine_tensor(&t[2], "v", vc, EMILE_DTYPE_BF16, 3, SHAPE(m->max_seq, c->n_kv_heads, D));
        engine_tensor(&t[3], "kv_len", m->len_d, EMILE_DTYPE_I32, 1, SHAPE(1));
        engine_tensor(&t[4], "o", m->att, EMILE_DTYPE_BF16, 2, SHAPE(c->n_heads, D));
        emile_param_t p[] = { { "q_heads", (double)c->n_heads },
                              { "kv_heads", (double)c->n_kv_heads }, { "head_dim", (double)D },
                              { "seq", (double)m->max_seq } };
        return slot_call(m, ENGINE_OP_DECODE_ATTENTION, t, 5, p, 4, layer, err, errlen);
    }
    /* Few queries over many keys (decode): split the keys over a number of
     * blocks fixed by max_seq, so the launch is the same at every position
     * (the kernel cuts the keys it finds at *pos_d). */
    int nsp = n <= 4 ? m->att_splits : 1;
    k_attention<<<dim3(n, c->n_heads, nsp), ATT_WARPS * 32, 0, m->stream>>>(
        m->q, kc, vc, m->att, m->part, m->pos_d, c->n_heads, c->n_kv_heads, D, scale);
    if (nsp > 1)
        k_attn_combine<<<dim3(n, c->n_heads), D, 0, m->stream>>>(m->part, m->att, nsp,
                                                                c->n_heads, D);
    CK(cudaGetLastError());
    return 0;
}

/* q into m->q, the new k and v into the cache row: the stacked projection,
 * then the per-head norms and RoPE (the engine's), or a qkv_proj kernel and
 * the append (decode with the slot set). */
static int qkv(qwen3_cuda_t *m, const layer_w *L, int n, int pos, bf16 *kc, bf16 *vc, int layer,
               char *err, size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    int H = c->hidden, D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D;
    if (n == 1 && pos != 0 && m->ops[ENGINE_OP_QKV_PROJ]) {
        emile_tensor_t t[9];
        engine_tensor(&t[0], "x", m->xb, EMILE_DTYPE_BF16, 2, SHAPE(1, H));
        engine_tensor(&t[1], "w", L->wqkv, EMILE_DTYPE_BF16, 2, SHAPE(qd + 2 * kvd, H));
        engine_tensor(&t[2], "q_norm", L->q_norm, EMILE_DTYPE_BF16, 1, SHAPE(D));
        engine_tensor(&t[3], "k_norm", L->k_norm, EMILE_DTYPE_BF16, 1, SHAPE(D));
        engine_tensor(&t[4], "rope", m->rope, EMILE_DTYPE_F32, 3, SHAPE(m->max_seq, D / 2, 2));
        engine_tensor(&t[5], "pos", m->pos_d, EMILE_DTYPE_I32, 1, SHAPE(1));
        engine_tensor(&t[6], "q", m->q, EMILE_DTYPE_BF16, 3, SHAPE(1, c->n_heads, D));
        engine_tensor(&t[7], "k", m->knew, EMILE_DTYPE_BF16, 3, SHAPE(1, c->n_kv_heads, D));
        engine_tensor(&t[8], "v", m->vnew, EMILE_DTYPE_BF16, 3, SHAPE(1, c->n_kv_heads, D));
        emile_param_t p[] = { { "n", 1 }, { "hidden", (double)H },
                              { "q_heads", (double)c->n_heads },
                              { "kv_heads", (double)c->n_kv_heads }, { "head_dim", (double)D },
                              { "rope_rows", (double)m->max_seq }, { "eps", c->rms_eps } };
        if (slot_call(m, ENGINE_OP_QKV_PROJ, t, 9, p, 7, layer, err, errlen) ||
            section(m, ENGINE_OP_QKV_PROJ, err, errlen))
            return -1;
        k_append<<<1, 256, 0, m->stream>>>(m->knew, m->vnew, kc, vc, m->pos_d, kvd);
        CK(cudaGetLastError());
        return section(m, ENGINE_PROF_OTHER, err, errlen);
    }
    if (gemm(m, L->wqkv, qd + 2 * kvd, H, m->xb, n, m->qkv, CUDA_R_16BF, err, errlen))
        return -1;
    k_qkv_post<<<dim3(n, c->n_heads + 2 * c->n_kv_heads), (D + 31) / 32 * 32, 0, m->stream>>>(
        m->qkv, m->q, kc, vc, L->q_norm, L->k_norm, m->rope, m->pos_d, c->n_heads,
        c->n_kv_heads, D, (float)c->rms_eps);
    CK(cudaGetLastError());
    return section(m, ENGINE_OP_QKV_PROJ, err, errlen);
}

/* y [n, out] (fp32) = x [n, in] W^T: an o_proj / down_proj kernel in a
 * decode step with the slot set (kdim: its in-features parameter), else
 * cuBLAS. */
static int proj_f32(qwen3_cuda_t *m, int op, const bf16 *W, int out, int in, const bf16 *x,
                    int n, int pos, float *y, const char *kdim, int layer, char *err,
                    size_t errlen)
{
    if (n == 1 && pos != 0 && m->ops[op]) {
        emile_tensor_t t[3];
        engine_tensor(&t[0], "x", (void *)x, EMILE_DTYPE_BF16, 2, SHAPE(1, in));
        engine_tensor(&t[1], "w", (void *)W, EMILE_DTYPE_BF16, 2, SHAPE(out, in));
        engine_tensor(&t[2], "y", y, EMILE_DTYPE_F32, 2, SHAPE(1, out));
        emile_param_t p[] = { { "n", 1 }, { "hidden", (double)out }, { kdim, (double)in } };
        if (slot_call(m, op, t, 3, p, 3, layer, err, errlen))
            return -1;
    } else if (gemm(m, W, out, in, x, n, y, CUDA_R_32F, err, errlen)) {
        return -1;
    }
    return section(m, op, err, errlen);
}

/* hb = silu(xb Wg^T) * (xb Wu^T). */
static int gate_up(qwen3_cuda_t *m, const layer_w *L, int n, int pos, int layer, char *err,
                   size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    int H = c->hidden, I = c->intermediate;
    if (n == 1 && pos != 0 && m->ops[ENGINE_OP_GATE_UP]) {
        emile_tensor_t t[3];
        engine_tensor(&t[0], "x", m->xb, EMILE_DTYPE_BF16, 2, SHAPE(1, H));
        engine_tensor(&t[1], "w", L->w_gateup, EMILE_DTYPE_BF16, 2, SHAPE(2 * I, H));
        engine_tensor(&t[2], "h", m->hb, EMILE_DTYPE_BF16, 2, SHAPE(1, I));
        emile_param_t p[] = { { "n", 1 }, { "hidden", (double)H }, { "inter", (double)I } };
        if (slot_call(m, ENGINE_OP_GATE_UP, t, 3, p, 3, layer, err, errlen))
            return -1;
        return section(m, ENGINE_OP_GATE_UP, err, errlen);
    }
    if (gemm(m, L->w_gateup, 2 * I, H, m->xb, n, m->gu, CUDA_R_16BF, err, errlen))
        return -1;
    size_t tot = (size_t)n * I;
    k_swiglu<<<(unsigned)((tot + 255) / 256), 256, 0, m->stream>>>(m->gu, m->hb, I, tot);
    CK(cudaGetLastError());
    return section(m, ENGINE_OP_GATE_UP, err, errlen);
}

/* Logits of rows first..n-1; in a decode step with an lm_head kernel, its
 * argmax into argmax_d too (*picked = 1). */
static int lm_head(qwen3_cuda_t *m, int n, int pos, int first, int *picked, char *err,
                   size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    *picked = 0;
    if (n == 1 && pos != 0 && m->ops[ENGINE_OP_LM_HEAD]) {
        emile_tensor_t t[4];
        engine_tensor(&t[0], "x", m->xb, EMILE_DTYPE_BF16, 2, SHAPE(1, c->hidden));
        engine_tensor(&t[1], "w", m->lm_head, EMILE_DTYPE_BF16, 2, SHAPE(c->vocab, c->hidden));
        engine_tensor(&t[2], "logits", m->logits, EMILE_DTYPE_F32, 2, SHAPE(1, c->vocab));
        engine_tensor(&t[3], "idx", m->argmax_d, EMILE_DTYPE_I32, 1, SHAPE(1));
        emile_param_t p[] = { { "n", 1 }, { "hidden", (double)c->hidden },
                              { "vocab", (double)c->vocab } };
        if (slot_call(m, ENGINE_OP_LM_HEAD, t, 4, p, 3, c->n_layers, err, errlen))
            return -1;
        *picked = 1;
    } else if (gemm(m, m->lm_head, c->vocab, c->hidden, m->xb + (size_t)first * c->hidden,
                    n - first, m->logits, CUDA_R_32F, err, errlen)) {
        return -1;
    }
    return section(m, ENGINE_OP_LM_HEAD, err, errlen);
}

/* Start a forward's breakdown: the first event, the phase of its rows. */
static int profile_start(qwen3_cuda_t *m, int decode, char *err, size_t errlen)
{
    if (!m->prof_on)
        return 0;
    m->prof_n = 0;
    m->prof_phase = decode;
    if (m->capturing)
        CK(cudaEventRecordWithFlags(m->prof_ev[0], m->stream, cudaEventRecordExternal));
    else
        CK(cudaEventRecord(m->prof_ev[0], m->stream));
    return 0;
}

/*
 * Enqueue the model on n tokens already in tok_d at the position in pos_d
 * (pos is the host's copy, only to choose the slots: the attention slot at
 * 0, the decode slots for one token elsewhere -- decode_body passes -1),
 * then the logits of rows first..n-1 (*picked: an lm_head kernel wrote the
 * argmax too).  Nothing here synchronises or depends on pos other than
 * through pos_d, so the launches can be captured into a graph.
 */
static int enqueue(qwen3_cuda_t *m, emile_kernel_fn attn, int n, int pos, int first, int *picked,
                   char *err, size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    int H = c->hidden, D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D;
    int I = c->intermediate, decode = n == 1 && pos != 0;
    float eps = (float)c->rms_eps;
    cudaStream_t st = m->stream;
    if (profile_start(m, decode, err, errlen))
        return -1;
    k_embed<<<n, 256, 0, st>>>(m->embed, m->tok_d, m->x, H);
    k_add_rmsnorm<<<n, NORM_THREADS, 0, st>>>(m->x, NULL, m->L[0].attn_norm, m->xb, H, eps);
    if (section(m, ENGINE_PROF_OTHER, err, errlen))
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        const layer_w *L = &m->L[l];
        bf16 *kc = m->kc + (size_t)l * m->max_seq * kvd, *vc = m->vc + (size_t)l * m->max_seq * kvd;
        if (qkv(m, L, n, pos, kc, vc, l, err, errlen) ||
            attention(m, attn, n, pos, kc, vc, l, err, errlen) ||
            section(m, decode ? ENGINE_OP_DECODE_ATTENTION : ENGINE_OP_ATTENTION, err, errlen) ||
            proj_f32(m, ENGINE_OP_O_PROJ, L->wo, H, qd, m->att, n, pos, m->tmp, "q_dim", l, err,
                     errlen))
            return -1;
        k_add_rmsnorm<<<n, NORM_THREADS, 0, st>>>(m->x, m->tmp, L->mlp_norm, m->xb, H, eps);
        if (section(m, ENGINE_PROF_OTHER, err, errlen) ||
            gate_up(m, L, n, pos, l, err, errlen) ||
            proj_f32(m, ENGINE_OP_DOWN_PROJ, L->w_down, H, I, m->hb, n, pos, m->tmp, "inter", l,
                     err, errlen))
            return -1;
        const bf16 *next = l + 1 < c->n_layers ? m->L[l + 1].attn_norm : m->final_norm;
        k_add_rmsnorm<<<n, NORM_THREADS, 0, st>>>(m->x, m->tmp, next, m->xb, H, eps);
        if (section(m, ENGINE_PROF_OTHER, err, errlen))
            return -1;
    }
    if (lm_head(m, n, pos, first, picked, err, errlen))
        return -1;
    CK(cudaGetLastError());
    return 0;
}

/* One decode step on the token and position already in tok_d / pos_d:
 * the model, then the argmax of the logits into argmax_d (unless an lm_head
 * kernel picked it). */
static int decode_body(qwen3_cuda_t *m, char *err, size_t errlen)
{
    int picked;
    if (enqueue(m, NULL, 1, -1, 0, &picked, err, errlen) != 0)
        return -1;
    if (!picked) {
        k_argmax<<<1, 1024, 0, m->stream>>>(m->logits, m->c.vocab, m->argmax_d);
        CK(cudaGetLastError());
        if (section(m, ENGINE_PROF_OTHER, err, errlen))
            return -1;
    }
    return 0;
}

/* Capture decode_body into *g (NULL on failure, with the reason in why). */
static void capture_one(qwen3_cuda_t *m, cudaGraphExec_t *out, char *why, size_t whyn)
{
    cudaGraph_t g = NULL;
    *out = NULL;
    cudaError_t e = cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        m->capturing = 1;
        int rc = decode_body(m, why, whyn);
        m->capturing = 0;
        cudaError_t e2 = cudaStreamEndCapture(m->stream, &g);   /* always: frees the stream */
        if (rc == 0 && e2 != cudaSuccess)
            snprintf(why, whyn, "capture: %s", cudaGetErrorString(e2));
        if (rc == 0 && e2 == cudaSuccess) {
            e = cudaGraphInstantiate(out, g, 0);
            if (e != cudaSuccess) {
                *out = NULL;
                snprintf(why, whyn, "instantiate: %s", cudaGetErrorString(e));
            }
        }
    } else {
        snprintf(why, whyn, "begin capture: %s", cudaGetErrorString(e));
    }
    if (g)
        cudaGraphDestroy(g);
    if (!*out)
        cudaGetLastError();              /* a failed capture's error is not sticky */
}

/*
 * Capture decode_body into m->decode_graph (and, with the breakdown on,
 * m->decode_graph_prof with its event nodes).  An eager step first (token 0
 * at position 0: the cache row it writes is rewritten by the next prefill)
 * lets cuBLAS and the slots' kernels choose and load theirs outside the
 * capture, where such work is not allowed.  Only an error of that eager
 * step is returned; a capture that fails leaves the eager path, with the
 * reason.
 */
static int capture_decode(qwen3_cuda_t *m, char *err, size_t errlen)
{
    if (m->decode_graph)
        cudaGraphExecDestroy(m->decode_graph);
    if (m->decode_graph_prof)
        cudaGraphExecDestroy(m->decode_graph_prof);
    m->decode_graph = m->decode_graph_prof = NULL;
    snprintf(m->decode_path, sizeof m->decode_path, "stream");
    int prof = m->prof_on;
    m->prof_on = 0;
    k_set_step<<<1, 1, 0, m->stream>>>(m->tok_d, m->pos_d, m->len_d, 0, 0, 1);
    int rc = decode_body(m, err, errlen);
    m->prof_on = prof;
    if (rc != 0)
        return -1;
    CK(cudaStreamSynchronize(m->stream));
    const char *off = getenv("EMILE_ENGINE_NO_GRAPH");
    if (off && *off && strcmp(off, "0") != 0) {
        snprintf(m->decode_path, sizeof m->decode_path, "stream (EMILE_ENGINE_NO_GRAPH is set)");
        return 0;
    }
    char why[256] = "";
    m->prof_on = 0;
    capture_one(m, &m->decode_graph, why, sizeof why);
    m->prof_on = prof;
    if (m->decode_graph && prof) {
        capture_one(m, &m->decode_graph_prof, why, sizeof why);
        /* which op each of its event nodes ends */
        m->prof_graph_n = m->prof_n;
        memcpy(m->prof_op_graph, m->prof_op, ((size_t)m->prof_cap + 1) * sizeof *m->prof_op);
    }
    if (m->decode_graph && (!prof || m->decode_graph_prof)) {
        snprintf(m->decode_path, sizeof m->decode_path, "graph");
        return 0;
    }
    snprintf(m->decode_path, sizeof m->decode_path, "stream (no graph: %.160s)", why);
    return 0;
}

/* Add the last forward's section times to the totals (waits for them). */
static int profile_collect(qwen3_cuda_t *m, char *err, size_t errlen)
{
    if (!m->prof_on || !m->prof_pending)
        return 0;
    m->prof_pending = 0;
    CK(cudaStreamSynchronize(m->stream));
    int ph = m->prof_phase;
    float ms;
    for (int i = 1; i <= m->prof_n; i++) {
        CK(cudaEventElapsedTime(&ms, m->prof_ev[i - 1], m->prof_ev[i]));
        m->prof_ms[ph][m->prof_op[i]] += ms;
    }
    CK(cudaEventElapsedTime(&ms, m->prof_ev[0], m->prof_ev[m->prof_n]));
    m->prof_step_ms[ph] += ms;
    m->prof_calls[ph]++;
    if (ph)
        m->prof_kv_len += m->prof_pos + 1;
    else
        m->prof_last_tokens = m->prof_pos;
    return 0;
}

extern "C" int qwen3_cuda_forward(qwen3_cuda_t *m, emile_kernel_fn attn, const int *tokens,
                                  int n, int pos, int all_logits, float *logits, char *err,
                                  size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    if (n < 1 || n > m->max_chunk || pos < 0 || pos + n > m->max_seq) {
        snprintf(err, errlen, "forward: %d tokens at position %d do not fit (chunk %d, "
                 "context %d)", n, pos, m->max_chunk, m->max_seq);
        return -1;
    }
    if (all_logits && n > LOGITS_MAX_ROWS) {
        snprintf(err, errlen, "forward: all the logits of %d tokens (%d at most)", n,
                 LOGITS_MAX_ROWS);
        return -1;
    }
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab) {
            snprintf(err, errlen, "forward: token %d outside the vocabulary (%d)", tokens[t],
                     c->vocab);
            return -1;
        }
    if (profile_collect(m, err, errlen))
        return -1;
    cudaStream_t st = m->stream;
    /* pageable source: the copy has left tokens when this returns */
    CK(cudaMemcpyAsync(m->tok_d, tokens, (size_t)n * 4, cudaMemcpyHostToDevice, st));
    k_set_step<<<1, 1, 0, st>>>(m->tok_d, m->pos_d, m->len_d, -1, pos, n);
    int first = all_logits ? 0 : n - 1, picked;
    m->last_rows = n - first;
    if (enqueue(m, attn, n, pos, first, &picked, err, errlen) != 0)
        return -1;
    m->prof_pending = m->prof_on;
    m->prof_pos = n == 1 && pos != 0 ? pos : n;
    /* Without logits to hand back nothing waits here: the argmax (or the
     * next call that reads back) does, so a prefill adds no sync of its own. */
    if (logits) {
        CK(cudaMemcpyAsync(logits, m->logits, (size_t)(n - first) * c->vocab * 4,
                           cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
    }
    return 0;
}

extern "C" int qwen3_cuda_decode_step(qwen3_cuda_t *m, int token, int pos, int *next,
                                      float *logits, char *err, size_t errlen)
{
    const qwen3_config_t *c = &m->c;
    if (pos < 0 || pos >= m->max_seq || token < 0 || token >= c->vocab) {
        snprintf(err, errlen, "decode: token %d at position %d (vocabulary %d, context %d)",
                 token, pos, c->vocab, m->max_seq);
        return -1;
    }
    if (profile_collect(m, err, errlen))
        return -1;
    cudaStream_t st = m->stream;
    k_set_step<<<1, 1, 0, st>>>(m->tok_d, m->pos_d, m->len_d, token, pos, 1);
    cudaGraphExec_t g = m->prof_on ? m->decode_graph_prof : m->decode_graph;
    if (g)
        CK(cudaGraphLaunch(g, st));
    else if (decode_body(m, err, errlen) != 0)
        return -1;
    if (m->prof_on && g) {
        /* the graph's event nodes are those decode_body's sections recorded
         * when it was captured */
        m->prof_n = m->prof_graph_n;
        m->prof_phase = 1;
        memcpy(m->prof_op, m->prof_op_graph, ((size_t)m->prof_cap + 1) * sizeof *m->prof_op);
    }
    m->prof_pending = m->prof_on;
    m->prof_pos = pos;
    m->last_rows = 1;
    CK(cudaMemcpyAsync(m->next_h, m->argmax_d, 4, cudaMemcpyDeviceToHost, st));
    if (logits)
        CK(cudaMemcpyAsync(logits, m->logits, (size_t)c->vocab * 4, cudaMemcpyDeviceToHost, st));
    CK(cudaStreamSynchronize(st));
    if (next)
        *next = *m->next_h;
    return 0;
}

extern "C" int qwen3_cuda_set_ops(qwen3_cuda_t *m, const emile_kernel_fn *fns, char *err,
                                  size_t errlen)
{
    int changed = 0;
    for (int i = 0; i < ENGINE_OP_COUNT; i++) {
        emile_kernel_fn f = engine_op_is_decode(i) ? fns[i] : NULL;
        changed |= f != m->ops[i];
        m->ops[i] = f;
    }
    if (!changed)
        return 0;
    if (capture_decode(m, err, errlen) == 0)
        return 0;
    /* a kernel that failed: the engine's own ops back in, the error kept */
    char why[256];
    memset(m->ops, 0, sizeof m->ops);
    cudaGetLastError();
    if (capture_decode(m, why, sizeof why) != 0)
        snprintf(err + strlen(err), errlen - strlen(err), "; and then: %s", why);
    return -1;
}

extern "C" int qwen3_cuda_set_profile(qwen3_cuda_t *m, int on, char *err, size_t errlen)
{
    if (on == m->prof_on)
        return 0;
    if (on && !m->prof_ev) {
        m->prof_cap = 16 * m->c.n_layers + 16;
        m->prof_ev = (cudaEvent_t *)calloc((size_t)m->prof_cap + 1, sizeof *m->prof_ev);
        m->prof_op = (int *)calloc((size_t)m->prof_cap + 1, sizeof *m->prof_op);
        m->prof_op_graph = (int *)calloc((size_t)m->prof_cap + 1, sizeof *m->prof_op);
        if (!m->prof_ev || !m->prof_op || !m->prof_op_graph) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (int i = 0; i <= m->prof_cap; i++)
            CK(cudaEventCreate(&m->prof_ev[i]));
    }
    CK(cudaStreamSynchronize(m->stream));
    m->prof_on = on;
    m->prof_pending = 0;
    memset(m->prof_ms, 0, sizeof m->prof_ms);
    memset(m->prof_step_ms, 0, sizeof m->prof_step_ms);
    memset(m->prof_calls, 0, sizeof m->prof_calls);
    m->prof_kv_len = 0;
    return capture_decode(m, err, errlen);
}

extern "C" int qwen3_cuda_profile_take(qwen3_cuda_t *m, engine_profile_t *p, char *err,
                                       size_t errlen)
{
    if (profile_collect(m, err, errlen))
        return -1;
    for (int ph = 0; ph < 2; ph++) {
        for (int i = 0; i < ENGINE_PROF_N; i++)
            p->ms[ph][i] += m->prof_ms[ph][i];
        p->step_ms[ph] += m->prof_step_ms[ph];
        p->calls[ph] += m->prof_calls[ph];
    }
    p->kv_len_sum += m->prof_kv_len;
    if (m->prof_calls[0])
        p->prefill_tokens = m->prof_last_tokens;
    memset(m->prof_ms, 0, sizeof m->prof_ms);
    memset(m->prof_step_ms, 0, sizeof m->prof_step_ms);
    memset(m->prof_calls, 0, sizeof m->prof_calls);
    m->prof_kv_len = 0;
    return 0;
}

extern "C" const char *qwen3_cuda_decode_path(qwen3_cuda_t *m)
{
    return m->decode_path;
}

extern "C" int qwen3_cuda_argmax(qwen3_cuda_t *m)
{
    const float *row = m->logits + (size_t)(m->last_rows - 1) * m->c.vocab;
    k_argmax<<<1, 1024, 0, m->stream>>>(row, m->c.vocab, m->argmax_d);
    if (cudaGetLastError() != cudaSuccess ||
        cudaMemcpyAsync(m->next_h, m->argmax_d, 4, cudaMemcpyDeviceToHost, m->stream) != cudaSuccess ||
        cudaStreamSynchronize(m->stream) != cudaSuccess)
        return -1;
    return *m->next_h;
}

extern "C" int qwen3_cuda_device_name(qwen3_cuda_t *m, char *buf, size_t len)
{
    int dev;
    cudaDeviceProp p;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess)
        return -1;
    snprintf(buf, len, "%s", p.name);
    return 0;
}
