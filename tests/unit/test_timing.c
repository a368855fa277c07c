/*
 * test_timing.c -- the timing policy's arithmetic (src/worker/timing.c,
 * stats.c): quantiles, the forged-time bound and the median gap between
 * the worker's clock and the reported time, the CPU excess, the held-back
 * limit -- each checked on numbers worked out by hand, with a forger's and
 * an honest kernel's runs side by side.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "emile_test.h"
#include "worker/stats.h"
#include "worker/timing.h"

static void test_quantiles(void **state)
{
    (void)state;
    const double v[] = {5, 1, 4, 2, 3};
    assert_near(stats_quantile(v, 5, 0.5), 3, 0);
    assert_near(stats_quantile(v, 5, 0.0), 1, 0);
    assert_near(stats_quantile(v, 5, 1.0), 5, 0);
    assert_near(stats_quantile(v, 5, 0.9), 4.6, 1e-12);
    assert_near(stats_quantile(v, 0, 0.5), 0, 0);
    /* The input is left as it was. */
    assert_near(v[0], 5, 0);
}

/* An honest kernel: the outside clock sees the call plus ~80 us; a forger
 * reporting an eighth of 4 ms. */
static void test_forged_gap(void **state)
{
    (void)state;
    const double honest_in[] = {4.00e6, 4.02e6, 3.98e6, 4.01e6, 4.00e6};
    const double honest_out[] = {4.08e6, 4.10e6, 4.07e6, 9.00e6 /* a late wake-up */, 4.09e6};
    const double forged_in[] = {0.5e6, 0.5e6, 0.5e6, 0.5e6, 0.5e6};
    const double forged_out[] = {4.08e6, 4.10e6, 4.07e6, 4.09e6, 4.08e6};
    double bound = timing_forge_bound(70e3, 0);
    assert_near(bound, 3 * 70e3 + TIMING_FORGE_CONST_NS, 1e-6);
    double g = timing_median_gap(honest_in, honest_out, 5);
    assert_near(g, 90e3, 1e-6);
    assert_true(g <= bound);
    g = timing_median_gap(forged_in, forged_out, 5);
    assert_near(g, 3.58e6, 1e-6);
    assert_true(g > bound);
}

/* A thread cannot use more CPU during a call than the call took. */
static void test_cpu_excess(void **state)
{
    (void)state;
    const double reported[] = {1e6, 1e6, 1e6};
    const double honest_thread[] = {1.03e6, 1.02e6, 1.04e6};
    const double forger_thread[] = {8.0e6, 8.1e6, 7.9e6};
    assert_near(timing_median_excess(honest_thread, reported, 1, 3), 0.03e6, 1e-6);
    assert_near(timing_median_excess(forger_thread, reported, 1, 3), 7.0e6, 1e-6);
    /* All threads together, on 2 cores. */
    const double both[] = {2.05e6, 2.0e6, 2.1e6};
    assert_near(timing_median_excess(both, reported, 2, 3), 0.05e6, 1e-6);
}

/* Device memory (cuda), with the H100's figures (2026-12-06): honest gaps
 * of 270-414 us beside a null runner's 385-473 us pass; an event-timing
 * forger that reports 0.1 ms of a 0.95 ms outside run does not. */
static void test_forged_gap_device(void **state)
{
    (void)state;
    double bound = timing_forge_bound(421e3, 1);
    assert_near(bound, 1.5 * 421e3 + TIMING_FORGE_CONST_NS, 1e-6);
    assert_true(414e3 <= bound);                      /* reference.cu, 1x512 */
    assert_true(timing_forge_bound(385e3, 1) >= 270e3);  /* decode_attention rung2 */
    assert_true(950e3 - 100e3 > bound);               /* the forger */
    /* The CPU's looser bound would have let it through. */
    assert_true(950e3 - 100e3 <= timing_forge_bound(421e3, 0));
}

/* The first run after an upload (cuda): qkv_proj's best held-back set
 * took 0.58 ms of exposure against a 0.319 ms median; a 2x cache of a
 * 3 ms kernel is still caught. */
static void test_held_limit_device(void **state)
{
    (void)state;
    double lim = timing_held_limit(0.319e6, 1);
    assert_true(0.58e6 <= lim);
    assert_true(0.58e6 > timing_held_limit(0.319e6, 0));
    assert_true(6e6 > timing_held_limit(3e6, 1));
}

/* A masked held-back set: one run command against the timed runs' round
 * trips.  A content cache that times at 40 us (its timed round trips 100
 * us median, 110 p90) and computes a fresh set in 80 us more (a round trip
 * of 180 us) is over the limit of 100 x 1.1 + 10 + 50 = 170 us; a kernel
 * whose fresh run costs what its timed runs cost is inside it, and so is
 * one as slow as the timed runs' p90 plus 10%. */
