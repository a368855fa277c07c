/*
 * rung7_wgmma.cu -- Hopper attention: wgmma + TMA + mbarriers, warp-
 * specialised producer/consumer warpgroups, setmaxnreg, softmax overlapped
 * with the matrix products, persistent longest-first schedule.
 *
 * Idea: rungs 3-6 use mma.sync, which on an H100 reaches about 2/3 of the
 * tensor cores' rate, and every warp must also issue its own loads and
 * ldmatrix instructions.  Hopper's warpgroup MMA (wgmma.mma_async, 4 warps,
 * m64nNk16) reads its operands straight from shared memory through matrix
 * descriptors, runs asynchronously, and the tensor memory accelerator (TMA)
 * copies whole tiles global -> shared with no thread involvement.  So:
 *   - 3 warpgroups per block (384 threads): warpgroup 0 is the producer (one
 *     thread issues TMA copies of Q, K, V tiles into a ring of EMILE_STAGES
 *     stages, each guarded by a "full" mbarrier with a transaction count and
 *     an "empty" mbarrier the consumers arrive on); warpgroups 1 and 2 are
 *     consumers, 64 query rows each of a 128-row tile;
 *   - setmaxnreg moves registers from the producer (24) to the consumers
 *     (240), which hold S (64 fp32), O (64 fp32) and P (32 x bf16x2);
 *   - S = Q K^T: wgmma m64n128k16, Q and K both from 128B-swizzled shared
 *     memory (K-major descriptors); O += P V: wgmma with P from registers
 *     (the S accumulator layout is the A-fragment layout after bf16 packing)
 *     and V from shared memory as an N-major (transposed) operand;
 *   - intra-warpgroup overlap: iteration j issues S_j = Q K_j^T and
 *     O += P_{j+1} V_{j+1} back to back, waits only for S_j, runs the
 *     softmax of S_j while P_{j+1} V_{j+1} is still on the tensor cores, then
 *     waits for it and rescales O;
 *   - EMILE_PINGPONG=1: two named barriers make the two consumer warpgroups
 *     take turns issuing their matrix products, so one's softmax runs while
 *     the other's GEMMs occupy the tensor cores;
 *   - persistent grid (one block per SM), tiles ordered longest first (causal)
 *     and dealt out in a snake order (round r goes left-to-right when r is
 *     even, right-to-left when odd) so every SM gets about the same work;
 *     consecutive tiles are the query heads of one kv head (GQA: L2 reuse);
 *   - K/V blocks are visited from the diagonal backwards: only the first
 *     block of a tile needs the causal / ragged-end mask.
 * TMA zero-fills rows past the sequence end, so any S works; the tensor maps
 * are 4-D (D, S, heads, batch) over the caller's strides.
 *
 * Parameters (defaults first): EMILE_STAGES 2|3 K/V ring depth (64 KB a
 * stage); EMILE_QBUF 2|1 Q buffers; EMILE_PINGPONG 1|0; EMILE_RESCALE_EARLY
 * 1|0; EMILE_SCHED 0|1|2 (static snake deal | dynamic atomic tile counter |
 * auto: dynamic from 32 query tiles on);
 * EMILE_TILE_ORDER 2|0|1 (auto | longest first | grouped by (batch, kv
 * head), longest first inside: K/V of the tiles in flight stay in L2);
 * EMILE_DIAG_HALF 0|1.  Tiles are fixed at 128 x 128, head_dim 128.
 *
 * Measured (bench/attention_cuda.py, causal GQA bf16 Hq=32 Hkv=8 D=128,
 * TFLOP/s at 1x1024 1x2048 1x4096 1x8192 4x2048 1x16384):
 *   v1 static snake, 1 Q buffer (H200)   302 476 602 658 514 592
 *   + Q double buffer + early O rescale  306 479 612 659 519 629  (H200)
 *     same kernel on an H100             295 477 606 559 516 599
 *   cuDNN in the same H100 run           164 401 527 578 517 589
 *   final defaults (static deal), H100   284 463 594 611 506 629
 *   cuDNN in the same run                242 398 526 596 515 584
 *   SDPA flash (FA2) in the same run     140 208 271 314 283 345
 *   EMILE_SCHED=1 (atomic counter, kv-grouped order from 32 query tiles):
 *   263 453 569 592 495 590 in that run; over three H100 runs it won once
 *   at 1x8192 (634 vs 536) and lost the others by 1-6%: the atomic and the
 *   publish step sit before each tile's Q load, and the static snake deal is
 *   already within 3% of a perfect balance (simulated).
 * Losers, kept as options:
 *   EMILE_PINGPONG=0: 10-25% slower (281 422 499 521 453 558, H200);
 *   EMILE_RESCALE_EARLY=0: 2-8% slower; EMILE_STAGES=3: no gain (the ring
 *   is rarely empty; it forces QBUF=1); EMILE_DIAG_HALF=1 (an N=64 S GEMM
 *   and half the P V k-steps for warpgroup 0 on the diagonal): 356 vs 559
 *   at 1x8192 (H100), because the warpgroup-uniform branch around wgmma
 *   issue makes ptxas fence/serialise the main loop (C7519 notes).
 * Register note: ptxas allocates the whole kernel within the entry cap (168
 * for 384 threads); the consumers' S (64) + O (64) + P (32) fit with nothing
 * to spare, so any extra live value in the loop (a wait-then-exit test at
 * the top of the tile loop did it) spills and serialises the wgmmas.
 * Expected gain over rung 6: 1.6-2x (wgmma at full rate, no load
 * instructions in the math warps, softmax hidden under the GEMMs).
 * Profile should show: HGMMA in the SASS, tensor pipe utilisation above 60%,
 * one block per SM with 384 threads, stalls mostly on the wgmma waits.
 * Requires sm_90a (wgmma, setmaxnreg), head_dim 128, bf16 or fp16, strides
 * that are multiples of 8 elements with a contiguous last dimension.
 */
