/* main.c -- `emile COMMAND ...`: dispatch to the commands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "taste/taste.h"
#include "taste/taste_hf.h"
#include "serve/serve.h"

static void usage(FILE *f)
{
    fprintf(f,
            "emile -- an autonomous kernel-writing agent\n\n"
            "usage: emile COMMAND [options]\n\n"
            "  cook TASK.json|PROBLEM.py [flags]  run the loop: reference, then agent proposals, until the target\n"
            "                             share of the roofline or the iteration budget is reached\n"
            "      flags: --op attention --batch N --seq N --q-heads N --kv-heads N --head-dim N\n"
            "             --causal|--no-causal --dtype f32|f16|bf16 --reference FILE --target PCT\n"
            "             --max-iters N --backend cpu|cuda --lang c|cuda|triton --agent builtin|anthropic|openai\n"
            "             --model NAME --base-url URL --events --quiet\n"
            "             --workers N (evaluate N candidates at once) --confirm N (re-measures of a\n"
            "             new best or a noisy result; 0: off) --worker-timeout S\n"
            "             --param NAME=N (any parameter of the op, e.g. vocab=32768 for lm_head)\n"
            "             lists make a menu: --seq 1024,2048,4096; or a menu file {\"menu\": [...]}\n"
            "  profile TASK.json KERNEL   compile, validate and profile one kernel [--json] [--counters]\n"
            "  runs                       list runs\n"
            "  show RUN                   a run's iterations [--json]; --iter N: one in full (its\n"
            "                             compiler's log, re-measures, lost workers)\n"
            "  export RUN DIR             best kernel source and .so, report.md/json, roofline.svg\n"
            "  resume RUN [--max-iters N] continue a run that was stopped or killed\n"
            "  devices [BACKEND]          backends found and their measured ceilings [--remeasure] [--json]\n"
            "  serve [--host H --port P]  the web UI (Kitchen and Tasting Room)\n"
            "  taste --random qwen3-4b --kernel RUN|FILE   the Qwen3 engine: reference attention vs a kernel,\n"
            "                             same prompt and weights: TTFT, decode tok/s, agreement\n"
            "                             [--device cpu|cuda] [--reference RUN|FILE] (taste --help)\n"
            "  taste --hf DIR|--hf-random SHAPE --kernel RUN|FILE   the same with transformers' Qwen3:\n"
            "                             sdpa vs the kernel as an attention implementation\n"
            "  worker                     the sandboxed evaluation worker (JSON lines on stdin/stdout)\n\n"
            "common: --store PATH (run store; default ~/.local/share/emile/runs.db)\n"
            "        --worker CMD (e.g. 'ssh gpu1 emile worker'; repeat it for several; {i} is the\n"
            "        copy's index with --workers N)\n");
}

/* "--help" or "-h" among a known command's arguments (before any "--"):
 * the usage, on stdout, and exit 0 (serve and taste print their own). */
static int wants_help(const char *cmd, int n, char **rest)
{
    static const char *const known[] = {"cook", "resume", "profile", "runs", "show", "export", "devices", "worker"};
    int is_known = 0;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        is_known |= !strcmp(cmd, known[k]);
    for (int i = 0; is_known && i < n && strcmp(rest[i], "--"); i++)
        if (!strcmp(rest[i], "--help") || !strcmp(rest[i], "-h"))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int n = argc - 2;
    char **rest = argv + 2;
    if (wants_help(cmd, n, rest)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "cook")) return cmd_cook(n, rest);
    if (!strcmp(cmd, "resume")) return cmd_resume(n, rest);
    if (!strcmp(cmd, "profile")) return cmd_profile(n, rest);
    if (!strcmp(cmd, "runs")) return cmd_runs(n, rest);
    if (!strcmp(cmd, "show")) return cmd_show(n, rest);
    if (!strcmp(cmd, "export")) return cmd_export(n, rest);
    if (!strcmp(cmd, "devices")) return cmd_devices(n, rest);
    if (!strcmp(cmd, "worker")) return cmd_worker(n, rest);
    if (!strcmp(cmd, "serve")) return serve_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "taste") && taste_hf_wanted(argc - 1, argv + 1)) return taste_hf_cli(argc - 1, argv + 1);
    if (!strcmp(cmd, "taste")) return engine_cli_taste(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "emile: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
