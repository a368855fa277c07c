/* clock.h -- the monotonic clock in seconds (timeouts, elapsed times). */
#ifndef EMILE_CLOCK_H
#define EMILE_CLOCK_H

#include <time.h>

double clock_mono_s(void);

/* The CLOCK_MONOTONIC instant s seconds from now, for waits that take an
 * absolute deadline (pthread_cond_timedwait on a CLOCK_MONOTONIC
 * condition: a change of the wall clock moves nothing). */
struct timespec clock_mono_after(double s);

#endif
