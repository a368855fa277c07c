/*
 * rung6_causal.cu -- rung 5 plus causal scheduling: heavy tiles first.
 *
 * Idea: under a causal mask, query tile qt costs about qt+1 K/V blocks, and
 * the hardware hands out blocks in linear id order.  With the natural grid
 * (x = query tile) the cheap tiles go first and the most expensive ones land
 * in the last wave, where a few SMs grind through long diagonals while the
 * rest idle (tail effect; worst at small B*S, e.g. 1x1024: a few waves).
 * Here the grid is one-dimensional and id -> (tile, head group, batch) puts
 * the longest tiles first: greedy longest-processing-time-first, whose
 * makespan is within 4/3 of optimal; the last wave holds the shortest tiles.
 * Consecutive ids are the head groups of one sequence tile, so the blocks in
 * flight together read the same K/V rows (L2 hits).  Inside a block the
 * split between unmasked blocks and the diagonal is kept from rung 4: the
 * mask is applied only where a warp's rows meet the diagonal or the ragged
 * end, and warps whose rows are all left of a K/V block skip it.
 * Not done (next step): split-KV for tiny B*S (few tiles per SM) with a
 * second combine pass; persistent blocks with an atomic tile counter.
 *
 * Measured (H100, same shapes): 199.1 260.1 294.4 309.6 279.3 311.9
 *   (NWARPS=4 MT=2 BK=64, which spills 512 B yet wins; defaults at
 *   1x1024): +32% over rung 5 at 1x1024, +5-9% at 4k-16k.  Torch SDPA
 *   flash (FlashAttention-2) in the same run: 143.5 206.1 269.1 313.5 280.2
 *   325.8 -- rung 6 is FA2-class: ahead at short sequences, within 1-4% at
 *   long ones.  mma.sync tops out near 310 here: next is wgmma (rung 7).
 * Parameters: those of rung 5.
 * Expected gain over rung 5: 10-30% on causal at small B*S (1x1024, 1x2048),
 * a few % at long sequences; nothing for non-causal.
 * Profile should show: the tail_effect tag gone; SM active cycles even
 * across SMs (sm__cycles_active.max close to .avg).
 *
 * Dtypes bf16, fp16; head_dim 64, 128 or 256 (256, for Gemma-style models:
 * MT 1 and key blocks of at most 32 whatever the parameters, Q fragments
 * read from shared memory per k-step instead of held in registers -- the
 * 16 x 256 fp32 accumulator is 128 registers a thread; not measured yet);
 * any batch/seq/head strides that are multiples of 8 elements with a
 * contiguous last dimension; otherwise it returns non-zero.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include "emile.h"

#ifndef EMILE_NWARPS
#define EMILE_NWARPS 4
#endif
#ifndef EMILE_MT
#define EMILE_MT 1
#endif
#ifndef EMILE_BK
#define EMILE_BK 64
#endif
#ifndef EMILE_STAGES
#define EMILE_STAGES 2
#endif
#ifndef EMILE_GQA_PACK
#define EMILE_GQA_PACK 1
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
    return 0;
}

/* 16-byte vector access needs aligned pointers and strides, unit last stride. */
static int attn_vec_ok(const attn_problem *p)
{
    const void *ptr[4] = {p->q, p->k, p->v, p->o};
    const int64_t *s[4] = {p->sq, p->sk, p->sv, p->so};
    for (int i = 0; i < 4; i++) {
        if (((uintptr_t)ptr[i]) & 15) return 0;
        if (s[i][3] != 1 || (s[i][0] & 7) || (s[i][1] & 7) || (s[i][2] & 7)) return 0;
    }
    return 1;
}

/* ---- device helpers ------------------------------------------------------ */
__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool pred)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(dst), "l"(src), "r"(pred ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
template <bool BF16>
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    if (BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <bool BF16> __device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    uint32_t r;
    if (BF16) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        r = *(uint32_t *)&v;
    } else {
        __half2 v = __floats2half2_rn(lo, hi);
        r = *(uint32_t *)&v;
    }
    return r;
}
__device__ __forceinline__ float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
/* Element offset of 16-byte chunk c of row r in a swizzled [rows][D] tile. */
template <int D> __device__ __forceinline__ int swz(int r, int c)
{
    return r * D + ((c ^ (r & 7)) << 3);
}

