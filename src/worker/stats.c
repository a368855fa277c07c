/* stats.c -- see stats.h. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A sorted copy of v[0..n-1] (malloc'd), or NULL. */
static double *sorted_copy(const double *v, int n)
{
    double *s = n > 0 ? malloc(sizeof(double) * (size_t)n) : NULL;
    if (s) {
        memcpy(s, v, sizeof(double) * (size_t)n);
        qsort(s, (size_t)n, sizeof *s, cmp_double);
    }
    return s;
}

double stats_quantile(const double *v, int n, double q)
{
    double *s = sorted_copy(v, n);
    if (!s)
        return 0;
    double pos = q * (n - 1);
    int lo = (int)floor(pos), hi = (int)ceil(pos);
    double r = s[lo] + (s[hi] - s[lo]) * (pos - lo);
    free(s);
    return r;
}

int stats_median_settled(const double *v, int n, double rel)
{
    double *s = n >= 5 ? sorted_copy(v, n) : NULL;
    if (!s)
        return 0;
    double half = 0.98 * sqrt((double)n);
    int j = (int)floor(n / 2.0 - half), k = (int)ceil(1 + n / 2.0 + half);
    j = j < 1 ? 1 : j;
    k = k > n ? n : k;
    double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    int ok = med > 0 && s[k - 1] - s[j - 1] <= 2 * rel * med;
    free(s);
    return ok;
}
