/*
 * sampler.h -- picking the next token from logits: greedy (argmax) by
 * default, or temperature with nucleus (top-p) sampling from a seeded
 * generator, so a sampled run can be repeated exactly.
 */
#ifndef EMILE_ENGINE_SAMPLER_H
#define EMILE_ENGINE_SAMPLER_H

#include <stdint.h>

typedef struct sampler {
    int vocab;
    float temperature;     /* <= 0: greedy */
    float top_p;           /* in (0, 1]; >= 1 samples from the whole softmax */
    uint64_t rng;          /* xorshift64* state, never 0 */
    float *probs;          /* [vocab] scratch */
    struct sampler_cand { float p; int id; } *cand;   /* [vocab] nucleus scratch */
} sampler_t;

/* Allocate scratch for vocab tokens.  Returns 0, or -1 (bad vocab, out of
 * memory; *s then empty). */
int sampler_init(sampler_t *s, int vocab, float temperature, float top_p, uint64_t seed);
void sampler_free(sampler_t *s);

/* Index of the largest logit (the first one on ties). */
int sampler_argmax(const float *logits, int n);

/* The next token for these logits ([vocab] floats, not modified). */
int sampler_sample(sampler_t *s, const float *logits);

#endif /* EMILE_ENGINE_SAMPLER_H */
