/*
 * test_occupancy.c -- theoretical occupancy (src/backend/occupancy.c)
 * against values worked out by hand with the rules of CUDA's occupancy
 * calculator.
 *
 * sm_90 (H100): 64 warps, 32 blocks, 65536 registers (allocated per warp in
 * units of 256), 233472 bytes of shared memory per SM, 1024 bytes reserved
 * per block, shared memory allocated in units of 128 bytes, 132 SMs.
 * A launch's blocks per SM is the smallest of
 *   threads:  64 / warps_per_block
 *   regs:     65536 / (round_up(regs * 32, 256) * warps_per_block)
 *   smem:     233472 / round_up(smem + 1024, 128)
 *   blocks:   32
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "backend/occupancy.h"
#include "emile_test.h"

static occ_device_t sm90(void)
{
    occ_device_t d;
    occ_device_for_cc(90, 132, &d);
    return d;
}

static void check(const occ_device_t *d, int threads, int regs, int smem, long long grid, int want_blocks,
                  double want_occ, const char *want_limiter)
{
    occ_result_t r;
    int rc = occ_compute(d, threads, regs, smem, grid, &r);
    if (rc != 0)
        fail_msg("occ_compute(%d threads, %d regs, %d smem) refused the launch", threads, regs, smem);
    if (r.blocks_per_sm != want_blocks || strcmp(r.limiter, want_limiter) != 0)
        fail_msg("occ_compute(%d threads, %d regs, %d smem): %d blocks limited by %s, expected %d by %s", threads,
                 regs, smem, r.blocks_per_sm, r.limiter, want_blocks, want_limiter);
    assert_int_equal(r.warps_per_sm, want_blocks * ((threads + 31) / 32));
    assert_near(r.occupancy, want_occ, 1e-12);
}

static void test_device_limits(void **state)
{
    (void)state;
    occ_device_t d = sm90();
    assert_int_equal(d.max_warps_per_sm, 64);
    assert_int_equal(d.max_blocks_per_sm, 32);
    assert_int_equal(d.regs_per_sm, 65536);
    assert_int_equal(d.reg_alloc_unit, 256);
    assert_int_equal(d.smem_per_sm, 233472);
    assert_int_equal(d.smem_reserved_per_block, 1024);
    assert_int_equal(d.smem_alloc_unit, 128);
    assert_int_equal(d.sms, 132);
    occ_device_for_cc(90, 0, &d);
    assert_int_equal(d.sms, 132);                   /* default */
    occ_device_for_cc(90, 114, &d);
    assert_int_equal(d.sms, 114);                   /* H100 PCIe */
    occ_device_for_cc(80, 108, &d);
    assert_int_equal(d.smem_per_sm, 167936);        /* A100: 164 KiB */
    assert_int_equal(d.max_warps_per_sm, 64);
    occ_device_for_cc(86, 84, &d);
    assert_int_equal(d.max_warps_per_sm, 48);
    assert_int_equal(d.max_blocks_per_sm, 16);
    assert_int_equal(d.smem_per_sm, 102400);
    occ_device_for_cc(89, 128, &d);
    assert_int_equal(d.max_warps_per_sm, 48);
    assert_int_equal(d.max_blocks_per_sm, 24);
    occ_device_for_cc(120, 0, &d);                  /* unknown: sm_90's */
    assert_int_equal(d.smem_per_sm, 233472);
    assert_int_equal(d.max_warps_per_sm, 64);
}

