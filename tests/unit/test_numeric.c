/*
 * test_numeric.c -- element conversions and the validation error metric
 * (src/worker/numeric.c), and the arena layout with its guards and the
 * runner's bind line (src/worker/layout.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "emile.h"
#include "emile_test.h"
#include "task/op.h"
#include "util/rng.h"
#include "worker/layout.h"
#include "worker/numeric.h"
#include "worker/validate.h"

/* ---- helpers ------------------------------------------------------------ */

static uint16_t set16(int dtype, double v)
{
    uint16_t h = 0xdead;
    num_set(&h, dtype, 0, v);
    return h;
}

static double get16(int dtype, uint16_t bits)
{
    return num_get(&bits, dtype, 0);
}

#define assert_bits16(dtype, v, want)                                                          \
    do {                                                                                       \
        uint16_t got_ = set16((dtype), (v));                                                   \
        if (got_ != (uint16_t)(want))                                                          \
            fail_msg("%s(%.17g) = 0x%04x, expected 0x%04x", #dtype, (double)(v), got_, (want)); \
    } while (0)

/* A deterministic normal generator (xorshift + Box-Muller). */
static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static double uniform(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((double)(g_rng >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void)
{
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

/* ---- f32 / f64 / integers ------------------------------------------------ */

static void test_f32_f64_round_trip(void **state)
{
    (void)state;
    float f[8];
    const double exact[] = {0.0, 1.5, -2.25, 1.7014118346046923e38 /* 2^127 */, 1.1754943508222875e-38 /* FLT_MIN */,
                            1.401298464324817e-45 /* smallest subnormal */, -0.0, 65504.0};
    for (size_t i = 0; i < 8; i++) {
        num_set(f, EMILE_DTYPE_F32, i, exact[i]);
        assert_near(num_get(f, EMILE_DTYPE_F32, i), exact[i], 0);
    }
    assert_true(signbit(num_get(f, EMILE_DTYPE_F32, 6)));
    /* Rounding to nearest, ties to even. */
    num_set(f, EMILE_DTYPE_F32, 0, 1.0 + ldexp(1, -24));            /* tie -> 1 (even) */
    assert_near(num_get(f, EMILE_DTYPE_F32, 0), 1.0, 0);
    num_set(f, EMILE_DTYPE_F32, 0, 1.0 + 3 * ldexp(1, -24));        /* tie -> 1 + 2^-22 (even) */
    assert_near(num_get(f, EMILE_DTYPE_F32, 0), 1.0 + ldexp(1, -22), 0);
    num_set(f, EMILE_DTYPE_F32, 0, 0.1);
    assert_near(num_get(f, EMILE_DTYPE_F32, 0), (double)0.1f, 0);
    /* Overflow, inf and nan. */
    num_set(f, EMILE_DTYPE_F32, 0, 1e39);
    assert_true(isinf(num_get(f, EMILE_DTYPE_F32, 0)));
    num_set(f, EMILE_DTYPE_F32, 0, -INFINITY);
    assert_true(isinf(num_get(f, EMILE_DTYPE_F32, 0)) && num_get(f, EMILE_DTYPE_F32, 0) < 0);
    num_set(f, EMILE_DTYPE_F32, 0, NAN);
    assert_true(isnan(num_get(f, EMILE_DTYPE_F32, 0)));

    double d[4];
    const double dv[] = {0.1, -1e-310 /* subnormal */, 1.7976931348623157e308, M_PI};
    for (size_t i = 0; i < 4; i++) {
        num_set(d, EMILE_DTYPE_F64, i, dv[i]);
        assert_true(num_get(d, EMILE_DTYPE_F64, i) == dv[i]);
        assert_true(d[i] == dv[i]);
    }
    num_set(d, EMILE_DTYPE_F64, 0, NAN);
    assert_true(isnan(num_get(d, EMILE_DTYPE_F64, 0)));
    /* The index addresses elements of the dtype's size. */
    memset(f, 0, sizeof f);
    num_set(f, EMILE_DTYPE_F32, 5, 7.0);
    assert_true(f[5] == 7.0f && f[4] == 0 && f[6] == 0);
}

static void test_integers(void **state)
{
    (void)state;
    int32_t i32[4];
    int64_t i64[2];
    num_set(i32, EMILE_DTYPE_I32, 0, 2.5);     /* ties to even */
    num_set(i32, EMILE_DTYPE_I32, 1, 3.5);
    num_set(i32, EMILE_DTYPE_I32, 2, -3.7);
    num_set(i32, EMILE_DTYPE_I32, 3, 2147483647.0);
    assert_int_equal(i32[0], 2);
    assert_int_equal(i32[1], 4);
    assert_int_equal(i32[2], -4);
    assert_int_equal(i32[3], 2147483647);
    assert_near(num_get(i32, EMILE_DTYPE_I32, 2), -4, 0);
    num_set(i64, EMILE_DTYPE_I64, 1, 9007199254740992.0);
    assert_true(i64[1] == 9007199254740992LL);
    assert_near(num_get(i64, EMILE_DTYPE_I64, 1), 9007199254740992.0, 0);
    /* An unknown dtype reads as NaN and writes nothing. */
    float f = 1.0f;
    assert_true(isnan(num_get(&f, 42, 0)));
    num_set(&f, 42, 0, 5.0);
    assert_true(f == 1.0f);
}

/* ---- f16 ----------------------------------------------------------------- */

static void test_f16_values(void **state)
{
    (void)state;
    const int H = EMILE_DTYPE_F16;
    assert_bits16(H, 0.0, 0x0000);
    assert_bits16(H, -0.0, 0x8000);
    assert_bits16(H, 1.0, 0x3c00);
    assert_bits16(H, -2.0, 0xc000);
    assert_bits16(H, 0.5, 0x3800);
    assert_bits16(H, 0.1, 0x2e66);
    assert_bits16(H, 1.0 / 3.0, 0x3555);
    assert_bits16(H, 65504.0, 0x7bff);            /* largest finite */
    assert_bits16(H, 65519.0, 0x7bff);            /* below the halfway point */
    assert_bits16(H, 65520.0, 0x7c00);            /* halfway to 2^16: even is inf */
    assert_bits16(H, 1e6, 0x7c00);
    assert_bits16(H, -1e300, 0xfc00);
    assert_bits16(H, INFINITY, 0x7c00);
    assert_bits16(H, -INFINITY, 0xfc00);
    /* Subnormals: units of 2^-24. */
    assert_bits16(H, ldexp(1, -14), 0x0400);      /* smallest normal */
    assert_bits16(H, ldexp(1, -24), 0x0001);      /* smallest subnormal */
    assert_bits16(H, 1023 * ldexp(1, -24), 0x03ff);
    assert_bits16(H, -5 * ldexp(1, -24), 0x8005);
    assert_bits16(H, ldexp(1, -25), 0x0000);      /* tie between 0 and 2^-24: even is 0 */
    assert_bits16(H, ldexp(1.0001, -25), 0x0001); /* just above the tie */
    assert_bits16(H, 3 * ldexp(1, -25), 0x0002);  /* 1.5 units: tie to even = 2 */
    assert_bits16(H, 5 * ldexp(1, -25), 0x0002);  /* 2.5 units: tie to even = 2 */
    assert_bits16(H, ldexp(1, -26), 0x0000);
    assert_bits16(H, ldexp(1023.5, -24), 0x0400); /* rounds up into the normals */
    /* Ties to even in the normals: 1 + 2^-11 is halfway between 1 and 1 + 2^-10. */
    assert_bits16(H, 1.0 + ldexp(1, -11), 0x3c00);
    assert_bits16(H, 1.0 + 3 * ldexp(1, -11), 0x3c02);
    assert_bits16(H, 1.0 + ldexp(1, -11) + ldexp(1, -40), 0x3c01);   /* just above the tie */
    assert_bits16(H, 2047.0 / 1024.0 + ldexp(1, -11), 0x4000);       /* carry into the exponent */
    /* NaN stays NaN. */
    uint16_t nan = set16(H, NAN);
    assert_int_equal(nan & 0x7c00, 0x7c00);
    assert_true((nan & 0x03ff) != 0);

    /* Decoding. */
    assert_near(get16(H, 0x3c00), 1.0, 0);
    assert_near(get16(H, 0x7bff), 65504.0, 0);
    assert_near(get16(H, 0x0001), ldexp(1, -24), 0);
    assert_near(get16(H, 0x03ff), 1023 * ldexp(1, -24), 0);
    assert_near(get16(H, 0x3555), 0.333251953125, 0);
    assert_near(get16(H, 0xc000), -2.0, 0);
    assert_true(isinf(get16(H, 0x7c00)) && get16(H, 0x7c00) > 0);
    assert_true(isinf(get16(H, 0xfc00)) && get16(H, 0xfc00) < 0);
    assert_true(isnan(get16(H, 0x7e00)));
    assert_true(isnan(get16(H, 0x7c01)));
    assert_true(isnan(get16(H, 0xffff)));          /* the poison pattern */
    assert_true(signbit(get16(H, 0x8000)));
}

/* Every f16 bit pattern decodes and encodes back to itself (NaNs to a NaN),
 * and the decoded values are strictly increasing over the positive finite
 * patterns. */
static void test_f16_exhaustive(void **state)
{
    (void)state;
    double prev = -1;
    for (uint32_t b = 0; b < 65536; b++) {
        double v = get16(EMILE_DTYPE_F16, (uint16_t)b);
        uint16_t back = set16(EMILE_DTYPE_F16, v);
        if ((b & 0x7c00) == 0x7c00 && (b & 0x3ff)) {
            assert_true(isnan(v));
            assert_true(isnan(get16(EMILE_DTYPE_F16, back)));
            continue;
        }
        if (back != b)
            fail_msg("f16 0x%04x -> %.17g -> 0x%04x", b, v, back);
        if (b < 0x7c00) {
            if (b > 0 && !(v > prev))
                fail_msg("f16 0x%04x = %.17g is not above 0x%04x = %.17g", b, v, b - 1, prev);
            prev = v;
        }
    }
}

/* ---- bf16 ---------------------------------------------------------------- */

static void test_bf16_values(void **state)
{
    (void)state;
    const int B = EMILE_DTYPE_BF16;
    assert_bits16(B, 0.0, 0x0000);
    assert_bits16(B, -0.0, 0x8000);
    assert_bits16(B, 1.0, 0x3f80);
    assert_bits16(B, -2.0, 0xc000);
    assert_bits16(B, 3.140625, 0x4049);
    assert_bits16(B, M_PI, 0x4049);                    /* 3.14159 -> 3.140625 */
    assert_bits16(B, 0.1, 0x3dcd);
    assert_bits16(B, INFINITY, 0x7f80);
    assert_bits16(B, -INFINITY, 0xff80);
    assert_bits16(B, 1e39, 0x7f80);                    /* beyond f32 */
    assert_bits16(B, 3.3895313892515355e38, 0x7f7f);   /* largest finite bf16 */
    assert_bits16(B, 3.4e38, 0x7f80);                  /* rounds past it */
    /* Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7. */
    assert_bits16(B, 1.0 + ldexp(1, -8), 0x3f80);
    assert_bits16(B, 1.0 + 3 * ldexp(1, -8), 0x3f82);
    assert_bits16(B, 1.0 + ldexp(1, -8) + ldexp(1, -20), 0x3f81);   /* above the tie */
    assert_bits16(B, 1.0 + ldexp(1, -8) - ldexp(1, -20), 0x3f80);   /* below the tie */
    /* Subnormals (of f32): the smallest bf16 subnormal is 2^-133. */
    assert_bits16(B, ldexp(1, -133), 0x0001);
    assert_bits16(B, ldexp(3, -133), 0x0003);
    assert_bits16(B, ldexp(1, -126), 0x0080);          /* smallest normal */
    uint16_t nan = set16(B, NAN);
    assert_int_equal(nan & 0x7f80, 0x7f80);
    assert_true((nan & 0x7f) != 0);

    assert_near(get16(B, 0x3f80), 1.0, 0);
    assert_near(get16(B, 0x4049), 3.140625, 0);
    assert_near(get16(B, 0x7f7f), 3.3895313892515355e38, 0);
    assert_near(get16(B, 0x0001), ldexp(1, -133), 0);
    assert_true(isinf(get16(B, 0x7f80)));
    assert_true(isnan(get16(B, 0x7fc0)));
    assert_true(isnan(get16(B, 0xffff)));              /* the poison pattern */
}

static void test_bf16_exhaustive(void **state)
{
    (void)state;
    for (uint32_t b = 0; b < 65536; b++) {
        double v = get16(EMILE_DTYPE_BF16, (uint16_t)b);
        uint16_t back = set16(EMILE_DTYPE_BF16, v);
        if ((b & 0x7f80) == 0x7f80 && (b & 0x7f)) {
            assert_true(isnan(v));
            assert_true(isnan(get16(EMILE_DTYPE_BF16, back)));
            continue;
        }
        if (back != b)
            fail_msg("bf16 0x%04x -> %.17g -> 0x%04x", b, v, back);
    }
}

/* Correct rounding from double: a value just above the halfway point
 * between two bf16 numbers must round up, even when the part above the tie
 * is below f32 precision.  Converting through float first rounds 1 + 2^-8 +
 * 2^-40 to the tie 1 + 2^-8 exactly, and the tie then goes to even (down). */
static void test_bf16_no_double_rounding(void **state)
{
    (void)state;
    assert_bits16(EMILE_DTYPE_BF16, 1.0 + ldexp(1, -8) + ldexp(1, -40), 0x3f81);
    assert_bits16(EMILE_DTYPE_BF16, -(1.0 + ldexp(1, -8) + ldexp(1, -40)), 0xbf81);
}

/* Random doubles over each format's whole range (and the midpoints
 * between its neighbours, exactly): the encoded value is the nearest of
 * its neighbours, ties to the even pattern.  The fast path on the bits
 * (round_normal16) takes the normal range; this holds it to the
 * definition, not to the slow path. */
static void check_nearest(int dtype, uint16_t r, double d)
{
    double v = get16(dtype, r);
    if (isinf(v))
        return;                                    /* overflow: test_*_values */
    double dv = fabs(d - v);
    for (int step = -1; step <= 1; step += 2) {
        uint16_t nb = (uint16_t)(r + step);
        if ((r & 0x7fff) == 0 && step < 0)
            continue;                              /* below zero is the other sign */
        double w = get16(dtype, nb);
        if (!isfinite(w) || signbit(w) != signbit(v))
            continue;
        double dw = fabs(d - w);
        if (dw < dv || (dw == dv && (r & 1)))
            fail_msg("%s: %.17g -> 0x%04x (%.17g) but 0x%04x (%.17g) is %s", dtype == EMILE_DTYPE_BF16 ? "bf16" : "f16",
                     d, r, v, nb, w, dw < dv ? "nearer" : "as near and even");
    }
}

static void test_nearest_random(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    const int dtypes[2] = {EMILE_DTYPE_BF16, EMILE_DTYPE_F16};
    for (int t = 0; t < 2; t++) {
        int dt = dtypes[t], lo = dt == EMILE_DTYPE_BF16 ? -140 : -27, hi = dt == EMILE_DTYPE_BF16 ? 128 : 16;
        for (int i = 0; i < 200000; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            double m = 1.0 + (double)(x >> 12) * 0x1.0p-52;
            double d = ldexp(m, lo + (int)((x >> 3) % (uint64_t)(hi - lo)));
            if (x & 1)
                d = -d;
            uint16_t r = set16(dt, d);
            check_nearest(dt, r, d);
            /* the midpoint between r and its upper neighbour, a tie */
            double v = get16(dt, r), w = get16(dt, (uint16_t)(r + 1));
            if (isfinite(v) && isfinite(w) && signbit(v) == signbit(w) && v != 0) {
                double mid = v + (w - v) / 2;
                check_nearest(dt, set16(dt, mid), mid);
            }
        }
    }
}

/* ---- the error metric ------------------------------------------------------ */

static void test_compare_identical(void **state)
{
    (void)state;
    enum { N = 4096 };
    float *a = malloc(N * sizeof *a);
    double ss = 0;
    for (int i = 0; i < N; i++) {
        a[i] = (float)normal();
        ss += (double)a[i] * a[i];
    }
    num_cmp_t c;
    num_compare(a, a, EMILE_DTYPE_F32, N, 0, &c);
    assert_near(c.max_err, 0, 0);
    assert_near(c.max_abs_diff, 0, 0);
    assert_int_equal(c.n_bad, 0);
    assert_int_equal(c.n_nonfinite, 0);
    assert_true(c.first_bad == (size_t)-1);
    assert_near(c.rms_ref, sqrt(ss / N), 1e-12);
    free(a);

    /* Empty input: nothing to be wrong. */
    num_compare(NULL, NULL, EMILE_DTYPE_F32, 0, 1e-4, &c);
    assert_int_equal(c.n_bad, 0);
    assert_near(c.max_err, 0, 0);
}

static void test_compare_by_hand(void **state)
{
    (void)state;
    /* ref (3, 4): rms = sqrt(12.5); out (3, 5): err = 1 / (4 + sqrt(12.5)). */
    float ref[2] = {3, 4}, out[2] = {3, 5};
    num_cmp_t c;
    num_compare(out, ref, EMILE_DTYPE_F32, 2, 0.1, &c);
    assert_near(c.rms_ref, sqrt(12.5), 1e-15);
    assert_near(c.max_err, 1.0 / (4 + sqrt(12.5)), 1e-15);
    assert_near(c.max_abs_diff, 1, 0);
    assert_int_equal(c.worst_index, 1);
    assert_int_equal(c.n_bad, 1);
    assert_int_equal(c.first_bad, 1);
    /* The same bound at a looser tolerance passes. */
    num_compare(out, ref, EMILE_DTYPE_F32, 2, 0.14, &c);
    assert_int_equal(c.n_bad, 0);
    assert_true(c.first_bad == (size_t)-1);

    /* A reference of all zeros: exact zeros pass, anything else fails. */
    float z[3] = {0, 0, 0}, nz[3] = {0, 1e-3f, 0};
    num_compare(z, z, EMILE_DTYPE_F32, 3, 1e-4, &c);
    assert_int_equal(c.n_bad, 0);
    num_compare(nz, z, EMILE_DTYPE_F32, 3, 1e-4, &c);
    assert_int_equal(c.n_bad, 1);
    assert_int_equal(c.first_bad, 1);

    /* float64 reference against f32 output. */
    double dref[2] = {3, 4};
    num_compare_f64(out, EMILE_DTYPE_F32, dref, 2, 0.1, &c);
    assert_near(c.max_err, 1.0 / (4 + sqrt(12.5)), 1e-15);
    /* bf16 output against a float64 reference: 1.0 and 2.0 are exact. */
    uint16_t bout[2] = {0x3f80, 0x4000};
    double bref[2] = {1.0, 2.0};
    num_compare_f64(bout, EMILE_DTYPE_BF16, bref, 2, 0, &c);
    assert_near(c.max_err, 0, 0);
    assert_int_equal(c.n_bad, 0);
}

/* An all-zero output scores ~1 against a random normal reference, so no
 * tolerance below 0.5 lets it pass. */
static void test_compare_zeros_fail(void **state)
{
    (void)state;
    enum { N = 20000 };
    float *ref = malloc(N * sizeof *ref), *out = calloc(N, sizeof *out);
    double ss = 0, maxabs = 0;
    for (int i = 0; i < N; i++) {
        ref[i] = (float)normal();
        ss += (double)ref[i] * ref[i];
        if (fabs(ref[i]) > maxabs)
            maxabs = fabs(ref[i]);
    }
    double rms = sqrt(ss / N);
    num_cmp_t c;
    num_compare(out, ref, EMILE_DTYPE_F32, N, 0.49, &c);
    /* Each element scores |b| / (|b| + rms); the worst is the largest |b|. */
    assert_near(c.max_err, maxabs / (maxabs + rms), 1e-12);
    assert_true(c.max_err > 0.7 && c.max_err < 1.0);
    assert_near(c.max_abs_diff, maxabs, 0);
    assert_true(c.n_bad > N / 4);
    assert_int_equal(c.n_nonfinite, 0);
    const double tols[] = {1e-9, 1e-4, 1e-2, 0.1, 0.3, 0.49};
    for (size_t k = 0; k < sizeof tols / sizeof tols[0]; k++) {
        num_compare(out, ref, EMILE_DTYPE_F32, N, tols[k], &c);
        if (c.n_bad == 0)
            fail_msg("zeros passed at tolerance %g", tols[k]);
    }
    free(ref);
    free(out);
}

static void test_compare_nonfinite(void **state)
{
    (void)state;
    enum { N = 1000 };
    float ref[N], out[N];
    for (int i = 0; i < N; i++)
        ref[i] = out[i] = (float)normal();
    num_cmp_t c;
    out[17] = NAN;
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.n_nonfinite, 1);
    assert_int_equal(c.n_bad, 1);
    assert_int_equal(c.first_bad, 17);
    assert_int_equal(c.worst_index, 17);
    assert_true(isinf(c.max_err));
    /* NaN fails at any tolerance, even an infinite one... */
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e30, &c);
    assert_int_equal(c.n_bad, 1);
    /* ...and so does an infinity. */
    out[17] = ref[17];
    out[900] = INFINITY;
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.n_nonfinite, 1);
    assert_int_equal(c.first_bad, 900);
    /* The worst index stays on the first non-finite element even when a
     * finite error follows. */
    out[950] = ref[950] + 100;
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.worst_index, 900);
    assert_int_equal(c.n_bad, 2);
    out[900] = ref[900];
    out[950] = ref[950];

    /* The poison pattern (all ones) is NaN in every float dtype. */
    memset(&out[3], 0xff, sizeof out[3]);
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.n_nonfinite, 1);
    out[3] = ref[3];

    /* A non-finite reference must be matched exactly. */
    ref[5] = out[5] = NAN;
    ref[6] = out[6] = -INFINITY;
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.n_bad, 0);
    assert_int_equal(c.n_nonfinite, 0);
    assert_false(isnan(c.rms_ref));             /* the rms skips them */
    out[5] = 1.0f;                              /* finite where the reference is NaN */
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.n_bad, 1);
    assert_int_equal(c.first_bad, 5);
    out[5] = NAN;
    out[6] = INFINITY;                          /* wrong sign of infinity */
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.n_bad, 1);
    assert_int_equal(c.first_bad, 6);
}