#include <cuda_runtime.h>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <math.h>
#include "emile.h"

#ifndef EMILE_STAGES
#define EMILE_STAGES 2
#endif
#ifndef EMILE_PINGPONG
#define EMILE_PINGPONG 1
#endif
#ifndef EMILE_QBUF
#define EMILE_QBUF 2       /* Q buffers: 2 lets the next tile's Q load under this tile's tail */
#endif
#ifndef EMILE_RESCALE_EARLY
#define EMILE_RESCALE_EARLY 1
#endif
#ifndef EMILE_DIAG_HALF
#define EMILE_DIAG_HALF 0  /* 1: causal diagonal, warpgroup 0 multiplies only the 64 keys it sees (a loser: see above) */
#endif
#ifndef EMILE_SCHED
#define EMILE_SCHED 0      /* 0: static snake deal; 1: dynamic (atomic tile counter); 2: auto */
#endif
#ifndef EMILE_TILE_ORDER
#define EMILE_TILE_ORDER 2 /* 0: longest first overall; 1: by (batch, kv head), longest first inside; 2: auto */
#endif
#ifndef EMILE_CONSUMER_REGS
#define EMILE_CONSUMER_REGS 240
#endif
#ifndef EMILE_PRODUCER_REGS
#define EMILE_PRODUCER_REGS 24
#endif

#define R7_BQ 128          /* query rows per tile (2 consumer warpgroups x 64) */
#define R7_BK 128          /* keys per K/V block */
#define R7_D 128           /* head dim */
#define R7_TILE_BYTES (R7_BK * R7_D * 2)    /* one K or V block, 32 KB */
#define R7_CHUNK_BYTES (R7_BK * 64 * 2)     /* 64 columns (128 B) of a block */

/* nvcc -arch=sm_90a also runs a plain compute_90 pass, which rejects wgmma
 * and setmaxnreg: the Hopper-only code exists only in the sm_90a pass. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || !defined(__CUDA_ARCH__)
#define R7_SM90A 1
#else
#define R7_SM90A 0
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

/* ---- device helpers --------------------------------------------------------- */
__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(bar) : "memory");
}
/* Wait for the phase of the given parity to complete.  A watchdog traps
 * after ~2^22 failed polls (tens of ms or more): a protocol bug becomes a
 * launch error instead of a hang. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity)
{
    uint32_t done;
    for (uint32_t n = 0;; n++) {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
        if (done) return;
        if (n > (1u << 22)) asm volatile("trap;");
    }
}
__device__ __forceinline__ void tma_load4(uint32_t dst, const CUtensorMap *map, int c0, int c1, int c2, int c3,
                                          uint32_t bar)
{
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
                 :: "r"(dst), "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar) : "memory");
}
__device__ __forceinline__ void named_bar_sync(int id, int n)
{
    asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int n)
{
    asm volatile("bar.arrive %0, %1;\n" :: "r"(id), "r"(n) : "memory");
}
#if R7_SM90A
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory");
}
#endif
/* Make the compiler treat registers as (re)defined here: async wgmma reads
 * and writes them behind its back, so uses must not move across the waits. */