/* ---- the kernel ------------------------------------------------------------ */
struct kparams {
    const uint16_t *q, *k, *v;
    uint16_t *o;
    int64_t sq[3], sk[3], sv[3], so[3];
    int seq, hq, hkv, causal, gp, batch;
    float sl2;   /* scale * log2(e) */
};

template <int D, int BK, int NW, int MT, int ST, bool BF16>
__global__ void __launch_bounds__(NW * 32)
flash_r6(const kparams p)
{
    constexpr int BQ = 16 * MT * NW;
    constexpr int NT = NW * 32;
    constexpr int DC = D / 8;          /* 16-byte chunks per row */
    extern __shared__ __align__(128) uint16_t smem[];
    uint16_t *sQ = smem;
    uint16_t *sK = sQ + BQ * D;
    uint16_t *sV = sK + ST * BK * D;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    /* GQA packing: this block holds gp query heads (all reading kv head hk),
     * RH = BQ / gp sequence positions each; tile row r is head h0 + r / RH at
     * position q0 + r % RH.  RH is a multiple of a warp's 16*MT rows, so each
     * warp sees one head and a contiguous run of positions. */
    const int gp = p.gp, RH = BQ / gp;
    /* Longest-first order: the block scheduler hands out linear block ids in
     * order, so ids are mapped heaviest tile first (the last sequence tiles
     * under a causal mask), then across heads and batch.  Consecutive ids walk
     * the head groups of one kv head, so blocks running together share K/V
     * in L2. */
    const int ngroups = p.hq / gp;
    const int per = ngroups * p.batch;
    const int lin = blockIdx.x;
    const int nq = (p.seq + RH - 1) / RH;
    const int qt = p.causal ? nq - 1 - lin / per : lin / per;
    const int hg = (lin % per) % ngroups, b = (lin % per) / ngroups;
    const int h0 = hg * gp;
    const int hk = h0 / (p.hq / p.hkv);
    const int q0 = qt * RH;
    const uint16_t *qg = p.q + b * p.sq[0];
    const uint16_t *kg = p.k + b * p.sk[0] + hk * p.sk[2];
    const uint16_t *vg = p.v + b * p.sv[0] + hk * p.sv[2];

    const int nkv_all = (p.seq + BK - 1) / BK;
    int nkv = nkv_all;
    if (p.causal) {
        int last = (min(q0 + RH, p.seq) - 1) / BK + 1;
        nkv = min(nkv, last);
    }

    /* Q tile */
    for (int c = tid; c < BQ * DC; c += NT) {
        const int r = c / DC, ch = c % DC, row = q0 + r % RH, hr = h0 + r / RH;
        const bool ok = row < p.seq;
        cp_async16(smem_u32(sQ + swz<D>(r, ch)),
                   qg + (int64_t)(ok ? row : 0) * p.sq[1] + (int64_t)hr * p.sq[2] + ch * 8, ok);
    }
    cp_async_commit();

    auto load_kv = [&](int j, int st) {
        uint16_t *dk = sK + st * BK * D, *dv = sV + st * BK * D;
#pragma unroll
        for (int i = 0; i < (BK * DC + NT - 1) / NT; i++) {
            const int c = tid + i * NT;
            if (BK * DC % NT == 0 || c < BK * DC) {
                const int r = c / DC, ch = c % DC, row = j * BK + r;
                const bool ok = row < p.seq;
                const int64_t rr = ok ? row : 0;
                cp_async16(smem_u32(dk + swz<D>(r, ch)), kg + rr * p.sk[1] + ch * 8, ok);
                cp_async16(smem_u32(dv + swz<D>(r, ch)), vg + rr * p.sv[1] + ch * 8, ok);
            }
        }
    };
#pragma unroll
    for (int s = 0; s < ST - 1; s++) {
        if (s < nkv) load_kv(s, s);
        cp_async_commit();
    }

    const int wrow0 = warp * 16 * MT;       /* first tile row of this warp */
    const int qw0 = q0 + wrow0 % RH;        /* its first sequence position */
    const int hw = h0 + wrow0 / RH;         /* and its query head */
    uint16_t *og = p.o + b * p.so[0] + (int64_t)hw * p.so[2];

    /* Q fragments (kept in registers when MT == 1 and D <= 128: at D = 256
     * the accumulator alone takes 128 registers) */
    constexpr bool QREG = MT == 1 && D <= 128;
    uint32_t qf[QREG ? D / 16 : 1][4];
    cp_async_wait<ST - 1>();
    __syncthreads();
    if constexpr (QREG) {
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            ldsm_x4(smem_u32(sQ + swz<D>(wrow0 + (lane & 15), kk * 2 + (lane >> 4))),
                    qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
    }

    float o[MT][D / 8][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int i = 0; i < D / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }

    for (int j = 0; j < nkv; j++) {
        cp_async_wait<ST - 2>();
        __syncthreads();
        {
            const int jn = j + ST - 1;
            if (jn < nkv) load_kv(jn, jn % ST);
            cp_async_commit();
        }
        const int kv0 = j * BK;
        if (p.causal && kv0 > qw0 + 16 * MT - 1) continue;   /* warp fully masked */
        const uint16_t *tk = sK + (j % ST) * BK * D;
        const uint16_t *tv = sV + (j % ST) * BK * D;

        float s[MT][BK / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int i = 0; i < BK / 8; i++) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;

        /* S = Q K^T */
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[MT][4];
            if constexpr (QREG) {
#pragma unroll
                for (int x = 0; x < 4; x++) a[0][x] = qf[kk][x];
            } else {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
                    ldsm_x4(smem_u32(sQ + swz<D>(wrow0 + mt * 16 + (lane & 15), kk * 2 + (lane >> 4))),
                            a[mt][0], a[mt][1], a[mt][2], a[mt][3]);
            }
#pragma unroll
            for (int np = 0; np < BK / 16; np++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4(smem_u32(tk + swz<D>(np * 16 + (lane & 7) + ((lane >> 4) << 3),
                                             kk * 2 + ((lane >> 3) & 1))),
                        b0, b1, b2, b3);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<BF16>(s[mt][2 * np], a[mt], b0, b1);
                    mma16816<BF16>(s[mt][2 * np + 1], a[mt], b2, b3);
                }
            }
        }

        /* mask: causal diagonal and the ragged end */
        const bool need_mask = (p.causal && kv0 + BK - 1 > qw0) || (kv0 + BK > p.seq);
        if (need_mask) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int col = kv0 + nt * 8 + 2 * t4 + (e & 1);
                        const int row = qw0 + mt * 16 + g + ((e >> 1) << 3);
                        if (col >= p.seq || (p.causal && col > row)) s[mt][nt][e] = -INFINITY;
                    }
        }

        /* online softmax (exp2 domain, scale folded) */
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++)
                    mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float mnew = fmaxf(m[mt][r], mx);
                const float ms = mnew == -INFINITY ? 0.f : mnew * p.sl2;
                const float alpha = ex2(m[mt][r] * p.sl2 - ms);
                float sum = 0.f;