static void test_compare_noise(void **state)
{
    (void)state;
    enum { N = 20000 };
    float *ref = malloc(N * sizeof *ref), *out = malloc(N * sizeof *out);
    for (int i = 0; i < N; i++) {
        ref[i] = (float)normal();
        out[i] = (float)(ref[i] * (1.0 + 2e-6 * (uniform() - 0.5)));
    }
    ref[10] = 0.0f;
    out[10] = 1e-7f;                 /* an absolute error at a zero reference */
    num_cmp_t c;
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_int_equal(c.n_bad, 0);
    assert_true(c.max_err < 1e-5);
    assert_true(c.max_err > 0);
    /* Noise of 1e-3 relative fails an f32 tolerance but passes bf16's. */
    for (int i = 0; i < N; i++)
        out[i] = (float)(ref[i] * (1.0 + 2e-3 * (uniform() - 0.5)));
    num_compare(out, ref, EMILE_DTYPE_F32, N, 1e-4, &c);
    assert_true(c.n_bad > 0);
    num_compare(out, ref, EMILE_DTYPE_F32, N, 3e-2, &c);
    assert_int_equal(c.n_bad, 0);
    free(ref);
    free(out);

    /* The same in bf16: a value off by one bf16 ulp at 1.0 is ~0.4% of it. */
    uint16_t b_ref[4] = {0x3f80, 0x4000, 0xbf80, 0x3f00}, b_out[4] = {0x3f81, 0x4000, 0xbf80, 0x3f00};
    num_compare(b_out, b_ref, EMILE_DTYPE_BF16, 4, 3e-2, &c);
    assert_int_equal(c.n_bad, 0);
    assert_true(c.max_err > 1e-3);
    num_compare(b_out, b_ref, EMILE_DTYPE_BF16, 4, 1e-3, &c);
    assert_int_equal(c.n_bad, 1);
    assert_int_equal(c.first_bad, 0);
}

