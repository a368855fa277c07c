/* numeric.h -- element conversions between the ABI's dtypes and double, and
 * the error metric every validation uses.
 *
 * Error metric: err_i = |out_i - ref_i| / (|ref_i| + rms(ref)); a check
 * passes when max_i err_i <= tol and no output is NaN or Inf where the
 * reference is finite.  The rms term keeps elements near zero from blowing
 * up the ratio, and makes the bound scale with the output's magnitude, so an
 * all-zero output scores ~1 and never passes. */
#ifndef EMILE_NUMERIC_H
#define EMILE_NUMERIC_H

#include <stddef.h>
#include <stdint.h>

double num_get(const void *base, int dtype, size_t i);
/* i32 or i64: an index or a count, compared exactly and never scaled. */
int num_is_integer(int dtype);
void num_set(void *base, int dtype, size_t i, double v);

typedef struct num_cmp {
    double max_err;        /* the metric above */
    double rms_ref;
    double max_abs_diff;
    size_t n_nonfinite;    /* NaN/Inf in out where ref is finite */
    size_t worst_index;
    size_t first_bad;      /* first element over tol, or (size_t)-1 */
    size_t n_bad;
} num_cmp_t;

void num_compare(const void *out, const void *ref, int dtype, size_t n, double tol, num_cmp_t *r);
/* Same, reference given in double (the float64 oracle). */
void num_compare_f64(const void *out, int dtype, const double *ref, size_t n, double tol, num_cmp_t *r);

#endif
