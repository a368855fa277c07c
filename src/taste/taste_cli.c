/*
 * taste_cli.c -- `emile taste`: argument parsing for taste_run (taste.h).
 * The usage text is also how `emile serve` finds out that the engine is
 * here (it looks for "usage: emile taste").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taste/taste.h"

static void usage(FILE *f)
{
    fputs("usage: emile taste (--model DIR | --random SHAPE [--seed N]) [options]\n"
          "Runs Qwen3 twice on the same prompt and weights, with the reference attention\n"
          "and with --kernel in the prefill slot, and prints them side by side.\n"
          "  --device cpu|cuda    the plain C engine (C kernels, default) or the GPU engine\n"
          "                       (CUDA kernels; needs build/libemile-engine-cuda.so, or\n"
          "                       $EMILE_ENGINE_CUDA, and a GPU)\n"
          "  --model DIR          Hugging Face checkpoint (config.json, safetensors,\n"
          "                       tokenizer.json)\n"
          "  --random SHAPE       random weights: qwen3-4b, qwen3-0.6b or tiny (default)\n"
          "  --seed N             seed of the random weights and prompt (1)\n"
          "  --tokenizer PATH     tokenizer.json (default: the model's)\n"
          "  --prompt TEXT        prompt text (needs a tokenizer)\n"
          "  --no-chat            do not wrap the prompt in the chat template\n"
          "  --prompt-ids FILE    prompt as whitespace-separated token ids\n"
          "  --prompt-tokens N    synthetic prompt of N ids when no text nor ids (32)\n"
          "  --reference K        reference attention (built-in): a kernel file (.so, or\n"
          "                       .c / .cu compiled here) or a run id (its task's reference)\n"
          "  --kernel K           candidate attention: a kernel file or a run id (its best\n"
          "                       iteration)\n"
          "  --store PATH         run store for run ids (default: the default store)\n"
          "  --max-new N          tokens to generate (64)\n"
          "  --temperature T      0 = greedy (default)\n"
          "  --top-p P            nucleus mass when sampling (1)\n"
          "  --sample-seed N      sampler seed (0)\n"
          "  --stop ID            stop token (default: <|im_end|> with the chat template)\n"
          "  --context N          KV cache positions (prompt + max-new)\n"
          "  --warmup N           untimed prefills per side before timing (1 on cuda, 0 on cpu)\n"
          "  --quiet              do not print the generated text\n"
          "  --json               one JSON object instead of the table\n"
          "  --no-sandbox         run the kernels in this process instead of the sandboxed\n"
          "                       engine child (debuggers, profilers; trusted kernels only)\n", f);
}

/* Parse a number with its bounds; 0 or -1 with a message on stderr. */
static int num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "emile taste: %s wants a number in [%g, %g], not '%s'\n", opt, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Options that take a value, each followed by a space. */
static const char VALUE_OPTS[] = " --model --random --tokenizer --prompt --reference --kernel "
    "--seed --sample-seed --prompt-tokens --max-new --context --temperature --top-p --stop "
    "--device --store --prompt-ids --warmup ";

int engine_cli_taste(int argc, char **argv)
{
    taste_opts_t o = taste_defaults();
    o.gen.stop_id = -2;                      /* automatic, see taste.h */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        int takes = 1, bad = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--no-chat") == 0) {
            o.chat = 0; takes = 0;
        } else if (strcmp(a, "--quiet") == 0) {
            o.quiet = 1; takes = 0;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1; takes = 0;
        } else if (strcmp(a, "--no-sandbox") == 0) {
            o.no_sandbox = 1; takes = 0;
        } else if (strncmp(a, "--", 2) != 0 || !strstr(VALUE_OPTS, a) ||
                   strstr(VALUE_OPTS, a)[strlen(a)] != ' ') {
            fprintf(stderr, "emile taste: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (!v) {
            bad = 1;
        } else if (strcmp(a, "--model") == 0) {
            o.model_dir = v;
        } else if (strcmp(a, "--random") == 0) {
            o.random_shape = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            o.tokenizer = v;
        } else if (strcmp(a, "--prompt") == 0) {
            o.prompt = v;
        } else if (strcmp(a, "--reference") == 0) {
            o.reference = v;
        } else if (strcmp(a, "--kernel") == 0) {
            o.kernel = v;
        } else if (strcmp(a, "--device") == 0) {
            o.device = v;
            if (strcmp(v, "cpu") != 0 && strcmp(v, "cuda") != 0) {
                fprintf(stderr, "emile taste: --device is cpu or cuda, not '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--store") == 0) {
            o.store = v;
        } else if (strcmp(a, "--prompt-ids") == 0) {
            o.prompt_ids = v;
        } else if (strcmp(a, "--warmup") == 0) {
            if ((bad = num(a, v, 0, 100, &x)) == 0) o.warmup = (int)x;
        } else if (strcmp(a, "--seed") == 0) {
            if ((bad = num(a, v, 0, 9.007199254740992e15, &x)) == 0) o.weight_seed = (uint64_t)x;
        } else if (strcmp(a, "--sample-seed") == 0) {
            if ((bad = num(a, v, 0, 9.007199254740992e15, &x)) == 0) o.gen.seed = (uint64_t)x;
        } else if (strcmp(a, "--prompt-tokens") == 0) {
            if ((bad = num(a, v, 1, 1 << 20, &x)) == 0) o.prompt_tokens = (int)x;
        } else if (strcmp(a, "--max-new") == 0) {
            if ((bad = num(a, v, 0, 1 << 20, &x)) == 0) o.gen.max_new = (int)x;
        } else if (strcmp(a, "--context") == 0) {
            if ((bad = num(a, v, 1, 1 << 22, &x)) == 0) o.context = (int)x;
        } else if (strcmp(a, "--temperature") == 0) {
            if ((bad = num(a, v, 0, 100, &x)) == 0) o.gen.temperature = (float)x;
        } else if (strcmp(a, "--top-p") == 0) {
            if ((bad = num(a, v, 0, 1, &x)) == 0) o.gen.top_p = (float)x;
        } else if (strcmp(a, "--stop") == 0) {
            if ((bad = num(a, v, -1, 1 << 30, &x)) == 0) o.gen.stop_id = (int)x;
        } else {
            fprintf(stderr, "emile taste: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            if (bad > 0)
                fprintf(stderr, "emile taste: %s needs a value\n", a);
            return 2;
        }
        i += takes;
    }
    if (o.prompt && o.prompt_ids) {
        fprintf(stderr, "emile taste: --prompt and --prompt-ids: give one of them\n");
        return 2;
    }
    char err[4096] = "";
    taste_report_t rep;
    if (taste_run(&o, stdout, &rep, err, sizeof err) != 0) {
        fprintf(stderr, "emile taste: %s\n", err);
        return 1;
    }
    taste_report_free(&rep);
    return 0;
}