/* ---- the arena layout ------------------------------------------------------- */

static op_params_t attn_params(double b, double s, double hq, double hkv, double d)
{
    const op_t *att = op_find_builtin("attention");
    op_params_t p = att->defaults;
    op_param_set(&p, "batch", b);
    op_param_set(&p, "seq", s);
    op_param_set(&p, "q_heads", hq);
    op_param_set(&p, "kv_heads", hkv);
    op_param_set(&p, "head_dim", d);
    op_param_set(&p, "scale", 1.0 / sqrt(d));
    return p;
}

/* [lo, hi) ranges must not overlap. */
static void assert_disjoint(size_t lo1, size_t hi1, size_t lo2, size_t hi2, const char *what)
{
    if (lo1 < hi2 && lo2 < hi1)
        fail_msg("%s: [%zu, %zu) overlaps [%zu, %zu)", what, lo1, hi1, lo2, hi2);
}

static void test_layout_slots(void **state)
{
    (void)state;
    const op_t *att = op_find_builtin("attention");
    arena_layout_t a;
    memset(&a, 0, sizeof a);
    char err[256];
    op_params_t p1 = attn_params(1, 100, 4, 2, 32), p2 = attn_params(2, 37, 4, 2, 32);
    assert_int_equal(layout_add_slot(&a, "task", att, &p1, EMILE_DTYPE_F32, err, sizeof err), 0);
    assert_int_equal(layout_add_slot(&a, "ragged", att, &p2, EMILE_DTYPE_BF16, err, sizeof err), 0);
    assert_int_equal(a.n_slots, 2);

    const slot_layout_t *s = &a.slots[0];
    assert_string_equal(s->name, "task");
    assert_int_equal(s->n_tensors, 4);
    assert_string_equal(s->tname[0], "q");
    assert_string_equal(s->tname[3], "o");
    assert_int_equal(s->dtype[0], EMILE_DTYPE_F32);
    assert_int_equal(a.slots[1].dtype[2], EMILE_DTYPE_BF16);
    assert_false(s->is_out[0]);
    assert_true(s->is_out[3]);
    /* Shapes, dense row-major strides, sizes. */
    assert_int_equal(s->ndim[1], 4);
    assert_int_equal(s->shape[1][1], 100);
    assert_int_equal(s->shape[1][2], 2);
    assert_int_equal(s->strides[0][0], 100 * 4 * 32);
    assert_int_equal(s->strides[0][1], 4 * 32);
    assert_int_equal(s->strides[0][2], 32);
    assert_int_equal(s->strides[0][3], 1);
    assert_int_equal(s->strides[1][1], 2 * 32);
    assert_int_equal(s->numel[0], 100 * 4 * 32);
    assert_int_equal(s->bytes[0], 100 * 4 * 32 * 4);
    assert_int_equal(s->bytes[1], 100 * 2 * 32 * 4);
    assert_int_equal(a.slots[1].bytes[0], 2 * 37 * 4 * 32 * 2);
    assert_int_equal(a.slots[1].params.n, p2.n);

    for (int k = 0; k < a.n_slots; k++) {
        const slot_layout_t *sl = &a.slots[k];
        assert_int_equal(sl->begin % LAYOUT_ALIGN, 0);
        assert_true(sl->begin < sl->end);
        if (k > 0)
            assert_true(sl->begin >= a.slots[k - 1].end);
        for (int t = 0; t < sl->n_tensors; t++) {
            /* Aligned, with a full guard before and after inside [begin, end). */
            if (sl->off[t] % LAYOUT_ALIGN != 0)
                fail_msg("slot %d tensor %d at %zu is not %d-aligned", k, t, sl->off[t], LAYOUT_ALIGN);
            assert_true(sl->off[t] >= sl->begin + LAYOUT_GUARD);
            assert_true(sl->off[t] + sl->bytes[t] + LAYOUT_GUARD <= sl->end);
            if (t > 0)
                assert_true(sl->off[t] >= sl->off[t - 1] + sl->bytes[t - 1] + LAYOUT_GUARD);
            /* Tensors with their guards never overlap each other. */
            for (int u = 0; u < t; u++)
                assert_disjoint(sl->off[u] - LAYOUT_GUARD, sl->off[u] + sl->bytes[u] + LAYOUT_GUARD,
                                sl->off[t], sl->off[t] + sl->bytes[t], "tensor vs guarded tensor");
            if (!sl->is_out[t]) {
                assert_int_equal(sl->snap[t], 0);
                continue;
            }
            /* The snapshot (output and both guards) lies after the slot's
             * tensors, aligned, inside the arena, away from every tensor of
             * every slot and every other snapshot. */
            size_t lo = sl->snap[t], hi = sl->snap[t] + sl->bytes[t] + 2 * LAYOUT_GUARD;
            assert_int_equal(lo % LAYOUT_ALIGN, 0);
            assert_true(lo >= sl->end);
            assert_true(hi <= a.total);
            for (int k2 = 0; k2 < a.n_slots; k2++) {
                const slot_layout_t *o = &a.slots[k2];
                assert_disjoint(lo, hi, o->begin, o->end, "snapshot vs a slot's tensors");
                for (int t2 = 0; t2 < o->n_tensors; t2++)
                    if (o->is_out[t2] && !(k2 == k && t2 == t))
                        assert_disjoint(lo, hi, o->snap[t2], o->snap[t2] + o->bytes[t2] + 2 * LAYOUT_GUARD,
                                        "snapshot vs snapshot");
            }
        }
    }
    assert_true(a.total >= a.slots[1].end);
    /* Nothing wasted beyond alignment: the arena is at most the sum of the
     * parts plus guards and padding. */
    size_t need = 0;
    for (int k = 0; k < a.n_slots; k++)
        for (int t = 0; t < a.slots[k].n_tensors; t++)
            need += a.slots[k].bytes[t] * (a.slots[k].is_out[t] ? 2 : 1) + LAYOUT_GUARD * 4 + 2 * LAYOUT_ALIGN;
    assert_true(a.total <= need);
}

