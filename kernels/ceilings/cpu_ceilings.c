/*
 * cpu_ceilings.c -- measure this machine's roofline ceilings and print them
 * as ONE JSON line on stdout:
 *
 *   {"peak_gflops":{"f32":F,"f64":F},"bandwidth_gbs":F,"threads":N,"vector_bytes":V}
 *
 * Build and run (what the harness does):
 *   cc -O3 -march=native -fopenmp kernels/ceilings/cpu_ceilings.c -o prog -lm && ./prog
 *
 * Peak: every OpenMP thread runs a chain of fused multiply-adds in registers
 * on NACC independent accumulators, each a GCC vector of the widest native
 * width (64 bytes with AVX-512, 32 with AVX, 16 otherwise: SSE, NEON).  NACC
 * is larger than FMA latency x FMA ports (4 x 2 on recent x86), so the FMA
 * units, not the dependency chains, are the limit.  acc = acc * m + c with
 * m slightly below 1 keeps the values bounded (no overflow, no denormals);
 * m and c come from the command line's argc, so the compiler cannot fold
 * them, it may not reassociate (no -ffast-math) and the sum of the
 * accumulators is stored to a volatile sink, so nothing is dead.  2 FLOPs
 * per FMA lane.  The fused form relies on GCC's default -ffp-contract=fast
 * (GNU C mode; clang gets a pragma); a target without FMA runs mul + add,
 * also 2 FLOPs.
 *
 * Bandwidth: a multithreaded copy of a 128 MiB buffer into another (256 MiB
 * touched, several times the last-level cache of common parts), each thread
 * memcpy'ing its own slice, counting bytes read + bytes written, best of a
 * few repetitions after a warm-up.  Pages are first touched by the threads
 * that copy them.  glibc's memcpy uses non-temporal stores at this size, so
 * the DRAM traffic really is read + written (no write-allocate read).
 *
 * Each measurement is calibrated to ~0.1 s and repeated 5 times; the whole
 * program takes ~1.3 s on a 2-core machine (measured: 2-core Xeon @2.5GHz,
 * AVX-512: f32 ~225-250, f64 ~110-129 GFLOP/s, copy ~18.5 GB/s).
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif

/* Independent accumulators: fill the register file but do not spill it
 * (AVX-512 and NEON have 32 vector registers, AVX2/SSE 16). */
#if defined(__AVX512F__) || defined(__aarch64__)
#define NACC 24
#else
#define NACC 12
#endif

#define COPY_BYTES ((size_t)128 << 20)
#define TARGET_S 0.1
#define REPS 5

/* GCC contracts a * b + c into an FMA by default in GNU C; clang only when
 * told to. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#endif

typedef float vf32 __attribute__((vector_size(VBYTES)));
typedef double vf64 __attribute__((vector_size(VBYTES)));

static volatile double sink;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* One thread's FMA chain; returns a value that depends on every FMA. */
#define FMA_CHAIN(NAME, VT, T)                                          \
    static __attribute__((noinline)) T NAME(long iters, T m, T c)       \
    {                                                                   \
        VT a[NACC];                                                     \
        for (int k = 0; k < NACC; k++)                                  \
            a[k] = (VT){0} + (T)k * (T)1e-3;                            \
        const VT vm = (VT){0} + m, vc = (VT){0} + c;                    \
        for (long i = 0; i < iters; i++) {                              \
            _Pragma("GCC unroll 64")                                    \
            for (int k = 0; k < NACC; k++)                              \
                a[k] = a[k] * vm + vc;                                  \
        }                                                               \
        T s = 0;                                                        \
        for (int k = 0; k < NACC; k++)                                  \
            for (int l = 0; l < (int)(VBYTES / sizeof(T)); l++)         \
                s += a[k][l];                                           \
        return s;                                                       \
    }

FMA_CHAIN(chain_f32, vf32, float)
FMA_CHAIN(chain_f64, vf64, double)

/* Seconds for every thread to run iters of the chain (wall time between
 * two barriers). */
static double time_chain(int is_f64, long iters, double m, double c)
{
    double t0 = 0.0, t1 = 0.0, total = 0.0;
    #pragma omp parallel reduction(+ : total)
    {
        #pragma omp barrier
        #pragma omp master
        t0 = now();
        total += is_f64 ? chain_f64(iters, m, c) : (double)chain_f32(iters, (float)m, (float)c);
        #pragma omp barrier
        #pragma omp master
        t1 = now();
    }
    sink = sink + total;
    return t1 - t0;
}

/* GFLOP/s: calibrate iters to ~TARGET_S, then best of REPS. */
static double peak_gflops(int is_f64, double m, double c, int threads)
{
    long iters = 1 << 14;
    double t = time_chain(is_f64, iters, m, c);
    while (t < TARGET_S / 8) {
        iters *= 4;
        t = time_chain(is_f64, iters, m, c);
    }
    iters = (long)((double)iters * TARGET_S / t) + 1;
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        t = time_chain(is_f64, iters, m, c);
        best = t < best ? t : best;
    }
    const double lanes = (double)VBYTES / (is_f64 ? 8.0 : 4.0);
    const double flops = 2.0 * lanes * NACC * (double)iters * threads;
    return flops / best * 1e-9;
}

static double bandwidth_gbs(void)
{
    char *src = malloc(COPY_BYTES), *dst = malloc(COPY_BYTES);
    if (!src || !dst) {
        free(src);
        free(dst);
        return 0.0;
    }
    double best = 1e30;
    #pragma omp parallel
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        const size_t chunk = (COPY_BYTES / (size_t)nt + 4095) & ~(size_t)4095;
        const size_t lo = chunk * (size_t)id < COPY_BYTES ? chunk * (size_t)id : COPY_BYTES;
        const size_t hi = lo + chunk < COPY_BYTES ? lo + chunk : COPY_BYTES;
        /* First touch by the copying thread; non-constant bytes. */
        for (size_t i = lo; i < hi; i++)
            src[i] = (char)(i * 131u + 7u);
        memset(dst + lo, 0, hi - lo);
        double t0 = 0.0;
        for (int r = 0; r < REPS + 2; r++) {
            #pragma omp barrier
            #pragma omp master
            t0 = now();
            memcpy(dst + lo, src + lo, hi - lo);
            #pragma omp barrier
            #pragma omp master
            {
                const double t = now() - t0;
                if (r > 0 && t < best)      /* r == 0 is the warm-up */
                    best = t;
            }
        }
    }
    sink = sink + dst[COPY_BYTES / 3] + dst[COPY_BYTES - 1];
    free(src);
    free(dst);
    return 2.0 * (double)COPY_BYTES / best * 1e-9;
}

int main(int argc, char **argv)
{
    (void)argv;
    /* Runtime constants the compiler cannot see: m = 1 - 2^-20 (argc = 1),
     * c = 2^-20, so each accumulator drifts towards 1 and stays bounded. */
    const double m = 1.0 - (double)argc / 1048576.0;
    const double c = (double)argc / 1048576.0;
    const int threads = omp_get_max_threads();
    const double f32 = peak_gflops(0, m, c, threads);
    const double f64 = peak_gflops(1, m, c, threads);
    const double bw = bandwidth_gbs();
    printf("{\"peak_gflops\":{\"f32\":%.1f,\"f64\":%.1f},\"bandwidth_gbs\":%.2f,"
           "\"threads\":%d,\"vector_bytes\":%d}\n", f32, f64, bw, threads, VBYTES);
    return 0;
}