template <int N> __device__ __forceinline__ void fence_f(float *r)
{
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i]) :: "memory");
}
template <int N> __device__ __forceinline__ void fence_u(uint32_t *r)
{
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+r"(r[i]) :: "memory");
}
/* Shared-memory matrix descriptor, 128-byte swizzle. */
__device__ __forceinline__ uint64_t make_desc(uint32_t addr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
           ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
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

#if R7_SM90A
/* ---- wgmma wrappers (m64n128k16, fp32 accumulate) ------------------------
 * ss: A and B from shared memory, both K-major (S = Q K^T);
 * rs: A from registers, B from shared memory N-major (imm-trans-b = 1: O += P V). */
__device__ __forceinline__ void wgmma_ss_bf16(float *d, uint64_t da, uint64_t db, int scale_d)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_ss_f16(float *d, uint64_t da, uint64_t db, int scale_d)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_rs_bf16(float *d, const uint32_t *a, uint64_t db, int scale_d)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_rs_f16(float *d, const uint32_t *a, uint64_t db, int scale_d)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}

/* m64n64k16 (S of the diagonal block for the first consumer warpgroup,
 * whose rows see only the block's first 64 keys) */
__device__ __forceinline__ void wgmma_ss64_bf16(float *d, uint64_t da, uint64_t db, int scale_d)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_ss64_f16(float *d, uint64_t da, uint64_t db, int scale_d)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
}
#endif /* R7_SM90A */

template <bool BF16> __device__ __forceinline__ void mma_qk64(float *s, uint64_t da, uint64_t db, int acc)
{
#if R7_SM90A
    if (BF16) wgmma_ss64_bf16(s, da, db, acc); else wgmma_ss64_f16(s, da, db, acc);
#endif
}
template <bool BF16> __device__ __forceinline__ void mma_qk(float *s, uint64_t da, uint64_t db, int acc)
{
#if R7_SM90A
    if (BF16) wgmma_ss_bf16(s, da, db, acc); else wgmma_ss_f16(s, da, db, acc);
#endif
}
template <bool BF16> __device__ __forceinline__ void mma_pv(float *o, const uint32_t *a, uint64_t db)
{
#if R7_SM90A
    if (BF16) wgmma_rs_bf16(o, a, db, 1); else wgmma_rs_f16(o, a, db, 1);
#endif
}

/* ---- the kernel ------------------------------------------------------------- */
struct r7params {
    uint16_t *o;
    int64_t so[3];      /* o strides: batch, seq, head (elements) */
    int seq, hq, hkv, batch, causal, nq, ntiles, order;
    float sl2;          /* scale * log2(e) */
    unsigned int *counter;   /* EMILE_SCHED=1: next tile to hand out (zeroed before the launch) */
};

/* EMILE_SCHED=1: tiles past the first are handed out by this counter, which
 * the host zeroes on the stream before each launch (one launch at a time per
 * process: concurrent launches on two streams would share it). */
__device__ unsigned int r7_tile_counter;

/* Tile id -> (query tile, head, batch); heaviest first under a causal mask,
 * heads fastest so consecutive tiles share a kv head. */
__device__ __forceinline__ void r7_decode(const r7params &p, int t, int &qt, int &h, int &b, int &nkv)
{
    if (p.order == 0) {
        const int per = p.hq * p.batch;
        qt = p.causal ? p.nq - 1 - t / per : t / per;
        h = (t % per) % p.hq;
        b = (t % per) / p.hq;
    } else {
        /* group-major: all tiles of one (batch, kv head) before the next, so
         * the blocks in flight share a few kv heads' K/V in L2 */
        const int G = p.hq / p.hkv, per = G * p.nq;
        const int grp = t / per, r = t % per;
        b = grp / p.hkv;
        qt = p.causal ? p.nq - 1 - r / G : r / G;
        h = (grp % p.hkv) * G + r % G;
    }
    const int nkv_all = (p.seq + R7_BK - 1) / R7_BK;
    nkv = p.causal ? min(nkv_all, (min((qt + 1) * R7_BQ, p.seq) - 1) / R7_BK + 1) : nkv_all;
}
/* The i-th tile of this block in the snake deal; -1 past the end. */
__device__ __forceinline__ int r7_tile(const r7params &p, int i)
{
    const int G = gridDim.x, c = blockIdx.x;
    const int t = i * G + ((i & 1) ? G - 1 - c : c);
    return t < p.ntiles ? t : -1;
}