static void test_layout_errors(void **state)
{
    (void)state;
    const op_t *att = op_find_builtin("attention");
    arena_layout_t a;
    memset(&a, 0, sizeof a);
    char err[256] = "";
    op_params_t p = attn_params(1, 0, 4, 2, 32);
    assert_int_equal(layout_add_slot(&a, "task", att, &p, EMILE_DTYPE_F32, err, sizeof err), -1);
    assert_contains(err, "(seq) = 0");
    assert_int_equal(a.n_slots, 0);
    p = attn_params(1, 8, 4, 2, 32);
    for (int i = 0; i < LAYOUT_MAX_SLOTS; i++)
        assert_int_equal(layout_add_slot(&a, "s", att, &p, EMILE_DTYPE_F32, err, sizeof err), 0);
    assert_int_equal(layout_add_slot(&a, "s", att, &p, EMILE_DTYPE_F32, err, sizeof err), -1);
    assert_contains(err, "too many input sets");
    assert_int_equal(a.n_slots, LAYOUT_MAX_SLOTS);
}

/* A user op whose tensors have odd byte sizes and their own dtypes: every
 * tensor still starts 256-aligned after a full guard. */
static void test_layout_odd_sizes(void **state)
{
    (void)state;
    const char *text =
        "{\"name\": \"odd\", \"params\": {\"n\": 3},"
        " \"tensors\": [{\"name\": \"a\", \"shape\": [\"n\"], \"dtype\": \"f16\"},"
        "               {\"name\": \"b\", \"shape\": [\"n+2\", 1], \"dtype\": \"f64\"},"
        "               {\"name\": \"c\", \"shape\": [7], \"dtype\": \"bf16\", \"output\": true},"
        "               {\"name\": \"d\", \"shape\": [\"n\", \"n\"], \"output\": true}],"
        " \"flops\": \"n\"}";
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    op_t op;
    char err[256];
    assert_int_equal(op_from_json(j, &op, err, sizeof err), 0);
    json_decref(j);
    arena_layout_t a;
    memset(&a, 0, sizeof a);
    assert_int_equal(layout_add_slot(&a, "task", &op, &op.defaults, EMILE_DTYPE_F32, err, sizeof err), 0);
    op_params_t p = op.defaults;
    op_param_set(&p, "n", 5);
    assert_int_equal(layout_add_slot(&a, "ragged", &op, &p, EMILE_DTYPE_F32, err, sizeof err), 0);
    const slot_layout_t *s = &a.slots[0];
    assert_int_equal(s->bytes[0], 6);            /* 3 f16 */
    assert_int_equal(s->bytes[1], 40);           /* 5 f64 */
    assert_int_equal(s->bytes[2], 14);           /* 7 bf16 */
    assert_int_equal(s->bytes[3], 36);           /* 9 f32, the task's dtype */
    assert_int_equal(s->dtype[1], EMILE_DTYPE_F64);
    assert_int_equal(s->strides[1][0], 1);
    assert_int_equal(s->strides[3][0], 3);
    assert_int_equal(a.slots[1].bytes[3], 100);
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < 4; t++) {
            const slot_layout_t *sl = &a.slots[k];
            assert_int_equal(sl->off[t] % LAYOUT_ALIGN, 0);
            if (t > 0)
                assert_true(sl->off[t] >= sl->off[t - 1] + sl->bytes[t - 1] + LAYOUT_GUARD);
            if (sl->is_out[t])
                assert_int_equal(sl->snap[t] % LAYOUT_ALIGN, 0);
        }
    assert_true(a.slots[0].snap[3] >= a.slots[0].snap[2] + 14 + 2 * LAYOUT_GUARD);
    assert_true(a.slots[1].begin >= a.slots[0].snap[3] + 36 + 2 * LAYOUT_GUARD);
    op_free(&op);
}