static void test_sm90_by_hand(void **state)
{
    (void)state;
    occ_device_t d = sm90();
    /* 128 threads = 4 warps, 32 regs: regs 65536/(1024*4) = 16, threads
     * 64/4 = 16, smem 233472/1024 = 228: 16 blocks, 64 warps, 100%.  The
     * thread limit is reported (it ties with registers). */
    check(&d, 128, 32, 0, 0, 16, 1.0, "threads");
    /* 256 threads = 8 warps, 128 regs: 4096 per warp, 65536/32768 = 2
     * blocks, 16 warps: 25%, registers. */
    check(&d, 256, 128, 0, 0, 2, 0.25, "registers");
    /* 128 threads, 100 KiB smem: 102400 + 1024 = 103424 (a multiple of 128),
     * 233472 / 103424 = 2 blocks, 8 warps: 12.5%, shared memory. */
    check(&d, 128, 32, 100 * 1024, 0, 2, 0.125, "shared_memory");
    /* 32 threads: 1 warp, 64 by threads but 32 by blocks: 50%. */
    check(&d, 32, 16, 0, 0, 32, 0.5, "blocks");
    /* 64 threads: threads and blocks both allow 32, which fills the SM. */
    check(&d, 64, 32, 0, 0, 32, 1.0, "threads");
    /* 72 regs: 72*32 = 2304 = 9 units; 4 warps need 9216; 65536/9216 = 7. */
    check(&d, 128, 72, 0, 0, 7, 28.0 / 64, "registers");
    /* 65 regs round up to 2304 per warp too: 8 warps need 18432 -> 3 blocks. */
    check(&d, 256, 65, 0, 0, 3, 24.0 / 64, "registers");
    /* 64 regs at 1024 threads: exactly the register file, one block. */
    check(&d, 1024, 64, 0, 0, 1, 0.5, "registers");
    /* 96 threads = 3 warps: 64/3 = 21 blocks, 63 warps. */
    check(&d, 96, 32, 0, 0, 21, 63.0 / 64, "threads");
    /* 48 threads still take two warps. */
    check(&d, 48, 32, 0, 0, 32, 1.0, "threads");
    /* 0 registers reported: no register limit. */
    check(&d, 256, 0, 0, 0, 8, 1.0, "threads");
    /* 1 byte of smem is rounded up to 1152 with the reservation: 202 blocks,
     * never the limit; 48 KiB: (49152 + 1024) = 50176 -> 4 blocks. */
    check(&d, 128, 32, 1, 0, 16, 1.0, "threads");
    check(&d, 128, 32, 48 * 1024, 0, 4, 0.25, "shared_memory");
    /* The largest block the SM holds: 227 KiB + 1 KiB reserved = 228 KiB. */
    check(&d, 128, 32, 232448, 0, 1, 4.0 / 64, "shared_memory");
    /* 168 registers (rung 7's) x 384 threads: 5376 per warp, 12 warps need
     * 64512 -> 1 block of 12 warps. */
    check(&d, 384, 168, 1024, 0, 1, 12.0 / 64, "registers");
}

static void test_other_archs(void **state)
{
    (void)state;
    occ_device_t d;
    occ_device_for_cc(86, 84, &d);
    /* 128 threads: 48/4 = 12 blocks = 48 warps = 100%. */
    check(&d, 128, 32, 0, 0, 12, 1.0, "threads");
    /* 32 threads: 16 blocks (the sm_86 block limit), 16 of 48 warps. */
    check(&d, 32, 32, 0, 0, 16, 16.0 / 48, "blocks");
    /* 100 KiB of smem on sm_86 (100 KiB per SM): 102400 + 1024 > 102400. */
    occ_result_t r;
    assert_int_equal(occ_compute(&d, 128, 32, 100 * 1024, 0, &r), -1);
    occ_device_for_cc(80, 108, &d);
    /* A100, 48 KiB: 167936 / 50176 = 3 blocks. */
    check(&d, 128, 32, 48 * 1024, 0, 3, 12.0 / 64, "shared_memory");
    occ_device_for_cc(89, 128, &d);
    check(&d, 32, 32, 0, 0, 24, 24.0 / 48, "blocks");
}

