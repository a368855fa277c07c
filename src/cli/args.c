/* args.c -- option parsing shared by the commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "store/store.h"

/* Flags that take a value and go to the task (task_set keys). */
static const char *const task_flags[] = {
    "op", "batch", "seq", "q-heads", "kv-heads", "head-dim", "dtype", "reference", "target", "max-iters",
    "backend", "agent", "model", "base-url", "tolerance", "time-limit", "seed", "scale", "rows", "cols", "eps"};

static int is_task_flag(const char *name)
{
    for (size_t i = 0; i < sizeof task_flags / sizeof task_flags[0]; i++)
        if (strcmp(task_flags[i], name) == 0)
            return 1;
    return 0;
}

int cli_parse(int argc, char **argv, task_t *t, cli_common_t *c, int need_task)
{
    memset(c, 0, sizeof *c);
    char err[1024];
    /* The task file first, so flags override it wherever they stand. */
    const char *task_file = NULL;
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);
        if (argv[i][0] != '-' && len > 5 && strcmp(argv[i] + len - 5, ".json") == 0 && t) {
            task_file = argv[i];
            break;
        }
        if (argv[i][0] == '-' && argv[i][1] == '-' && (is_task_flag(argv[i] + 2) || !strcmp(argv[i], "--store") ||
                                                       !strcmp(argv[i], "--worker")))
            i++;
    }
    if (task_file && task_load_file(t, task_file, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a == task_file)
            continue;
        if (strncmp(a, "--", 2) != 0) {
            if (c->n_positional < 4)
                c->positional[c->n_positional++] = a;
            else {
                fprintf(stderr, "emile: unexpected argument '%s'\n", a);
                return 2;
            }
            continue;
        }
        const char *name = a + 2;
        if (!strcmp(name, "json")) c->json = 1;
        else if (!strcmp(name, "events")) c->events = 1;
        else if (!strcmp(name, "quiet")) c->quiet = 1;
        else if (!strcmp(name, "counters")) c->counters = 1;
        else if (!strcmp(name, "remeasure")) c->remeasure = 1;
        else if (!strcmp(name, "causal") && t) {
            if (task_set(t, "causal", "1", err, sizeof err) != 0) goto bad;
        } else if (!strcmp(name, "no-causal") && t) {
            if (task_set(t, "causal", "0", err, sizeof err) != 0) goto bad;
        } else if (!strcmp(name, "store") || !strcmp(name, "worker")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "emile: --%s needs a value\n", name);
                return 2;
            }
            if (name[0] == 's') c->store = argv[++i];
            else c->worker = argv[++i];
        } else if (t && is_task_flag(name)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "emile: --%s needs a value\n", name);
                return 2;
            }
            if (task_set(t, name, argv[++i], err, sizeof err) != 0) goto bad;
        } else {
            fprintf(stderr, "emile: unknown option '%s' (emile help)\n", a);
            return 2;
        }
    }
    if (need_task && t && task_finalize(t, err, sizeof err) != 0)
        goto bad;
    return 0;
bad:
    fprintf(stderr, "emile: %s\n", err);
    return 2;
}

int cli_open_store(const cli_common_t *c, int create_default, store_t **s)
{
    char path[4096];
    if (c->store) {
        if (!create_default && access(c->store, F_OK) != 0) {
            fprintf(stderr, "emile: no run store at %s\n", c->store);
            return 1;
        }
        if (store_open(c->store, 0, s) != 0) {
            fprintf(stderr, "emile: %s\n", store_last_open_error());
            return 1;
        }
        return 0;
    }
    if (store_default_path(path, sizeof path) != 0 || store_open(path, create_default, s) != 0) {
        fprintf(stderr, "emile: %s\n", store_last_open_error());
        return 1;
    }
    return 0;
}
