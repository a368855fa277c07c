/* cmd_cook.c -- `emile cook`, `emile resume`, `emile worker`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cook.h"
#include "worker/worker.h"

int cmd_cook(int argc, char **argv)
{
    task_t t;
    task_init(&t);
    cli_common_t c;
    int rc = cli_parse(argc, argv, &t, &c, 1);
    if (rc == 0 && c.n_positional > 0) {
        fprintf(stderr, "emile: unexpected argument '%s' (a task file ends in .json, a PyTorch problem in .py)\n",
                c.positional[0]);
        rc = 2;
    }
    if (rc == 0 && t.problem_pending)
        rc = cli_problem_resolve(&t, c.worker);
    if (rc == 0) {
        {
            cook_options_t o = {.store_path = c.store, .worker_cmd = c.worker, .events = c.events, .quiet = c.quiet};
            rc = cook_start(&t, &o);
        }
    }
    task_free(&t);
    return rc;
}

int cmd_resume(int argc, char **argv)
{
    cli_common_t c;
    int max_iters = -1;
    /* --max-iters is the one task flag resume takes. */
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--max-iters") == 0) {
            char *end = NULL;
            long v = strtol(argv[i + 1], &end, 10);
            if (!*argv[i + 1] || *end || v < 0 || v > 10000) {
                fprintf(stderr, "emile: --max-iters needs an integer between 0 and 10000 (got '%s')\n", argv[i + 1]);
                return 2;
            }
            max_iters = (int)v;
            memmove(&argv[i], &argv[i + 2], sizeof(char *) * (size_t)(argc - i - 2));
            argc -= 2;
            break;
        }
    if (cli_parse(argc, argv, NULL, &c, 0) != 0)
        return 2;
    char *end = NULL;
    long long run = c.n_positional == 1 ? strtoll(c.positional[0], &end, 10) : 0;
    if (run <= 0 || (end && *end)) {
        fprintf(stderr, "emile: usage: emile resume RUN [--max-iters N] [--store PATH]\n");
        return 2;
    }
    cook_options_t o = {.store_path = c.store, .worker_cmd = c.worker, .events = c.events, .quiet = c.quiet};
    return cook_resume(run, max_iters, &o);
}

int cmd_worker(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return worker_serve(stdin, stdout);
}
