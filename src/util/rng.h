/* rng.h -- the harness's random numbers (xoshiro256**): reproducible from a
 * seed the kernel never sees, fast enough to fill large inputs. */
#ifndef EMILE_RNG_H
#define EMILE_RNG_H

#include <stdint.h>

typedef struct rng { uint64_t s[4]; } rng_t;

void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_next(rng_t *r);
double rng_uniform(rng_t *r);           /* [0, 1) */
double rng_normal(rng_t *r);            /* N(0, 1) */
/* A fresh seed from the kernel's random source (getrandom), else mixing
 * time and address entropy (never shown to kernels).  xoshiro's state can
 * be recovered from a few of its outputs, which guard bytes show: sets a
 * kernel must not predict are drawn from generators seeded here, one a
 * set (task_state.c). */
uint64_t rng_entropy(void);

#endif