static void test_held_limit_masked(void **state)
{
    (void)state;
    double lim = timing_held_limit_masked(100e3, 110e3);
    assert_true(fabs(lim - 170e3) < 1);
    assert_true(180e3 > lim);
    assert_true(110e3 * 1.1 <= lim);
    /* a p90 below the median (too few runs) adds nothing */
    assert_true(fabs(timing_held_limit_masked(100e3, 90e3) - 160e3) < 1);
    /* a kernel that slows its slowest runs to raise the p90 gains at most
     * a tenth of its median: 100 x 1.1 + 10 + 50, not + 1 ms */
    assert_true(fabs(timing_held_limit_masked(100e3, 1100e3) - 170e3) < 1);
    assert_true(fabs(timing_held_limit_masked(1000e3, 2000e3) - 1250e3) < 1);
    /* far tighter than the whole-cycle allowance it replaces on the GPU */
    assert_true(lim < timing_held_limit(100e3, 1) / 2);
}

/* When the timed runs stop: twenty event times within +-0.5% of 80 us
 * have settled (the interval, order statistics 5 and 16 of 20, is 0.44 us
 * wide: at most 2 x 1% of the median is 1.6 us); with every fifth run 10%
 * slow they still have (16 close values, the interval among them), with
 * eight of them slow not (the 16th is a slow one); forty runs spread evenly over
 * +-5% have not, at 1%, but have at 5%; four values never have. */
static void test_median_settled(void **state)
{
    (void)state;
    double v[40];
    for (int i = 0; i < 20; i++)
        v[i] = 80e3 * (1 + 0.005 * ((i * 7 % 20) - 10) / 10.0);
    assert_true(stats_median_settled(v, 20, 0.01));
    for (int i = 0; i < 20; i += 5)
        v[i] = 88e3;
    assert_true(stats_median_settled(v, 20, 0.01));
    for (int i = 0; i < 20; i += 4)
        v[i] = 88e3;                  /* 0 4 5 8 10 12 15 16: eight slow */
    assert_false(stats_median_settled(v, 20, 0.01));
    for (int i = 0; i < 40; i++)
        v[i] = 80e3 * (1 + 0.05 * ((i * 7 % 40) - 20) / 20.0);
    assert_false(stats_median_settled(v, 40, 0.01));
    assert_true(stats_median_settled(v, 40, 0.05));
    assert_false(stats_median_settled(v, 4, 0.5));
}

/* The runner's CPU clock at small sizes (bench/held_back_cpu.sh on the
 * 2-core VM, 2026-12-06, attention S=64 Hq=2 D=16; ms): the relative part
 * applies to the kernel's share above the null runner's CPU a command. */
static void test_held_limit_cpu(void **state)
{
    (void)state;
    /* the formula, and a null runner that took more than the median */
    assert_near(timing_held_limit_cpu(1e6, 0.2e6), 1e6 + TIMING_HELD_NOISE * 0.8e6 + TIMING_HELD_CONST_CPU_NS, 1e-6);
    assert_near(timing_held_limit_cpu(0.05e6, 0.09e6), 0.05e6 + TIMING_HELD_CONST_CPU_NS, 1e-6);
    /* honest kernels' fresh sets (median, null, fresh), the worst seen:
     * v3_simd beside two busy processes, v2_flash and well_behaved idle */
    assert_true(0.1322e6 <= timing_held_limit_cpu(0.1111e6, 0.0402e6));
    assert_true(0.1553e6 <= timing_held_limit_cpu(0.1354e6, 0.0429e6));
    assert_true(0.1836e6 <= timing_held_limit_cpu(0.1648e6, 0.0828e6));
    /* content caches, each of its closest fresh sets: caught (the old
     * bound, 30% of the whole median + 100 us, passed every one) */
    assert_true(0.1516e6 > timing_held_limit_cpu(0.0922e6, 0.0478e6));     /* content_cache_2x.c */
    assert_true(0.1516e6 <= timing_held_limit(0.0922e6, 0));
    assert_true(0.1857e6 > timing_held_limit_cpu(0.1203e6, 0.0813e6));
    assert_true(0.1443e6 > timing_held_limit_cpu(0.0618e6, 0.0434e6));     /* content_cache.c */
    assert_true(0.1758e6 > timing_held_limit_cpu(0.0934e6, 0.0382e6));
    /* large kernels keep the relative allowance: 20% slower passes, 2x not */
    assert_true(12e6 <= timing_held_limit_cpu(10e6, 0.05e6));
    assert_true(20e6 > timing_held_limit_cpu(10e6, 0.05e6));
}

