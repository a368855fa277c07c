/*
 * generate.c -- prefill, then decode with streaming (see generate.h), on
 * any engine_model_t (model.h): the timing is the same for cpu and cuda.
 */
#include "engine/generate.h"

#include <stdio.h>
#include <string.h>

#include "engine/sampler.h"
#include "util/clock.h"

engine_gen_opts_t engine_gen_defaults(void)
{
    engine_gen_opts_t o = { .max_new = 256, .temperature = 0.0f, .top_p = 1.0f,
                            .seed = 0, .stop_id = -1 };
    return o;
}

int engine_generate_model(engine_model_t *m, engine_ops_t *ops, const int *prompt,
                          int n_prompt, const engine_gen_opts_t *opts, int *out,
                          engine_token_fn cb, void *user, engine_gen_stats_t *stats, char *err,
                          size_t errlen)
{
    engine_gen_stats_t st = { .n_prompt = n_prompt };
    if (n_prompt < 1 || n_prompt >= m->max_seq || opts->max_new < 0) {
        snprintf(err, errlen, "generate: prompt of %d tokens does not fit a context of %d",
                 n_prompt, m->max_seq);
        return -1;
    }
    if (m->prepare && m->prepare(m, ops, err, errlen) != 0)
        return -1;
    sampler_t smp;
    if (sampler_init(&smp, m->c.vocab, opts->temperature, opts->top_p, opts->seed) != 0) {
        snprintf(err, errlen, "generate: out of memory for the sampler");
        return -1;
    }
    double t0 = clock_mono_s(), t_first = t0;
    int rc = 0, pos = 0, n = 0, tok = -1;

    /* prefill: the first chunk at position 0 goes through the slot; the
     * last one picks the first token */
    while (rc == 0 && pos < n_prompt) {
        int chunk = n_prompt - pos < m->max_chunk ? n_prompt - pos : m->max_chunk;
        int last = pos + chunk == n_prompt && opts->max_new > 0;
        rc = m->run(m, ops, prompt + pos, chunk, pos, &smp, last ? &tok : NULL, err, errlen);
        pos += chunk;
    }
    if (rc == 0 && opts->max_new > 0)
        t_first = clock_mono_s();
    /* decode: each step feeds the token just chosen and picks the next */
    while (rc == 0 && n < opts->max_new) {
        if (tok == opts->stop_id)
            break;
        if (out)
            out[n] = tok;
        n++;
        if (cb && cb(user, tok) != 0)
            break;
        if (n == opts->max_new || pos >= m->max_seq)
            break;
        rc = m->run(m, ops, &tok, 1, pos, &smp, &tok, err, errlen);
        pos++;
    }
    double t_end = clock_mono_s();
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

int engine_generate(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                    attn_slot_t *slot, const int *prompt, int n_prompt,
                    const engine_gen_opts_t *opts, int *out, engine_token_fn cb, void *user,
                    engine_gen_stats_t *stats, char *err, size_t errlen)
{
    engine_model_t m;
    if (engine_model_wrap_cpu(&m, c, w, s, err, errlen) != 0)
        return -1;
    engine_ops_t ops;
    engine_ops_init(&ops);
    if (slot)
        ops.slot[ENGINE_OP_ATTENTION] = *slot;
    int n = engine_generate_model(&m, &ops, prompt, n_prompt, opts, out, cb, user, stats, err,
                                  errlen);
    if (slot)
        slot->calls = ops.slot[ENGINE_OP_ATTENTION].calls;
    engine_model_close(&m);
    return n;
}
