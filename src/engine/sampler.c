/*
 * sampler.c -- greedy, temperature and top-p sampling (see sampler.h).
 */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sampler_init(sampler_t *s, int vocab, float temperature, float top_p, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    if (vocab <= 0)
        return -1;
    s->vocab = vocab;
    s->temperature = temperature;
    s->top_p = top_p;
    /* xorshift needs a non-zero state; mix the seed so 0, 1, 2 differ well */
    s->rng = (seed ^ 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
    if (s->rng == 0)
        s->rng = 1;
    s->probs = malloc((size_t)vocab * sizeof *s->probs);
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    if (!s->probs || !s->cand) {
        sampler_free(s);
        return -1;
    }
    return 0;
}

void sampler_free(sampler_t *s)
{
    free(s->probs);
    free(s->cand);
    memset(s, 0, sizeof *s);
}

int sampler_argmax(const float *logits, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

/* Uniform in [0, 1) from xorshift64*. */
static float next_uniform(sampler_t *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (float)((s->rng * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

/* Most likely first; equal probabilities by token id, so the order (and a
 * seeded run) does not depend on qsort's algorithm. */
static int by_prob_desc(const void *a, const void *b)
{
    const struct sampler_cand *x = a, *y = b;
    if (x->p != y->p)
        return (x->p < y->p) - (x->p > y->p);
    return (x->id > y->id) - (x->id < y->id);
}

int sampler_sample(sampler_t *s, const float *logits)
{
    int n = s->vocab;
    if (s->temperature <= 0.0f)
        return sampler_argmax(logits, n);
    /* softmax of logits / T, shifted by the max for stability */
    float mx = logits[sampler_argmax(logits, n)], sum = 0.0f;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < n; i++)
        s->probs[i] /= sum;
    float r = next_uniform(s);
    if (s->top_p <= 0.0f || s->top_p >= 1.0f) {
        float cdf = 0.0f;
        for (int i = 0; i < n; i++) {
            cdf += s->probs[i];
            if (r < cdf)
                return i;
        }
        return n - 1;      /* rounding left cdf a hair under 1 */
    }
    /* Nucleus: the smallest set of most likely tokens whose mass reaches
     * top_p.  Tokens under (1 - top_p) / (n - 1) can never be in it (the
     * rest would already hold top_p), so only the others are sorted. */
    float cutoff = (1.0f - s->top_p) / (float)(n > 1 ? n - 1 : 1);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (s->probs[i] >= cutoff)
            s->cand[m++] = (struct sampler_cand){ s->probs[i], i };
    qsort(s->cand, (size_t)m, sizeof *s->cand, by_prob_desc);
    float mass = 0.0f;
    int last = m - 1;
    for (int i = 0; i < m; i++) {
        mass += s->cand[i].p;
        if (mass >= s->top_p) {
            last = i;
            break;
        }
    }
    float target = r * mass, cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += s->cand[i].p;
        if (target < cdf)
            return s->cand[i].id;
    }
    return s->cand[last].id;
}
