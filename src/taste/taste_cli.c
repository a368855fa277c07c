/*
 * taste_cli.c -- `emile taste`: argument parsing for taste_run (taste.h).
 * The usage text is also how `emile serve` finds out that the engine is
 * here (it looks for "usage: emile taste").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/model.h"
#include "store/store.h"
#include "taste/taste.h"
#include "taste/taste_kernel.h"

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
          "  --kernel OP=K        the candidate side's kernel for any op slot: attention,\n"
          "                       decode_attention, qkv_proj, o_proj, gate_up, down_proj,\n"
          "                       lm_head (kernels/OP/op.json); repeat for several ops\n"
          "  --reference OP=K     the reference side's kernel for an op slot (the engine's\n"
          "                       own op otherwise)\n"
          "  --menu FILE          the candidate side's kernels from a JSON object\n"
          "                       {\"OP\": K, ...} (K a file, relative to FILE, or a run id;\n"
          "                       \"reference\": {\"OP\": K} for the reference side)\n"
          "  --breakdown          after each side's timed generation, one more with every op\n"
          "                       timed (CUDA events on the GPU): time per op per prefill and\n"
          "                       per decode step, and each op's share of its own floor\n"
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
    "--device --store --prompt-ids --warmup --menu ";

/* Strings the options point into that this file made (menu entries). */
typedef struct owned {
    char *s[2 * ENGINE_OP_COUNT];
    int n;
} owned_t;

/* --kernel / --reference V: "OP=K" for an op slot, else (a plain kernel)
 * the attention slot's.  0, or 2 with a message (an op given twice). */
static int set_kernel(taste_opts_t *o, int side, const char *flag, const char *v)
{
    const char *eq = strchr(v, '=');
    int op = -1;
    if (eq) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - v), v);
        op = engine_op_from_name(name);
    }
    const char **slots = side == 0 ? o->op_reference : o->op_kernel;
    const char *k = op >= 0 ? eq + 1 : v;
    if (op < 0)
        op = ENGINE_OP_ATTENTION;
    const char *plain = side == 0 ? o->reference : o->kernel;
    if (slots[op] || (op == ENGINE_OP_ATTENTION && plain)) {
        fprintf(stderr, "emile taste: %s gives the %s slot twice\n", flag, engine_op_name(op));
        return 2;
    }
    if (!*k) {
        fprintf(stderr, "emile taste: %s %s= names no kernel\n", flag, engine_op_name(op));
        return 2;
    }
    slots[op] = k;
    return 0;
}

/* One side's entries of a menu object: {"OP": "file" | run id}; files
 * relative to dir.  0, or 2 with a message. */
static int menu_side(taste_opts_t *o, int side, const json_t *j, const char *dir,
                     const char *path, owned_t *own)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        if (side == 1 && strcmp(key, "reference") == 0)
            continue;
        int op = engine_op_from_name(key);
        if (op < 0) {
            fprintf(stderr, "emile taste: %s: unknown op slot \"%s\" (attention, "
                    "decode_attention, qkv_proj, o_proj, gate_up, down_proj, lm_head)\n", path,
                    key);
            return 2;
        }
        char buf[8192];
        if (json_is_integer(v) && json_integer_value(v) > 0)
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        else if (json_is_string(v) && json_string_value(v)[0] &&
                 (json_string_value(v)[0] == '/' || taste_kernel_is_run(json_string_value(v))))
            snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_string(v) && json_string_value(v)[0])
            snprintf(buf, sizeof buf, "%s/%s", dir, json_string_value(v));
        else {
            fprintf(stderr, "emile taste: %s: \"%s\" wants a kernel file or a run id\n", path,
                    key);
            return 2;
        }
        if (own->n >= (int)(sizeof own->s / sizeof own->s[0]) || !(own->s[own->n] = strdup(buf)))
            return 2;
        const char *k = own->s[own->n++];
        const char **slots = side == 0 ? o->op_reference : o->op_kernel;
        if (slots[op] || (op == ENGINE_OP_ATTENTION && (side == 0 ? o->reference : o->kernel))) {
            fprintf(stderr, "emile taste: %s gives the %s slot twice (--menu and a flag)\n",
                    path, key);
            return 2;
        }
        slots[op] = k;
    }
    return 0;
}

/* --menu FILE: the kernel side's slots, and its "reference" object's. */
static int load_menu(taste_opts_t *o, const char *path, owned_t *own)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        fprintf(stderr, "emile taste: --menu %s: %s (line %d)\n", path, je.text, je.line);
        return 2;
    }
    if (!json_is_object(j)) {
        fprintf(stderr, "emile taste: --menu %s: a menu is a JSON object {\"OP\": KERNEL}\n",
                path);
        json_decref(j);
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int rc = menu_side(o, 1, j, dir, path, own);
    const json_t *ref = json_object_get(j, "reference");
    if (rc == 0 && ref && !json_is_object(ref)) {
        fprintf(stderr, "emile taste: --menu %s: \"reference\" is an object {\"OP\": KERNEL}\n",
                path);
        rc = 2;
    } else if (rc == 0 && ref) {
        rc = menu_side(o, 0, ref, dir, path, own);
    }
    json_decref(j);
    return rc;
}

static int parse_and_run(int argc, char **argv, owned_t *own);

int engine_cli_taste(int argc, char **argv)
{
    owned_t own = { .n = 0 };
    int rc = parse_and_run(argc, argv, &own);
    for (int i = 0; i < own.n; i++)
        free(own.s[i]);
    return rc;
}

static int parse_and_run(int argc, char **argv, owned_t *own)
{
    taste_opts_t o = taste_defaults();
    o.gen.stop_id = -2;                      /* automatic, see taste.h */
    const char *menu = NULL;
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
        } else if (strcmp(a, "--breakdown") == 0) {
            o.breakdown = 1; takes = 0;
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
            if (set_kernel(&o, 0, a, v) != 0)
                return 2;
        } else if (strcmp(a, "--kernel") == 0) {
            if (set_kernel(&o, 1, a, v) != 0)
                return 2;
        } else if (strcmp(a, "--menu") == 0) {
            if (menu) {
                fprintf(stderr, "emile taste: --menu given twice\n");
                return 2;
            }
            menu = v;
        } else if (strcmp(a, "--device") == 0) {
            o.device = v;
            if (!engine_device_find(v)) {
                fprintf(stderr, "emile taste: --device is one of %s, not '%s'\n", engine_device_names(), v);
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
    if (menu && load_menu(&o, menu, own) != 0)
        return 2;
    char err[4096] = "";
    if (o.store && store_check_named_path(o.store, err, sizeof err) != 0) {
        fprintf(stderr, "emile taste: --store %s: %s\n", o.store, err);
        return 2;
    }
    taste_report_t rep;
    int rc = taste_run(&o, stdout, &rep, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "emile taste: %s\n", err);
        return rc == TASTE_BAD_INPUT ? 2 : 1;
    }
    taste_report_free(&rep);
    return 0;
}
