/*
 * generate.c -- prefill, then decode with streaming (see generate.h).
 */
#include "engine/generate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/sampler.h"

engine_gen_opts_t engine_gen_defaults(void)
{
    engine_gen_opts_t o = { .max_new = 256, .temperature = 0.0f, .top_p = 1.0f,
                            .seed = 0, .stop_id = -1 };
    return o;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int engine_generate(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                    attn_slot_t *slot, const int *prompt, int n_prompt,
                    const engine_gen_opts_t *opts, int *out, engine_token_fn cb, void *user,
                    engine_gen_stats_t *stats, char *err, size_t errlen)
{
    engine_gen_stats_t st = { .n_prompt = n_prompt };
    if (n_prompt < 1 || n_prompt >= s->max_seq || opts->max_new < 0) {
        snprintf(err, errlen, "generate: prompt of %d tokens does not fit a context of %d",
                 n_prompt, s->max_seq);
        return -1;
    }
    sampler_t smp;
    if (sampler_init(&smp, c->vocab, opts->temperature, opts->top_p, opts->seed) != 0) {
        snprintf(err, errlen, "generate: out of memory for the sampler");
        return -1;
    }
    double t0 = now_s(), t_first = t0;
    int rc = 0, pos = 0, n = 0;

    /* prefill: the first chunk at position 0 goes through the slot */
    while (rc == 0 && pos < n_prompt) {
        int chunk = n_prompt - pos < s->max_chunk ? n_prompt - pos : s->max_chunk;
        rc = qwen3_forward(c, w, s, slot, prompt + pos, chunk, pos, 0, err, errlen);
        pos += chunk;
    }
    /* decode: s->logits row 0 holds the last position's logits */
    while (rc == 0 && n < opts->max_new) {
        int tok = sampler_sample(&smp, s->logits);
        if (n == 0)
            t_first = now_s();
        if (tok == opts->stop_id)
            break;
        if (out)
            out[n] = tok;
        n++;
        if (cb && cb(user, tok) != 0)
            break;
        if (n == opts->max_new || pos >= s->max_seq)
            break;
        rc = qwen3_forward(c, w, s, slot, &tok, 1, pos, 0, err, errlen);
        pos++;
    }
    double t_end = now_s();
    sampler_free(&smp);
    if (rc != 0)
        return -1;
    st.n_new = n;
    st.ttft_s = t_first - t0;
    st.decode_s = t_end - t_first;
    st.decode_tok_s = n > 1 && st.decode_s > 0 ? (n - 1) / st.decode_s : 0.0;
    if (stats)
        *stats = st;
    return n;
}
