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

double stats_quantile(const double *v, int n, double q)
{
    if (n <= 0)
        return 0;
    double *s = malloc(sizeof(double) * (size_t)n);
    if (!s)
        return 0;
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double pos = q * (n - 1);
    int lo = (int)floor(pos), hi = (int)ceil(pos);
    double r = s[lo] + (s[hi] - s[lo]) * (pos - lo);
    free(s);
    return r;
}

int stats_median_settled(const double *v, int n, double rel)
{
    if (n < 5)
        return 0;
    double *s = malloc(sizeof(double) * (size_t)n);
    if (!s)
        return 0;
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double half = 0.98 * sqrt((double)n);
    int j = (int)floor(n / 2.0 - half), k = (int)ceil(1 + n / 2.0 + half);
    j = j < 1 ? 1 : j;
    k = k > n ? n : k;
    double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    int ok = med > 0 && s[k - 1] - s[j - 1] <= 2 * rel * med;
    free(s);
    return ok;
}