static void test_held_limit(void **state)
{
    (void)state;
    double lim = timing_held_limit(1e6, 0);
    assert_near(lim, 1e6 * (1 + TIMING_HELD_NOISE) + TIMING_HELD_CONST_NS, 1e-6);
    /* A 2x cache is caught, a 20% slower fresh set is not. */
    assert_true(2e6 > lim);
    assert_true(1.2e6 <= lim);
}

/* What of a held-back set is the kernel's.  Figures of qkv_proj's GEMV
 * on the H100 (2026-12-06, docs/SECURITY.md), ms: */
static void test_held_charge(void **state)
{
    (void)state;
    calib_t c = {.upload_p50 = 3.4e6, .snap_p50 = 0.065e6, .copy_p50 = 0.006e6};
    /* Pageable uploads, the parts charged one by one: the write is the
     * worker's; the upload's 1.2 ms over the null runner's, the snap's and
     * the copy's excess are the kernel's, with the 0.5 ms run. */
    held_parts_t p = {.write = 1.0e6, .upload = 4.6e6, .snap = 0.077e6, .copy_out = 0.008e6};
    p.total = p.write + p.upload + 0.5e6 + p.snap + p.copy_out;
    assert_true(fabs(timing_held_charge(&p, &c, 1) - (0.5e6 + 1.2e6 + 0.012e6 + 0.002e6)) < 1);
    /* Parts faster than the null runner's earn no credit elsewhere. */
    held_parts_t fast = {.write = 1.0e6, .upload = 3.0e6, .snap = 0.05e6, .copy_out = 0.004e6};
    fast.total = fast.write + fast.upload + 0.5e6 + fast.snap + fast.copy_out;
    assert_true(fabs(timing_held_charge(&fast, &c, 1) - 0.5e6) < 1);
    /* On the host (no device memory) the transfers are not the harness's:
     * only the write and the copy out are taken off. */
    assert_true(fabs(timing_held_charge(&p, &c, 0) - (p.total - p.write - 0.006e6)) < 1);
    /* The held-back cycle calibrated (pinned): the null runner's cycle up
     * to its snap, less one back-to-back run, is the harness's; the
     * worker's write and copy out are its own; the kernel is charged what
     * its cycle took beyond that. */
    c.cycle_p50 = 1.003e6;
    c.warm_run_p50 = 0.110e6;
    held_parts_t pinned = {.total = 1.0e6 + 0.758e6 + 0.236e6 + 0.041e6 + 0.005e6 + 0.05e6, .write = 1.0e6,
                           .copy_out = 0.05e6};
    double charged = timing_held_charge(&pinned, &c, 1);
    assert_true(fabs(charged - (pinned.total - 1.0e6 - 0.05e6 - (1.003e6 - 0.110e6))) < 1);
    assert_true(charged < timing_held_limit(0.184e6, 1));   /* valid, as measured: 0.14 ms */
    /* The worker's copy out running 0.95 ms slow (measured on the H100:
     * the softmax's 32 MB, against the null runner's 3.54 ms) is not the
     * kernel's; slowed past twice the null runner's + 0.5 ms, the rest is. */
    c.copy_p50 = 3.54e6;
    held_parts_t slow_copy = pinned;
    slow_copy.copy_out = 3.54e6 + 0.95e6;
    slow_copy.total += slow_copy.copy_out - pinned.copy_out;
    assert_true(fabs(timing_held_charge(&slow_copy, &c, 1) - charged) < 1);
    held_parts_t stalled = pinned;
    stalled.copy_out = 2 * 3.54e6 + 0.5e6 + 2.0e6;
    stalled.total += stalled.copy_out - pinned.copy_out;
    assert_true(fabs(timing_held_charge(&stalled, &c, 1) - (charged + 2.0e6)) < 1);
    c.copy_p50 = 0.006e6;
    /* A kernel computing 1 ms on the fresh set beyond that is caught,
     * whether in its run, its upload or its snap. */
    pinned.total += 1.0e6;
    assert_true(timing_held_charge(&pinned, &c, 1) > timing_held_limit(0.184e6, 1));
    /* The calibrated cycle is a device-memory yardstick only. */
    assert_true(fabs(timing_held_charge(&p, &c, 0) - (p.total - p.write - 0.006e6)) < 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_forged_gap),
        cmocka_unit_test(test_cpu_excess),
        cmocka_unit_test(test_held_limit),
        cmocka_unit_test(test_held_limit_cpu),
        cmocka_unit_test(test_held_charge),
        cmocka_unit_test(test_held_limit_device),
        cmocka_unit_test(test_held_limit_masked),
        cmocka_unit_test(test_median_settled),
        cmocka_unit_test(test_forged_gap_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