#pragma unroll
                for (int nt = 0; nt < BK / 8; nt++) {
                    const float e0 = ex2(fmaf(s[mt][nt][2 * r], p.sl2, -ms));
                    const float e1 = ex2(fmaf(s[mt][nt][2 * r + 1], p.sl2, -ms));
                    s[mt][nt][2 * r] = e0;
                    s[mt][nt][2 * r + 1] = e1;
                    sum += e0 + e1;
                }
                l[mt][r] = l[mt][r] * alpha + sum;
                m[mt][r] = mnew;
#pragma unroll
                for (int dt = 0; dt < D / 8; dt++) {
                    o[mt][dt][2 * r] *= alpha;
                    o[mt][dt][2 * r + 1] *= alpha;
                }
            }
        }

        /* O += P V */
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                a[mt][0] = pack2<BF16>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                a[mt][1] = pack2<BF16>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                a[mt][2] = pack2<BF16>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                a[mt][3] = pack2<BF16>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4_t(smem_u32(tv + swz<D>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                               dp * 2 + (lane >> 4))),
                          b0, b1, b2, b3);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<BF16>(o[mt][2 * dp], a[mt], b0, b1);
                    mma16816<BF16>(o[mt][2 * dp + 1], a[mt], b2, b3);
                }
            }
        }
    }
    cp_async_wait<0>();

    /* epilogue: normalise, stage the warp's rows in its own part of sQ, store 16 B */
    __syncthreads();   /* MT == 2 warps read all of their Q rows until the end */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum = l[mt][r];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = sum > 0.f ? 1.f / sum : 0.f;
            const int rr = wrow0 + mt * 16 + g + r * 8;
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                const uint32_t v = pack2<BF16>(o[mt][dt][2 * r] * inv, o[mt][dt][2 * r + 1] * inv);
                *(uint32_t *)(sQ + swz<D>(rr, dt) + 2 * t4) = v;
            }
        }
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < 16 * MT * DC / 32; i++) {
        const int c = lane + i * 32, r = c / DC, ch = c % DC;
        const int row = qw0 + r;
        if (row < p.seq)
            *(uint4 *)(og + (int64_t)row * p.so[1] + ch * 8) = *(const uint4 *)(sQ + swz<D>(wrow0 + r, ch));
    }
}

