/*
 * taste_engine.h -- the Tasting Room's two generations: the part of
 * `emile taste` that runs kernels.  By default each side runs in its own
 * child process under the worker's sandbox (taste_confine.h): the child
 * opens the model, confines itself, loads that side's kernel only,
 * generates, and sends back a report the parent checks; the streamed text
 * passes through a pipe to out.  With sandbox off (`--no-sandbox`, for
 * debuggers and for tests that count what a fake engine library was asked
 * to do) both sides run in this process on one model.
 */
#ifndef EMILE_ENGINE_TASTE_ENGINE_H
#define EMILE_ENGINE_TASTE_ENGINE_H

#include <stdio.h>

#include "engine/qwen3.h"
#include "taste/taste.h"
#include "engine/tokenizer.h"

typedef struct taste_engine_job {
    const taste_opts_t *o;     /* device, weights, generation options, warm-ups */
    qwen3_config_t c;
    const int *prompt;
    int n_prompt;
    tokenizer_t *tok;          /* for streaming text; NULL: none */
    int ctx;                   /* KV cache positions */
    int sides;                 /* 1: the reference only; 2: and the kernel */
    char so[2][ENGINE_OP_COUNT][4200];    /* prepared kernels per side and op slot
                                             ("" = the engine's own) */
    char label[2][ENGINE_OP_COUNT][256];
    int sandbox;               /* 1: in the confined child (the default) */
} taste_engine_job_t;

/*
 * Generate with each side's kernel in the slot; fills rep's sides,
 * n_sides, device_name and decode_path (not agree: the caller compares).
 * 0, or -1 with err: the engine's error, a forbidden system call named, or
 * how the child died.
 */
int taste_engine_run(const taste_engine_job_t *job, FILE *out, taste_report_t *rep,
                     char *err, size_t errlen);

#endif /* EMILE_ENGINE_TASTE_ENGINE_H */
