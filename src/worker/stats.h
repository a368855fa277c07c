/* stats.h -- small order statistics for the timing policy. */
#ifndef EMILE_WORKER_STATS_H
#define EMILE_WORKER_STATS_H

/* The q-quantile (0..1, linear between order statistics) of n values
 * (the array is not changed); 0 when n <= 0. */
double stats_quantile(const double *v, int n, double q);

/* 1 when the median of n values is known to within rel (relative) at about
 * 95% confidence at this one look: the distribution-free interval between
 * order statistics n/2 - 0.98 sqrt(n) and 1 + n/2 + 0.98 sqrt(n) (1-based,
 * rounded outward) is at most 2 rel x the median wide.  0 for n < 5 or a
 * median <= 0. */
int stats_median_settled(const double *v, int n, double rel);

#endif
