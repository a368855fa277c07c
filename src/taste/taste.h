/*
 * taste.h -- the Tasting Room: one model, one prompt, generated twice, with
 * the reference attention and with a candidate kernel in the prefill slot;
 * reported side by side (time to first token, decode tokens per second,
 * whether the two generations agree and where they first diverge).
 *
 * On the cpu (the plain C engine, C kernels) or on cuda (the GPU engine
 * loaded from libemile-engine-cuda.so, CUDA kernels); the model is loaded
 * once and both sides run on it through the same slot (model.h), timed by
 * the same loop (generate.h).
 */
#ifndef EMILE_ENGINE_TASTE_H
#define EMILE_ENGINE_TASTE_H

#include <stdint.h>
#include <stdio.h>

#include "engine/breakdown.h"
#include "engine/generate.h"
#include "engine/op_slot.h"
#include "taste/taste_status.h"

typedef struct taste_opts {
    const char *model_dir;     /* Hugging Face checkpoint directory, or NULL */
    const char *random_shape;  /* "qwen3-4b", "qwen3-0.6b", "tiny" when no model_dir */
    uint64_t weight_seed;      /* seed of random weights */
    const char *tokenizer;     /* tokenizer.json; NULL: model_dir's, if any */
    const char *prompt;        /* text (needs a tokenizer); NULL: synthetic ids */
    int chat;                  /* wrap the prompt in the chat template */
    const char *prompt_ids;    /* file of whitespace-separated ids instead of text */
    int prompt_tokens;         /* synthetic prompt length when no text nor ids */
    const char *device;        /* an engine device (engine/model.h): the default
                                  backend's, or cuda */
    const char *reference;     /* .so/.c/.cu file or run id of the reference attention;
                                  NULL: built-in */
    const char *kernel;        /* .so/.c/.cu file or run id of the candidate; NULL: only
                                  the reference */
    const char *op_reference[ENGINE_OP_COUNT];  /* the reference side's kernel for each op
                                  slot (--reference OP=K; op_slot.h); NULL: the engine's
                                  own (the attention slot's: .reference) */
    const char *op_kernel[ENGINE_OP_COUNT];     /* the kernel side's (--kernel OP=K,
                                  --menu); NULL: the engine's own (attention: .kernel).
                                  Any of them set makes the second side */
    int breakdown;             /* after each side's timed generation, an untimed one
                                  with each op timed (model.h's profile): time per op per
                                  prefill and per decode step, against its floor */
    const char *store;         /* run store for run ids; NULL: the default store */
    int context;               /* KV cache positions (0: prompt + max_new) */
    int warmup;                /* untimed prefills per side first; -1: 1 on cuda, 0 on cpu */
    int no_sandbox;            /* 1: load and run the kernels in this process, without
                                  the worker's sandbox (taste_engine.h): debuggers,
                                  profilers, tests that count a fake library's calls;
                                  only for kernels you trust */
    engine_gen_opts_t gen;     /* gen.stop_id -2: <|im_end|> when the prompt went
                                  through the chat template, else none */
    int quiet;                 /* no generated text on out */
    int json;                  /* one JSON object on out instead of the table:
                                  {device, device_name, decode_path (the cpu model's
                                  own name, "graph", "stream"), [decode_path_note], prompt_tokens,
                                  runs: [{role, attention, ops: {op: label},
                                  ttft_ms, decode_tok_s, tokens, ids, [breakdown]}],
                                  agree, first_divergence} */
} taste_opts_t;

typedef struct taste_side {
    char label[256];           /* the attention slot's */
    char op_label[ENGINE_OP_COUNT][256];   /* every slot's ("builtin", a path, a run) */
    int has_profile;
    engine_profile_t profile;  /* the breakdown generation's (breakdown on) */
    engine_gen_stats_t stats;
    int *tokens;               /* generated ids (malloc'd) */
    int n;
} taste_side_t;

typedef struct taste_report {
    char device[16];           /* the engine device's name (engine/model.h) */
    char device_name[128];
    char decode_path[192];     /* the cpu model's name, "graph", or "stream (why)" */
    int n_prompt;
    taste_side_t side[2];      /* [0] reference, [1] kernel (when given) */
    int n_sides;
    qwen3_config_t config;     /* the model's shape (the breakdown's floors) */
    engine_ceilings_t ceilings;    /* for the breakdown's floors (gbs 0: unknown) */
    int agree;                 /* same tokens, same count */
    int first_divergence;      /* first position that differs, -1 when agree */
} taste_report_t;

/* Options with the defaults: cpu, greedy, 64 new tokens, tiny random
 * model, 32-token synthetic prompt, chat template on. */
taste_opts_t taste_defaults(void);

/*
 * Build the kernels (taste_kernel.h: files, or runs of the store), then
 * run the reference, then the kernel when given, each in its own
 * sandboxed child with the model loaded there (taste_engine.h; with
 * no_sandbox, both in this process on one model), and print the
 * side-by-side table (or JSON) on out.  The whole prompt is prefilled in
 * one chunk (one slot call per layer).  The sandbox forks: call this from
 * a single-threaded process (it refuses otherwise).  Returns 0 and fills
 * *rep (free with taste_report_free); TASTE_BAD_INPUT (taste_status.h) with
 * err for what the caller gave wrong, before any model is loaded or kernel
 * compiled; or -1 with err.
 */
int taste_run(const taste_opts_t *o, FILE *out, taste_report_t *rep, char *err,
              size_t errlen);
void taste_report_free(taste_report_t *rep);
/* The side-by-side table (or, json: the JSON object) taste_run prints;
 * for other harnesses with the same report (taste_hf.h). */
void taste_report_print(FILE *out, const taste_report_t *rep, int json);

/* `emile taste ARGS`: parse, run, print; 0 when both runs finished (even if
 * the generations diverge: the table says so), 1 on error, 2 on bad input
 * (the command line, or a file it names, is wrong). */
int engine_cli_taste(int argc, char **argv);

#endif /* EMILE_ENGINE_TASTE_H */