template <bool BF16, int ST, int QB, bool DYN>
__global__ void __launch_bounds__(384, 1)
flash_r7(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
         const __grid_constant__ CUtensorMap tv, const r7params p)
{
#if R7_SM90A
    extern __shared__ __align__(1024) uint8_t smem_raw[];
    const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t sQ = base;                              /* QB x 2 chunks x [128 rows][128 B] */
    const uint32_t sK = sQ + QB * R7_BQ * R7_D * 2;        /* ST blocks x 2 chunks */
    const uint32_t sV = sK + ST * R7_TILE_BYTES;
    const uint32_t bars = sV + ST * R7_TILE_BYTES;
    auto bQF = [&](int q) { return bars + 8 * q; };
    auto bQE = [&](int q) { return bars + 8 * (QB + q); };
    auto bKF = [&](int s) { return bars + 16 * QB + 8 * s; };
    auto bKE = [&](int s) { return bars + 16 * QB + 8 * (ST + s); };
    auto bVF = [&](int s) { return bars + 16 * QB + 8 * (2 * ST + s); };
    auto bVE = [&](int s) { return bars + 16 * QB + 8 * (3 * ST + s); };
    /* tile id of each Q buffer, published by the producer with its Q load */
    const uint32_t tslot = bars + 16 * QB + 32 * ST;

    const int tid = threadIdx.x, wg = tid >> 7, warp = tid >> 5, lane = tid & 31;
    if (tid == 0) {
        for (int q = 0; q < QB; q++) {
            mbar_init(bQF(q), 1);
            mbar_init(bQE(q), 8);     /* lane 0 of each of the 8 consumer warps */
        }
        for (int s = 0; s < ST; s++) {
            mbar_init(bKF(s), 1);
            mbar_init(bKE(s), 8);
            mbar_init(bVF(s), 1);
            mbar_init(bVE(s), 8);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        /* ---------------- producer ---------------- */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" :: "n"(EMILE_PRODUCER_REGS));
        if (warp == 0 && lane == 0) {
            asm volatile("prefetch.tensormap [%0];\n" :: "l"((uint64_t)&tq) : "memory");
            asm volatile("prefetch.tensormap [%0];\n" :: "l"((uint64_t)&tk) : "memory");
            asm volatile("prefetch.tensormap [%0];\n" :: "l"((uint64_t)&tv) : "memory");
            int kv_it = 0;
            for (int i = 0;; i++) {
                int t;
                if (DYN) {
                    t = i == 0 ? (int)blockIdx.x : (int)gridDim.x + (int)atomicAdd(p.counter, 1u);
                    if (t >= p.ntiles) t = -1;
                } else {
                    if (i * (int)gridDim.x >= p.ntiles) break;
                    t = r7_tile(p, i);
                    if (t < 0) continue;
                }
                const int qb = i % QB;
                mbar_wait(bQE(qb), ((uint32_t)(i / QB) & 1u) ^ 1u);
                if (DYN) {
                    asm volatile("st.shared.u32 [%0], %1;\n" :: "r"(tslot + 4 * qb), "r"(t) : "memory");
                    if (t < 0) {            /* no more tiles: tell the consumers */
                        mbar_arrive(bQF(qb));
                        break;
                    }
                }
                int qt, h, b, nkv;
                r7_decode(p, t, qt, h, b, nkv);
                const int hk = h / (p.hq / p.hkv);
                const uint32_t qdst = sQ + qb * (R7_BQ * R7_D * 2);
                mbar_expect_tx(bQF(qb), R7_BQ * R7_D * 2);
                tma_load4(qdst, &tq, 0, qt * R7_BQ, h, b, bQF(qb));
                tma_load4(qdst + R7_BQ * 128, &tq, 64, qt * R7_BQ, h, b, bQF(qb));
                for (int j = nkv - 1; j >= 0; j--, kv_it++) {
                    const int st = kv_it % ST;
                    const uint32_t ph = (uint32_t)(kv_it / ST) & 1u;
                    mbar_wait(bKE(st), ph ^ 1u);
                    mbar_expect_tx(bKF(st), R7_TILE_BYTES);
                    tma_load4(sK + st * R7_TILE_BYTES, &tk, 0, j * R7_BK, hk, b, bKF(st));
                    tma_load4(sK + st * R7_TILE_BYTES + R7_CHUNK_BYTES, &tk, 64, j * R7_BK, hk, b, bKF(st));
                    mbar_wait(bVE(st), ph ^ 1u);
                    mbar_expect_tx(bVF(st), R7_TILE_BYTES);
                    tma_load4(sV + st * R7_TILE_BYTES, &tv, 0, j * R7_BK, hk, b, bVF(st));
                    tma_load4(sV + st * R7_TILE_BYTES + R7_CHUNK_BYTES, &tv, 64, j * R7_BK, hk, b, bVF(st));
                }
            }
        }
    } else {
    /* ---------------- consumers ---------------- */
    /* (the two roles must be the two branches of one if/else: only then does
     * ptxas allocate the consumer branch with the setmaxnreg budget) */
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(EMILE_CONSUMER_REGS));
    const int cw = wg - 1;                 /* consumer warpgroup: rows cw*64 .. cw*64+63 */
    const int w4 = warp & 3, g = lane >> 2, t4 = lane & 3;
    const float sl2 = p.sl2;
    /* pingpong: named barrier 1 + cw gates warpgroup cw's GEMM issue */
    if (EMILE_PINGPONG && cw == 1) named_bar_arrive(1, 256);
    auto sched_sync = [&]() { if (EMILE_PINGPONG) named_bar_sync(1 + cw, 256); };
    auto sched_arrive = [&]() { if (EMILE_PINGPONG) named_bar_arrive(2 - cw, 256); };

    float s[64], o[64];
    uint32_t pf[32];
    int kv_it = 0;
    /* The i-th tile of this block, once its Q has landed; -1 when done.  The
     * wait sits at the bottom of the tile loop (a wait-then-exit test at its
     * top made ptxas spill and serialise the wgmmas). */
    auto fetch = [&](int i) {
        int t;
        const int qb = i % QB;
        if (DYN) {
            mbar_wait(bQF(qb), (uint32_t)(i / QB) & 1u);
            asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(t) : "r"(tslot + 4 * qb) : "memory");
        } else {
            t = i * (int)gridDim.x < p.ntiles ? r7_tile(p, i) : -1;
            if (t >= 0) mbar_wait(bQF(qb), (uint32_t)(i / QB) & 1u);
        }
        return t;
    };
    int i = 0;
    for (int t = fetch(0); t >= 0; t = fetch(++i)) {
        const int qb = i % QB;
        int qt, h, b, nkv;
        r7_decode(p, t, qt, h, b, nkv);
        const int row0 = qt * R7_BQ + cw * 64 + w4 * 16 + g;   /* this thread's rows: row0, row0 + 8 */
#pragma unroll
        for (int x = 0; x < 64; x++) o[x] = 0.f;

        const uint32_t qa = sQ + qb * (R7_BQ * R7_D * 2) + cw * 64 * 128;
        /* K-major descriptors: k-step kk is 16 columns = 32 bytes inside a 128 B row,
         * kk / 4 selects the 64-column chunk */
        auto dq = [&](int kk) { return make_desc(qa + (kk >> 2) * (R7_BQ * 128) + (kk & 3) * 32, 16, 1024); };
        auto dk = [&](int st, int kk) {
            return make_desc(sK + st * R7_TILE_BYTES + (kk >> 2) * R7_CHUNK_BYTES + (kk & 3) * 32, 16, 1024);
        };
        /* N-major V: k-step kk is 16 rows (2 x 8-row groups of 1 KB); LBO jumps
         * between the two 64-column chunks */
        auto dv = [&](int st, int kk) {
            return make_desc(sV + st * R7_TILE_BYTES + kk * 2048, R7_CHUNK_BYTES, 1024);
        };

        /* first block (the diagonal / ragged end): S, mask, softmax */
        int j = nkv - 1;
        int st = kv_it % ST;
        uint32_t ph = (uint32_t)(kv_it / ST) & 1u;
        /* under a causal mask this block is the diagonal: rows of warpgroup 0
         * see only its first 64 keys, so half of S and of this block's P V
         * is skipped (exact: those P are zero) */
        const bool half = EMILE_DIAG_HALF && p.causal && cw == 0;
        mbar_wait(bKF(st), ph);
        sched_sync();
        wgmma_fence();
        if (half) {
#pragma unroll
            for (int kk = 0; kk < R7_D / 16; kk++) mma_qk64<BF16>(s, dq(kk), dk(st, kk), kk > 0);
        } else {
#pragma unroll
            for (int kk = 0; kk < R7_D / 16; kk++) mma_qk<BF16>(s, dq(kk), dk(st, kk), kk > 0);
        }
        wgmma_commit();
        sched_arrive();
        wgmma_wait<0>();
        fence_f<64>(s);
        if (lane == 0) mbar_arrive(bKE(st));

        float m0, m1, l0 = 0.f, l1 = 0.f;
        {
            const int kv0 = j * R7_BK;
            if (p.causal || kv0 + R7_BK > p.seq) {
#pragma unroll
                for (int x = 0; x < 16; x++) {
                    const int c = kv0 + 8 * x + 2 * t4;
                    if (c >= p.seq || (p.causal && c > row0)) s[4 * x] = -INFINITY;
                    if (c + 1 >= p.seq || (p.causal && c + 1 > row0)) s[4 * x + 1] = -INFINITY;
                    if (c >= p.seq || (p.causal && c > row0 + 8)) s[4 * x + 2] = -INFINITY;
                    if (c + 1 >= p.seq || (p.causal && c + 1 > row0 + 8)) s[4 * x + 3] = -INFINITY;
                }
            }
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int x = 0; x < 16; x++) {
                mx0 = fmaxf(mx0, fmaxf(s[4 * x], s[4 * x + 1]));
                mx1 = fmaxf(mx1, fmaxf(s[4 * x + 2], s[4 * x + 3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            m0 = mx0;
            m1 = mx1;
            const float ms0 = m0 == -INFINITY ? 0.f : m0 * sl2;
            const float ms1 = m1 == -INFINITY ? 0.f : m1 * sl2;
#pragma unroll
            for (int x = 0; x < 16; x++) {
                s[4 * x] = ex2(fmaf(s[4 * x], sl2, -ms0));
                s[4 * x + 1] = ex2(fmaf(s[4 * x + 1], sl2, -ms0));
                s[4 * x + 2] = ex2(fmaf(s[4 * x + 2], sl2, -ms1));
                s[4 * x + 3] = ex2(fmaf(s[4 * x + 3], sl2, -ms1));
                l0 += s[4 * x] + s[4 * x + 1];
                l1 += s[4 * x + 2] + s[4 * x + 3];
            }
#pragma unroll
            for (int x = 0; x < 16; x++) {
                pf[2 * x] = pack2<BF16>(s[4 * x], s[4 * x + 1]);
                pf[2 * x + 1] = pack2<BF16>(s[4 * x + 2], s[4 * x + 3]);
            }
        }
        int pst = st;
        uint32_t pph = ph;
        kv_it++;
        float a0 = 1.f, a1 = 1.f;   /* O's pending rescale (EMILE_RESCALE_EARLY) */
        int pv_steps = half ? R7_BK / 32 : R7_BK / 16;   /* k-steps of the pending P V */

        /* steady state: S_j = Q K_j^T and O += P_{j+1} V_{j+1} in flight together */
        for (j = nkv - 2; j >= 0; j--, kv_it++) {
            st = kv_it % ST;
            ph = (uint32_t)(kv_it / ST) & 1u;
            mbar_wait(bKF(st), ph);
            mbar_wait(bVF(pst), pph);
            sched_sync();
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < R7_D / 16; kk++) mma_qk<BF16>(s, dq(kk), dk(st, kk), kk > 0);
            wgmma_commit();
            if (EMILE_RESCALE_EARLY) {
                /* rescale O by the previous block's factor while S_j runs */
#pragma unroll
                for (int x = 0; x < 16; x++) {
                    o[4 * x] *= a0;
                    o[4 * x + 1] *= a0;
                    o[4 * x + 2] *= a1;
                    o[4 * x + 3] *= a1;
                }
                wgmma_fence();
            }
#pragma unroll
            for (int kk = 0; kk < R7_BK / 16; kk++)
                if (kk < pv_steps) mma_pv<BF16>(o, &pf[4 * kk], dv(pst, kk));
            wgmma_commit();
            sched_arrive();
            pv_steps = R7_BK / 16;
            wgmma_wait<1>();
            fence_f<64>(s);
            if (lane == 0) mbar_arrive(bKE(st));

            float mx0 = m0, mx1 = m1;
#pragma unroll
            for (int x = 0; x < 16; x++) {
                mx0 = fmaxf(mx0, fmaxf(s[4 * x], s[4 * x + 1]));
                mx1 = fmaxf(mx1, fmaxf(s[4 * x + 2], s[4 * x + 3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float ms0 = mx0 == -INFINITY ? 0.f : mx0 * sl2;
            const float ms1 = mx1 == -INFINITY ? 0.f : mx1 * sl2;
            a0 = ex2(m0 * sl2 - ms0);
            a1 = ex2(m1 * sl2 - ms1);
            m0 = mx0;
            m1 = mx1;
            float r0 = 0.f, r1 = 0.f;
#pragma unroll
            for (int x = 0; x < 16; x++) {
                s[4 * x] = ex2(fmaf(s[4 * x], sl2, -ms0));
                s[4 * x + 1] = ex2(fmaf(s[4 * x + 1], sl2, -ms0));
                s[4 * x + 2] = ex2(fmaf(s[4 * x + 2], sl2, -ms1));
                s[4 * x + 3] = ex2(fmaf(s[4 * x + 3], sl2, -ms1));
                r0 += s[4 * x] + s[4 * x + 1];
                r1 += s[4 * x + 2] + s[4 * x + 3];
            }
            wgmma_wait<0>();
            fence_f<64>(o);
            fence_u<32>(pf);
            if (lane == 0) mbar_arrive(bVE(pst));
            l0 = l0 * a0 + r0;
            l1 = l1 * a1 + r1;
#pragma unroll
            for (int x = 0; x < 16; x++) {
                if (!EMILE_RESCALE_EARLY) {
                    o[4 * x] *= a0;
                    o[4 * x + 1] *= a0;
                    o[4 * x + 2] *= a1;
                    o[4 * x + 3] *= a1;
                }
                pf[2 * x] = pack2<BF16>(s[4 * x], s[4 * x + 1]);
                pf[2 * x + 1] = pack2<BF16>(s[4 * x + 2], s[4 * x + 3]);
            }
            pst = st;
            pph = ph;
        }
        /* every S of this tile is done: Q may be overwritten */
        if (lane == 0) mbar_arrive(bQE(qb));

        /* last P V */
        if (EMILE_RESCALE_EARLY) {
#pragma unroll
            for (int x = 0; x < 16; x++) {
                o[4 * x] *= a0;
                o[4 * x + 1] *= a0;
                o[4 * x + 2] *= a1;
                o[4 * x + 3] *= a1;
            }
        }
        mbar_wait(bVF(pst), pph);
        sched_sync();
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < R7_BK / 16; kk++)
            if (kk < pv_steps) mma_pv<BF16>(o, &pf[4 * kk], dv(pst, kk));
        wgmma_commit();
        sched_arrive();
        wgmma_wait<0>();
        fence_f<64>(o);
        fence_u<32>(pf);
        if (lane == 0) mbar_arrive(bVE(pst));

        /* epilogue: normalise and store (rows past the end are dropped).  The
         * tile is decoded again from t (opaque to the compiler) so that its
         * coordinates need no registers across the main loop. */
        asm volatile("" : "+r"(t));
        r7_decode(p, t, qt, h, b, nkv);
        const int row0e = qt * R7_BQ + cw * 64 + w4 * 16 + g;
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
        uint16_t *og = p.o + b * p.so[0] + (int64_t)h * p.so[2];
        const bool ok0 = row0e < p.seq, ok1 = row0e + 8 < p.seq;
        uint16_t *o0 = og + (int64_t)row0e * p.so[1] + 2 * t4;
        uint16_t *o1 = o0 + 8 * p.so[1];
#pragma unroll
        for (int x = 0; x < 16; x++) {
            if (ok0) *(uint32_t *)(o0 + 8 * x) = pack2<BF16>(o[4 * x] * i0, o[4 * x + 1] * i0);
            if (ok1) *(uint32_t *)(o1 + 8 * x) = pack2<BF16>(o[4 * x + 2] * i1, o[4 * x + 3] * i1);
        }
    }
    }   /* consumers */
#endif /* R7_SM90A */
}

/* ---- host ------------------------------------------------------------------- */
static PFN_cuTensorMapEncodeTiled_v12000 r7_encoder(void)
{
    static PFN_cuTensorMapEncodeTiled_v12000 fn = 0;
    if (!fn) {
        void *f = 0;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) ==
                cudaSuccess && q == cudaDriverEntryPointSuccess)
            fn = (PFN_cuTensorMapEncodeTiled_v12000)f;
    }
    return fn;
}

/* 4-D map (D, S, heads, batch) over the caller's strides; boxes of 64
 * columns (128 B, the swizzle span) x rows. */
static int r7_map(CUtensorMap *m, const void *ptr, const attn_problem *p, int heads, const int64_t *st, int rows)
{
    PFN_cuTensorMapEncodeTiled_v12000 enc = r7_encoder();
    if (!enc) return 1;
    cuuint64_t dims[4] = {(cuuint64_t)p->d, (cuuint64_t)p->seq, (cuuint64_t)heads, (cuuint64_t)p->batch};
    cuuint64_t strides[3] = {(cuuint64_t)st[1] * 2, (cuuint64_t)st[2] * 2, (cuuint64_t)st[0] * 2};
    cuuint32_t box[4] = {64, (cuuint32_t)rows, 1, 1};
    cuuint32_t es[4] = {1, 1, 1, 1};
    CUresult r = enc(m, CU_TENSOR_MAP_DATA_TYPE_UINT16, 4, (void *)ptr, dims, strides, box, es,
                     CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? 0 : 2;
}

template <bool BF16, int ST, int QB, bool DYN>
static int r7_launch(const attn_problem *pr, cudaStream_t stream)
{
    const size_t smem = 1024 + (size_t)QB * R7_BQ * R7_D * 2 + 2 * (size_t)ST * R7_TILE_BYTES + 16 * QB + 32 * ST + 16;
    if (smem > 232448) return EMILE_ERR_LIMIT;   /* e.g. STAGES=3 with QBUF=2 does not fit */
    static int attr_done = 0, sms = 0;
    static unsigned int *counter = 0;
    if (!attr_done) {
        if (cudaGetSymbolAddress((void **)&counter, r7_tile_counter) != cudaSuccess) return 20;
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess) return 20;
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return 20;
        if (cudaFuncSetAttribute(flash_r7<BF16, ST, QB, DYN>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
            cudaSuccess) return 20;
        attr_done = 1;
    }
    CUtensorMap tq, tk, tv;
    if (r7_map(&tq, pr->q, pr, pr->hq, pr->sq, R7_BQ) || r7_map(&tk, pr->k, pr, pr->hkv, pr->sk, R7_BK) ||
        r7_map(&tv, pr->v, pr, pr->hkv, pr->sv, R7_BK))
        return 23;
    r7params p;
    p.o = (uint16_t *)pr->o;
    for (int i = 0; i < 3; i++) p.so[i] = pr->so[i];
    p.seq = pr->seq; p.hq = pr->hq; p.hkv = pr->hkv; p.batch = pr->batch; p.causal = pr->causal;
    p.nq = (pr->seq + R7_BQ - 1) / R7_BQ;
    const long long nt = (long long)p.nq * pr->hq * pr->batch;
    if (nt > 0x7fffffffLL) return 21;
    p.ntiles = (int)nt;
    p.sl2 = pr->scale * 1.4426950408889634f;
    /* auto order: group-major keeps K/V in L2 once each (batch, kv head) has
     * enough tiles for the dynamic scheduler to balance (>= 32 query tiles) */
    p.order = EMILE_TILE_ORDER == 2 ? (p.nq >= 32 && DYN) : EMILE_TILE_ORDER;
    p.counter = counter;
    if (DYN && cudaMemsetAsync(counter, 0, sizeof(unsigned int), stream) != cudaSuccess) return 25;
    const int grid = p.ntiles < sms ? p.ntiles : sms;
    flash_r7<BF16, ST, QB, DYN><<<grid, 384, smem, stream>>>(tq, tk, tv, p);
    return cudaGetLastError() == cudaSuccess ? 0 : 22;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_problem p;
    int rc = attn_parse(args, &p);
    if (rc) return rc;
    if (!attn_vec_ok(&p)) return 7;
    if (p.d != R7_D) return 6;
    cudaStream_t st = (cudaStream_t)args->stream;
    /* EMILE_SCHED=2 (auto) takes the dynamic counter with the kv-grouped
     * order from 32 query tiles on; measured, it did not beat the static
     * deal reliably (see the top comment), so the default is static. */
    const int nq = (p.seq + R7_BQ - 1) / R7_BQ;
    const bool dyn = EMILE_SCHED == 2 ? nq >= 32 : EMILE_SCHED == 1;
    if (p.dtype == EMILE_DTYPE_BF16)
        return dyn ? r7_launch<true, EMILE_STAGES, EMILE_QBUF, true>(&p, st)
                   : r7_launch<true, EMILE_STAGES, EMILE_QBUF, false>(&p, st);
    if (p.dtype == EMILE_DTYPE_F16)
        return dyn ? r7_launch<false, EMILE_STAGES, EMILE_QBUF, true>(&p, st)
                   : r7_launch<false, EMILE_STAGES, EMILE_QBUF, false>(&p, st);
    return 5;
}
