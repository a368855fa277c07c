/* clock.h -- the monotonic clock in seconds (timeouts, elapsed times). */
#ifndef EMILE_CLOCK_H
#define EMILE_CLOCK_H

double clock_mono_s(void);

#endif
