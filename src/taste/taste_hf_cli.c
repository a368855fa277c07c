/* taste_hf_cli.c -- `emile taste --hf DIR | --hf-random SHAPE --kernel K`:
 * argument parsing for taste_hf_run (taste_hf.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "taste/taste_hf.h"

static void usage(FILE *f)
{
    fputs("usage: emile taste (--hf DIR | --hf-random SHAPE) --kernel K [options]\n"
          "Runs transformers' Qwen3 twice on the same prompt and weights, with its sdpa attention\n"
          "and with the kernel registered as an attention implementation (AttentionInterface),\n"
          "and prints them side by side, as the C engine's tasting does.  Each side is a Python\n"
          "process in the worker's sandbox (build/libemile-confine.so).\n"
          "  --hf DIR             Hugging Face Qwen3 checkpoint (config.json, safetensors)\n"
          "  --hf-random SHAPE    random weights: qwen3-4b, qwen3-0.6b or tiny\n"
          "  --kernel K           the attention kernel: a file (.so, .c, .cu) or a run id (its best)\n"
          "  --device cpu|cuda    f32 on the cpu (C kernels), bf16 on cuda (CUDA kernels)\n"
          "  --seed N             seed of the random weights and the synthetic prompt (1)\n"
          "  --prompt-ids FILE    the prompt as whitespace-separated ids (else --prompt-tokens)\n"
          "  --prompt-tokens N    synthetic prompt of N ids (32)\n"
          "  --max-new N          tokens to generate (64)\n"
          "  --warmup N           untimed prefills per side first (1: Python's first call pays\n"
          "                       lazy imports and allocations)\n"
          "  --timeout S          per side (1800)\n"
          "  --store PATH         run store for a run id\n"
          "  --json               one JSON object instead of the table\n"
          "  --no-sandbox         no sandbox in the Python sides (trusted kernels only)\n"
          "Needs Python with torch and transformers ($EMILE_PYTHON, else build/venv).\n", f);
}

int taste_hf_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--hf") == 0 || strcmp(argv[i], "--hf-random") == 0)
            return 1;
    return 0;
}

static int number(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "emile taste: %s wants a number in [%g, %g], not '%s'\n", opt, lo, hi, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int taste_hf_cli(int argc, char **argv)
{
    taste_hf_opts_t o = taste_hf_defaults();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { o.json = 1; continue; }
        if (!strcmp(a, "--no-sandbox")) { o.no_sandbox = 1; continue; }
        if (!strcmp(a, "--quiet")) continue;
        if (!v || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "emile taste: %s %s\n", a, v ? "is not an option" : "needs a value");
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--hf")) o.hf_dir = v;
        else if (!strcmp(a, "--hf-random")) o.hf_random = v;
        else if (!strcmp(a, "--kernel")) o.kernel = v;
        else if (!strcmp(a, "--store")) o.store = v;
        else if (!strcmp(a, "--prompt-ids")) o.prompt_ids = v;
        else if (!strcmp(a, "--device")) {
            if (!engine_device_find(v)) {
                fprintf(stderr, "emile taste: --device is one of %s, not '%s'\n", engine_device_names(), v);
                return 2;
            }
            o.device = v;
        } else if (!strcmp(a, "--seed")) {
            if (number(a, v, 0, 9.007199254740992e15, &x)) return 2;
            o.seed = (unsigned long long)x;
        } else if (!strcmp(a, "--prompt-tokens")) {
            if (number(a, v, 1, 1 << 20, &x)) return 2;
            o.prompt_tokens = (int)x;
        } else if (!strcmp(a, "--max-new")) {
            if (number(a, v, 1, 1 << 20, &x)) return 2;
            o.max_new = (int)x;
        } else if (!strcmp(a, "--warmup")) {
            if (number(a, v, 0, 100, &x)) return 2;
            o.warmup = (int)x;
        } else if (!strcmp(a, "--timeout")) {
            if (number(a, v, 1, 86400, &x)) return 2;
            o.timeout_s = x;
        } else {
            fprintf(stderr, "emile taste: unknown option %s (with --hf: emile taste --hf --help)\n", a);
            return 2;
        }
    }
    if (!o.hf_dir == !o.hf_random) {
        fprintf(stderr, "emile taste: give one of --hf DIR and --hf-random SHAPE\n");
        return 2;
    }
    if (o.hf_random && strcmp(o.hf_random, "tiny") != 0 && strcmp(o.hf_random, "qwen3-0.6b") != 0 &&
        strcmp(o.hf_random, "qwen3-4b") != 0) {
        fprintf(stderr, "emile taste: unknown shape '%s' (qwen3-4b, qwen3-0.6b, tiny)\n", o.hf_random);
        return 2;
    }
    if (!o.kernel) {
        fprintf(stderr, "emile taste: --hf needs --kernel (a file or a run id): the side to compare with sdpa\n");
        return 2;
    }
    char err[4096] = "";
    taste_report_t rep;
    if (taste_hf_run(&o, stdout, &rep, err, sizeof err) != 0) {
        fprintf(stderr, "emile taste: %s\n", err);
        return 1;
    }
    taste_report_free(&rep);
    return 0;
}