/* bind NONCE SLOT NPARAMS {NAME VALUE}* NTENSORS
 *      {NAME DTYPE NDIM SHAPE.. STRIDES.. OFFSET BYTES IS_OUT SNAP GUARD}* */
static void test_layout_bind_line(void **state)
{
    (void)state;
    const op_t *att = op_find_builtin("attention");
    arena_layout_t a;
    memset(&a, 0, sizeof a);
    char err[256];
    op_params_t p0 = attn_params(1, 16, 2, 1, 8), p1 = attn_params(1, 13, 4, 2, 16);
    assert_int_equal(layout_add_slot(&a, "task", att, &p0, EMILE_DTYPE_F32, err, sizeof err), 0);
    assert_int_equal(layout_add_slot(&a, "ragged", att, &p1, EMILE_DTYPE_F32, err, sizeof err), 0);
    char *line = layout_bind_line(&a, 1, "abc123");
    assert_non_null(line);
    assert_null(strchr(line, '\n'));
    char *save = NULL;
    char *tok = strtok_r(line, " ", &save);
#define NEXT() (tok = strtok_r(NULL, " ", &save), assert_non_null(tok), tok)
    assert_string_equal(tok, "bind");
    assert_string_equal(NEXT(), "abc123");
    assert_int_equal(atoi(NEXT()), 1);
    const slot_layout_t *s = &a.slots[1];
    assert_int_equal(atoi(NEXT()), s->params.n);
    for (int i = 0; i < s->params.n; i++) {
        assert_string_equal(NEXT(), s->params.names[i]);
        /* %.17g: the value survives exactly (the scale 1/sqrt(16) and others). */
        assert_true(strtod(NEXT(), NULL) == s->params.values[i]);
    }
    assert_int_equal(atoi(NEXT()), 4);
    for (int t = 0; t < 4; t++) {
        assert_string_equal(NEXT(), s->tname[t]);
        assert_int_equal(atoi(NEXT()), EMILE_DTYPE_F32);
        assert_int_equal(atoi(NEXT()), 4);
        for (int d = 0; d < 4; d++)
            assert_int_equal(strtoll(NEXT(), NULL, 10), s->shape[t][d]);
        for (int d = 0; d < 4; d++)
            assert_int_equal(strtoll(NEXT(), NULL, 10), s->strides[t][d]);
        assert_int_equal(strtoull(NEXT(), NULL, 10), s->off[t]);
        assert_int_equal(strtoull(NEXT(), NULL, 10), s->bytes[t]);
        assert_int_equal(atoi(NEXT()), s->is_out[t]);
        assert_int_equal(strtoull(NEXT(), NULL, 10), s->is_out[t] ? s->snap[t] : 0);
        assert_int_equal(atoi(NEXT()), LAYOUT_GUARD);
    }
    assert_null(strtok_r(NULL, " ", &save));
#undef NEXT
    free(line);

    /* The sizes of slot 1's o: [1, 13, 4, 16], strides [832, 64, 16, 1]. */
    line = layout_bind_line(&a, 1, "n");
    char want[128];
    snprintf(want, sizeof want, " o 0 4 1 13 4 16 832 64 16 1 %zu %zu 1 %zu 4096", s->off[3], s->bytes[3],
             s->snap[3]);
    assert_contains(line, want);
    assert_true(strncmp(line, "bind n 1 7 batch 1 seq 13 q_heads 4 kv_heads 2 head_dim 16 causal 1 scale 0.25 4 q ",
                        strlen("bind n 1 7 batch 1 seq 13 q_heads 4 kv_heads 2 head_dim 16 causal 1 scale 0.25 4 q ")) ==
                0);
    free(line);
}

