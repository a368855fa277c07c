/*
 * taste_hf.h -- the Tasting Room's PyTorch side: transformers' Qwen3, run
 * twice on the same prompt and weights, once with its sdpa attention and
 * once with a kernel registered as an attention implementation through
 * transformers' AttentionInterface (python/emile/taste_hf.py), reported as
 * the C engine's tasting is (taste.h: TTFT, decode tok/s, same tokens).
 *
 * Each side is its own Python process, started with the allow-listed
 * environment in a session of its own and killed with us; before it loads
 * the kernel it confines itself with the C engine child's sandbox
 * (build/libemile-confine.so: network namespace and nobody when root, not
 * dumpable, the runner's seccomp filter, on the cpu no new executable
 * memory once the kernel is loaded).  The kernel takes the prefill's
 * attention; decode steps use sdpa on both sides (the C engine swaps only
 * its prefill slot too).
 */
#ifndef EMILE_TASTE_HF_H
#define EMILE_TASTE_HF_H

#include <stdio.h>

#include "taste/taste.h"

typedef struct taste_hf_opts {
    const char *hf_dir;        /* a Hugging Face checkpoint (config.json, safetensors) */
    const char *hf_random;     /* or random weights of a named shape (qwen3-4b, qwen3-0.6b, tiny) */
    unsigned long long seed;   /* random weights' and synthetic prompt's seed */
    const char *kernel;        /* .so/.c/.cu file or run id (its best) */
    const char *store;         /* run store for a run id */
    const char *device;        /* an engine device (engine/model.h): the cpu (f32) or
                                  cuda (bf16) */
    const char *prompt_ids;    /* file of ids; else prompt_tokens ids from the seed */
    int prompt_tokens;
    int max_new;
    int warmup;                /* untimed prefills per side; -1: 1 */
    double timeout_s;          /* per side */
    int no_sandbox;
    int json;
} taste_hf_opts_t;

taste_hf_opts_t taste_hf_defaults(void);

/* Build the kernel, run both sides, print the report on out (table or
 * JSON).  0 and *rep (taste_report_free), or -1 with err. */
int taste_hf_run(const taste_hf_opts_t *o, FILE *out, taste_report_t *rep, char *err, size_t errlen);

/* `emile taste --hf DIR | --hf-random SHAPE --kernel K [...]`: 0, 1 on a
 * failure, 2 on bad usage. */
int taste_hf_cli(int argc, char **argv);
/* 1 when argv asks for the PyTorch side (--hf or --hf-random). */
int taste_hf_wanted(int argc, char **argv);

#endif