static void test_waves(void **state)
{
    (void)state;
    occ_device_t d = sm90();
    occ_result_t r;
    /* 16 blocks per SM x 132 SMs = 2112 blocks per wave. */
    assert_int_equal(occ_compute(&d, 128, 32, 0, 2112, &r), 0);
    assert_near(r.waves, 1.0, 1e-12);
    assert_int_equal(occ_compute(&d, 128, 32, 0, 2113, &r), 0);
    assert_near(r.waves, 2113.0 / 2112, 1e-12);         /* a tail of one block */
    assert_int_equal(occ_compute(&d, 128, 32, 0, 66, &r), 0);
    assert_near(r.waves, 0.03125, 1e-12);
    /* 2 blocks per SM (registers): 264 per wave; 1000 blocks = 3.79 waves. */
    assert_int_equal(occ_compute(&d, 256, 128, 0, 1000, &r), 0);
    assert_near(r.waves, 1000.0 / 264, 1e-12);
    /* No grid: no waves. */
    assert_int_equal(occ_compute(&d, 256, 128, 0, 0, &r), 0);
    assert_near(r.waves, 0, 0);
    /* Another SM count. */
    occ_device_for_cc(90, 114, &d);
    assert_int_equal(occ_compute(&d, 128, 32, 0, 1824, &r), 0);
    assert_near(r.waves, 1.0, 1e-12);
}

static void test_impossible_launches(void **state)
{
    (void)state;
    occ_device_t d = sm90();
    occ_result_t r;
    /* Malformed. */
    assert_int_equal(occ_compute(&d, 0, 32, 0, 1, &r), -1);
    assert_int_equal(occ_compute(&d, -32, 32, 0, 1, &r), -1);
    assert_int_equal(occ_compute(&d, 1025, 32, 0, 1, &r), -1);
    assert_int_equal(occ_compute(&d, 128, 256, 0, 1, &r), -1);
    assert_int_equal(occ_compute(&d, 128, -1, 0, 1, &r), -1);
    assert_int_equal(occ_compute(&d, 128, 32, -1, 1, &r), -1);
    /* Well formed, but no block fits: 255 registers x 1024 threads needs
     * 8192 x 32 = 262144 registers; 1 byte past 227 KiB of smem. */
    assert_int_equal(occ_compute(&d, 1024, 255, 0, 1, &r), -1);
    assert_int_equal(r.blocks_per_sm, 0);
    assert_int_equal(r.by_regs, 0);
    assert_int_equal(occ_compute(&d, 128, 32, 232449, 1, &r), -1);
    assert_int_equal(r.by_smem, 0);
    assert_near(r.occupancy, 0, 0);
    /* The biggest that fits: 1024 threads x 64 registers. */
    assert_int_equal(occ_compute(&d, 1024, 64, 0, 1, &r), 0);
    assert_int_equal(r.by_regs, 1);
    assert_int_equal(r.by_threads, 2);
}

static void test_limits_reported(void **state)
{
    (void)state;
    occ_device_t d = sm90();
    occ_result_t r;
    assert_int_equal(occ_compute(&d, 256, 128, 100 * 1024, 0, &r), 0);
    /* Every individual limit is reported, not just the binding one. */
    assert_int_equal(r.by_threads, 8);
    assert_int_equal(r.by_regs, 2);
    assert_int_equal(r.by_smem, 2);
    assert_int_equal(r.by_blocks, 32);
    assert_int_equal(r.blocks_per_sm, 2);
    assert_string_equal(r.limiter, "registers");     /* the first of the tie */
    assert_int_equal(occ_compute(&d, 256, 128, 120 * 1024, 0, &r), 0);
    assert_int_equal(r.by_smem, 1);
    assert_int_equal(r.blocks_per_sm, 1);
    assert_string_equal(r.limiter, "shared_memory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_limits),
        cmocka_unit_test(test_sm90_by_hand),
        cmocka_unit_test(test_other_archs),
        cmocka_unit_test(test_waves),
        cmocka_unit_test(test_impossible_launches),
        cmocka_unit_test(test_limits_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
