/*
 * generate.h -- the generation loop: prefill the prompt (through the
 * attention slot), then decode one token at a time, streaming each token to
 * a callback, and time it the way the Tasting Room reports it.  It runs on
 * an engine_model_t (model.h), so the cpu and cuda paths are timed by the
 * same code.
 */
#ifndef EMILE_ENGINE_GENERATE_H
#define EMILE_ENGINE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/qwen3.h"

/* Called once per generated token, as soon as it is known.  Return 0 to go
 * on, non-zero to stop after this token. */
typedef int (*engine_token_fn)(void *user, int token);

typedef struct engine_gen_opts {
    int max_new;           /* tokens to generate at most */
    float temperature;     /* <= 0: greedy (the default) */
    float top_p;           /* nucleus mass when sampling; >= 1: off */
    uint64_t seed;         /* sampler seed */
    int stop_id;           /* generation ends on this token (not emitted); -1: none */
} engine_gen_opts_t;

typedef struct engine_gen_stats {
    int n_prompt;
    int n_new;             /* tokens emitted */
    double ttft_s;         /* start to first token chosen (prefill + sample; on
                              the GPU the pick waits for the device) */
    double decode_s;       /* first token to the last one */
    double decode_tok_s;   /* (n_new - 1) / decode_s; 0 when n_new < 2 */
} engine_gen_stats_t;

/* Greedy, 256 new tokens, no stop token. */
engine_gen_opts_t engine_gen_defaults(void);

/*
 * Generate from a fresh cache: the prompt (n_prompt >= 1 tokens) is
 * prefilled in chunks of m->max_chunk (the first chunk's attention through
 * ops' attention slot), then tokens are decoded (the decode ops through
 * their slots; ops NULL: the engine's own everywhere) until max_new,
 * the stop token, the callback asks to stop or the context (m->max_seq) is
 * full.  Generated tokens go to out (room for max_new) when not NULL, and
 * to cb when not NULL.  Returns the number of tokens emitted, or -1 with err.
 */
int engine_generate_model(engine_model_t *m, engine_ops_t *ops, const int *prompt,
                          int n_prompt, const engine_gen_opts_t *opts, int *out,
                          engine_token_fn cb, void *user, engine_gen_stats_t *stats, char *err,
                          size_t errlen);

/* engine_generate_model on the plain C model over c, w and s (the prefill in
 * chunks of s->max_chunk, the context s->max_seq). */
int engine_generate(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                    attn_slot_t *slot, const int *prompt, int n_prompt,
                    const engine_gen_opts_t *opts, int *out, engine_token_fn cb, void *user,
                    engine_gen_stats_t *stats, char *err, size_t errlen);

#endif /* EMILE_ENGINE_GENERATE_H */
