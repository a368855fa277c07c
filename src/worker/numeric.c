/* numeric.c -- see numeric.h. */
#include "numeric.h"

#include <math.h>
#include <string.h>

#include "emile.h"

static double half_to_double(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(m + 1024, e - 25);
    return s ? -v : v;
}

/* A double that is a normal number of the 16-bit format (exp_bits,
 * man_bits) rounded to it, ties to even, on the bits alone: the re-biased
 * exponent and the mantissa move together, so a carry out of the
 * mantissa rounds up the exponent, and one past the largest finite value
 * makes infinity.  0 for what it does not take (zero, subnormals of the
 * format, overflow before rounding, NaN, infinity): the slow paths below
 * do those.  Drawing a set's inputs spends most of its time here (tens of
 * millions of elements a candidate for the Qwen3-4B prefill). */
static int round_normal16(double d, int exp_bits, int man_bits, uint16_t *out)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    int bias = (1 << (exp_bits - 1)) - 1;
    int e = (int)((b >> 52) & 0x7ff) - 1023;
    if (e < 1 - bias || e > bias)
        return 0;
    uint64_t x = ((uint64_t)(e + bias) << 52) | (b & ((1ULL << 52) - 1));
    int sh = 52 - man_bits;
    x += (1ULL << (sh - 1)) - 1 + ((x >> sh) & 1);
    uint64_t r = x >> sh;
    uint16_t inf = (uint16_t)(((1u << exp_bits) - 1) << man_bits);
    *out = (uint16_t)((b >> 63) << 15) | (r >= inf ? inf : (uint16_t)r);
    return 1;
}

static uint16_t double_to_half(double d)
{
    uint16_t h;
    if (round_normal16(d, 5, 10, &h))
        return h;
    float f = (float)d;
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    if (isnan(f))
        return 0x7e00;
    double a = fabs(d);
    if (a >= 65520.0)
        return sign | 0x7c00;
    if (a < ldexp(1, -25))
        return sign;
    int e;
    frexp(a, &e);               /* a = m * 2^e, m in [0.5, 1) */
    int exp16 = e - 1 + 15;
    if (exp16 <= 0) {           /* subnormal: units of 2^-24 */
        double q = nearbyint(a * ldexp(1, 24));
        return sign | (uint16_t)q;
    }
    double mant = a / ldexp(1, e - 1) - 1.0;      /* [0, 1) */
    double q = nearbyint(mant * 1024.0);
    if (q >= 1024) {
        q = 0;
        exp16++;
    }
    if (exp16 >= 31)
        return sign | 0x7c00;
    return sign | (uint16_t)(exp16 << 10) | (uint16_t)q;
}

static double bf16_to_double(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* Round a double straight to bf16 (ties to even), not through float,
 * which would round twice. */
static uint16_t double_to_bf16(double d)
{
    uint16_t h;
    if (round_normal16(d, 8, 7, &h))
        return h;
    if (isnan(d))
        return 0x7fc0;
    uint16_t sign = signbit(d) ? 0x8000 : 0;
    double a = fabs(d);
    if (a == 0)
        return sign;
    if (isinf(a))
        return sign | 0x7f80;
    int e;
    frexp(a, &e);                   /* a = m * 2^e, m in [0.5, 1) */
    int ex = e - 1;                 /* a = 1.f * 2^ex */
    if (ex < -126)
        ex = -126;                  /* subnormals: quantum 2^-133 */
    double q = nearbyint(ldexp(a, 7 - ex));
    if (q >= 256) {
        q /= 2;
        ex++;
    }
    if (ex > 127)
        return sign | 0x7f80;
    if (q < 128)
        return sign | (uint16_t)q;  /* subnormal: exponent field 0 */
    return sign | (uint16_t)((ex + 127) << 7) | ((uint16_t)q & 0x7f);
}

double num_get(const void *base, int dtype, size_t i)
{
    switch (dtype) {
    case EMILE_DTYPE_F32: return ((const float *)base)[i];
    case EMILE_DTYPE_F64: return ((const double *)base)[i];
    case EMILE_DTYPE_F16: return half_to_double(((const uint16_t *)base)[i]);
    case EMILE_DTYPE_BF16: return bf16_to_double(((const uint16_t *)base)[i]);
    case EMILE_DTYPE_I32: return ((const int32_t *)base)[i];
    case EMILE_DTYPE_I64: return (double)((const int64_t *)base)[i];
    default: return NAN;
    }
}

void num_set(void *base, int dtype, size_t i, double v)
{
    switch (dtype) {
    case EMILE_DTYPE_F32: ((float *)base)[i] = (float)v; break;
    case EMILE_DTYPE_F64: ((double *)base)[i] = v; break;
    case EMILE_DTYPE_F16: ((uint16_t *)base)[i] = double_to_half(v); break;
    case EMILE_DTYPE_BF16: ((uint16_t *)base)[i] = double_to_bf16(v); break;
    case EMILE_DTYPE_I32: ((int32_t *)base)[i] = (int32_t)lrint(v); break;
    case EMILE_DTYPE_I64: ((int64_t *)base)[i] = (int64_t)llrint(v); break;
    default: break;
    }
}

int num_is_integer(int dtype)
{
    return dtype == EMILE_DTYPE_I32 || dtype == EMILE_DTYPE_I64;
}

static void compare(const void *out, int dtype, const void *ref, int ref_dtype, size_t n, double tol,
                    num_cmp_t *r)
{
    memset(r, 0, sizeof *r);
    r->first_bad = (size_t)-1;
    if (num_is_integer(dtype))
        tol = 0;                    /* an index (an argmax) is right or wrong */
    double ss = 0;
    size_t finite = 0;
    for (size_t i = 0; i < n; i++) {
        double b = num_get(ref, ref_dtype, i);
        if (isfinite(b)) {
            ss += b * b;
            finite++;
        }
    }
    r->rms_ref = finite ? sqrt(ss / (double)finite) : 0;
    double floor_ = r->rms_ref > 0 ? r->rms_ref : 1e-30;
    for (size_t i = 0; i < n; i++) {
        double a = num_get(out, dtype, i), b = num_get(ref, ref_dtype, i);
        double e;
        if (!isfinite(b)) {
            /* The reference's own non-finite values must be matched exactly. */
            e = (isnan(b) && isnan(a)) || a == b ? 0 : INFINITY;
        } else if (!isfinite(a)) {
            r->n_nonfinite++;
            e = INFINITY;
        } else {
            double d = fabs(a - b);
            if (d > r->max_abs_diff)
                r->max_abs_diff = d;
            e = d / (fabs(b) + floor_);
        }
        if (e > tol) {
            r->n_bad++;
            if (r->first_bad == (size_t)-1)
                r->first_bad = i;
        }
        if (e > r->max_err || (isinf(e) && !isinf(r->max_err))) {
            r->max_err = e;
            r->worst_index = i;
        }
    }
}

void num_compare(const void *out, const void *ref, int dtype, size_t n, double tol, num_cmp_t *r)
{
    compare(out, dtype, ref, dtype, n, tol, r);
}

void num_compare_f64(const void *out, int dtype, const double *ref, size_t n, double tol, num_cmp_t *r)
{
    compare(out, dtype, ref, EMILE_DTYPE_F64, n, tol, r);
}