/* ---- the sampled check of timed runs (src/worker/validate.c) ----------- */

/* One f32 output of n elements, guards around it, in a block as the
 * arena holds it; expected[i] = sin(i). */
typedef struct sampled_case {
    slot_layout_t sl;
    uint8_t *block, *pristine;
    float *expected;
} sampled_case_t;

static void sampled_case(sampled_case_t *c, size_t n)
{
    memset(&c->sl, 0, sizeof c->sl);
    c->sl.n_tensors = 1;
    c->sl.is_out[0] = 1;
    c->sl.numel[0] = n;
    c->sl.dtype[0] = EMILE_DTYPE_F32;
    c->sl.bytes[0] = n * 4;
    snprintf(c->sl.tname[0], sizeof c->sl.tname[0], "o");
    c->sl.begin = 0;
    c->sl.off[0] = LAYOUT_GUARD;
    c->sl.end = n * 4 + 2 * LAYOUT_GUARD;
    c->pristine = malloc(c->sl.end);
    c->block = malloc(c->sl.end);
    c->expected = malloc(n * 4);
    assert_non_null(c->pristine);
    assert_non_null(c->block);
    assert_non_null(c->expected);
    for (size_t i = 0; i < c->sl.end; i++)
        c->pristine[i] = (uint8_t)(i * 37 + 11);
    memcpy(c->block, c->pristine, c->sl.end);
    for (size_t i = 0; i < n; i++) {
        c->expected[i] = (float)sin((double)i);
        memcpy(c->block + LAYOUT_GUARD + 4 * i, &c->expected[i], 4);
    }
}