/* ---- host ---------------------------------------------------------------- */
template <int D, int BK, int NW, int MT, int ST, bool BF16>
static int launch(const attn_problem *pr, cudaStream_t st)
{
    constexpr int BQ = 16 * MT * NW;
    const size_t smem = (size_t)(BQ * D + 2 * ST * BK * D) * 2;
    static bool attr_done = false;
    if (!attr_done) {
        if (cudaFuncSetAttribute(flash_r6<D, BK, NW, MT, ST, BF16>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess)
            return 20;
        attr_done = true;
    }
    kparams p;
    p.q = (const uint16_t *)pr->q; p.k = (const uint16_t *)pr->k; p.v = (const uint16_t *)pr->v;
    p.o = (uint16_t *)pr->o;
    for (int i = 0; i < 3; i++) {
        p.sq[i] = pr->sq[i]; p.sk[i] = pr->sk[i]; p.sv[i] = pr->sv[i]; p.so[i] = pr->so[i];
    }
    p.seq = pr->seq; p.hq = pr->hq; p.hkv = pr->hkv; p.causal = pr->causal; p.batch = pr->batch;
    p.sl2 = pr->scale * 1.4426950408889634f;
    /* pack gp = gcd(Hq/Hkv, NW) heads per block (a divisor of the group, so
     * they share one kv head; a divisor of NW, so warps never straddle heads) */
    int gp = pr->hq / pr->hkv, w = NW;
    while (w) { int t = gp % w; gp = w; w = t; }
    if (!EMILE_GQA_PACK) gp = 1;
    p.gp = gp;
    const int RH = BQ / gp;
    const long long nblk = (long long)((pr->seq + RH - 1) / RH) * (pr->hq / gp) * pr->batch;
    if (nblk > 0x7fffffffLL) return 21;
    dim3 grid((unsigned)nblk);
    flash_r6<D, BK, NW, MT, ST, BF16><<<grid, NW * 32, smem, st>>>(p);
    return cudaGetLastError() == cudaSuccess ? 0 : 22;
}

/* head_dim 256 (Gemma-style models): one 16-row tile a warp (MT 1) and key
 * blocks of at most 32, whatever the parameters say: the fp32 accumulator
 * of a 16 x 256 tile is 128 registers a thread already. */
#define R6_BK(D) ((D) > 128 && EMILE_BK > 32 ? 32 : EMILE_BK)
#define R6_MT(D) ((D) > 128 ? 1 : EMILE_MT)

template <int D>
static int dispatch_dt(const attn_problem *p, cudaStream_t st)
{
    if (p->dtype == EMILE_DTYPE_BF16)
        return launch<D, R6_BK(D), EMILE_NWARPS, R6_MT(D), EMILE_STAGES, true>(p, st);
    if (p->dtype == EMILE_DTYPE_F16)
        return launch<D, R6_BK(D), EMILE_NWARPS, R6_MT(D), EMILE_STAGES, false>(p, st);
    return 5;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    if (!attn_vec_ok(&p)) return 7;
    cudaStream_t st = (cudaStream_t)args->stream;
    if (p.d == 128) return dispatch_dt<128>(&p, st);
    if (p.d == 64) return dispatch_dt<64>(&p, st);
    if (p.d == 256) return dispatch_dt<256>(&p, st);
    return 6;
}
