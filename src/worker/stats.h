/* stats.h -- small order statistics for the timing policy. */
#ifndef EMILE_WORKER_STATS_H
#define EMILE_WORKER_STATS_H

/* The q-quantile (0..1, linear between order statistics) of n values
 * (the array is not changed); 0 when n <= 0. */
double stats_quantile(const double *v, int n, double q);

#endif