static void sampled_case_free(sampled_case_t *c)
{
    free(c->block);
    free(c->pristine);
    free(c->expected);
}

static int sampled(sampled_case_t *c, uint64_t seed, char *msg, size_t n)
{
    rng_t r;
    rng_seed(&r, seed);
    return validate_output_sampled(&c->sl, 0, c->block, c->expected, c->pristine, 1e-4, &r, "timed", 3, msg, n);
}

/* Right outputs pass; a NaN stretch two strides long (a stride: n /
 * VALIDATE_SAMPLE_N) is caught on every draw, wherever it lies, and the
 * message names an element inside it, the tail of an output whose size is
 * not a multiple of the sample included (the remainder is spread over the
 * strides, not left to the last); a wrong element of a small output (every element checked) is
 * always caught; a written guard is caught. */
static void test_sampled_check(void **state)
{
    (void)state;
    char msg[512];
    sampled_case_t c;
    size_t n = (size_t)1 << 21, stride = 2 * (n / VALIDATE_SAMPLE_N);
    sampled_case(&c, n);
    for (uint64_t seed = 1; seed <= 5; seed++)
        assert_int_equal(sampled(&c, seed, msg, sizeof msg), 0);
    float nan = NAN;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        size_t at = (size_t)(seed * 2654435761u) % (n - stride);
        for (size_t i = at; i < at + stride; i++)
            memcpy(c.block + LAYOUT_GUARD + 4 * i, &nan, 4);
        assert_int_equal(sampled(&c, seed, msg, sizeof msg), -1);
        size_t el = 0;
        const char *p = strstr(msg, "at element ");
        assert_non_null(p);
        sscanf(p + 11, "%zu", &el);
        if (el < at || el >= at + stride)
            fail_msg("element %zu reported, the stretch is [%zu, %zu): %s", el, at, at + stride, msg);
        for (size_t i = at; i < at + stride; i++)
            memcpy(c.block + LAYOUT_GUARD + 4 * i, &c.expected[i], 4);
    }
    c.block[LAYOUT_GUARD + 4 * n + 5] ^= 1;      /* past the end */
    assert_int_equal(sampled(&c, 9, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "out of bounds"));
    sampled_case_free(&c);

    /* 2m - 1 elements: strides of 1 and 2; the last 4 NaN. */
    n = 2 * (size_t)VALIDATE_SAMPLE_N - 1;
    sampled_case(&c, n);
    for (size_t i = n - 4; i < n; i++)
        memcpy(c.block + LAYOUT_GUARD + 4 * i, &nan, 4);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        assert_int_equal(sampled(&c, seed, msg, sizeof msg), -1);
        size_t el = 0;
        const char *p = strstr(msg, "at element ");
        assert_non_null(p);
        sscanf(p + 11, "%zu", &el);
        assert_true(el >= n - 4 && el < n);
    }
    sampled_case_free(&c);

    sampled_case(&c, 1000);                       /* fewer than the sample: all of it */
    float off = c.expected[777] + 0.5f;
    memcpy(c.block + LAYOUT_GUARD + 4 * 777, &off, 4);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        assert_int_equal(sampled(&c, seed, msg, sizeof msg), -1);
        assert_non_null(strstr(msg, "at element 777"));
    }
    sampled_case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_f64_round_trip),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_f16_values),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_bf16_values),
        cmocka_unit_test(test_bf16_exhaustive),
        cmocka_unit_test(test_bf16_no_double_rounding),
        cmocka_unit_test(test_nearest_random),
        cmocka_unit_test(test_compare_identical),
        cmocka_unit_test(test_compare_by_hand),
        cmocka_unit_test(test_compare_zeros_fail),
        cmocka_unit_test(test_compare_nonfinite),
        cmocka_unit_test(test_compare_noise),
        cmocka_unit_test(test_layout_slots),
        cmocka_unit_test(test_layout_errors),
        cmocka_unit_test(test_layout_odd_sizes),
        cmocka_unit_test(test_layout_bind_line),
        cmocka_unit_test(test_sampled_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
