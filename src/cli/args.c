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
    "backend", "lang", "agent", "model", "base-url", "tolerance", "time-limit", "seed", "scale", "rows", "cols", "eps",
    "const", "param"};

static int is_task_flag(const char *name)
{
    for (size_t i = 0; i < sizeof task_flags / sizeof task_flags[0]; i++)
        if (strcmp(task_flags[i], name) == 0)
            return 1;
    return 0;
}

/* Options that take a value and are not the task's. */
static const char *const value_flags[] = {"store", "worker", "workers", "confirm", "worker-timeout", "iter"};

static int is_value_flag(const char *name)
{
    for (size_t i = 0; i < sizeof value_flags / sizeof value_flags[0]; i++)
        if (strcmp(value_flags[i], name) == 0)
            return 1;
    return 0;
}

int cli_flag_takes_value(const char *name)
{
    return is_task_flag(name) || is_value_flag(name);
}

int cli_flag_known(const char *name)
{
    static const char *const switches[] = {"json", "events", "quiet", "counters", "remeasure", "causal",
                                           "no-causal"};
    for (size_t i = 0; i < sizeof switches / sizeof switches[0]; i++)
        if (strcmp(switches[i], name) == 0)
            return 1;
    return cli_flag_takes_value(name);
}

/* An integer in [lo, hi] for --name; 0, or -1 after the message. */
static int int_value(const char *name, const char *v, long lo, long hi, int *out)
{
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "emile: --%s needs an integer between %ld and %ld (got '%s')\n", name, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* A value option into c; 0, or 2 after the message. */
static int set_value(cli_common_t *c, const char *name, const char *v)
{
    if (!strcmp(name, "store")) {
        c->store = v;
    } else if (!strcmp(name, "worker")) {
        if (!*v) {
            fprintf(stderr, "emile: --worker needs a command (e.g. 'ssh gpu1 emile worker')\n");
            return 2;
        }
        if (c->n_workers == CLI_MAX_WORKERS) {
            fprintf(stderr, "emile: at most %d --worker commands (each may run several: --workers N)\n",
                    CLI_MAX_WORKERS);
            return 2;
        }
        if (!c->worker)
            c->worker = v;
        c->workers[c->n_workers++] = v;
    } else if (!strcmp(name, "workers")) {
        if (int_value(name, v, 1, 64, &c->per_worker) != 0)
            return 2;
    } else if (!strcmp(name, "confirm")) {
        if (int_value(name, v, 0, 10, &c->confirm) != 0)
            return 2;
    } else if (!strcmp(name, "iter")) {
        if (int_value(name, v, 0, 1000000, &c->iter) != 0)
            return 2;
    } else {
        char *end = NULL;
        double s = strtod(v, &end);
        if (!*v || *end || !(s > 0) || s > 1e6) {
            fprintf(stderr, "emile: --%s needs a number of seconds above 0 (got '%s')\n", name, v);
            return 2;
        }
        c->worker_timeout = s;
    }
    return 0;
}

int cli_parse(int argc, char **argv, task_t *t, cli_common_t *c, int need_task)
{
    memset(c, 0, sizeof *c);
    c->confirm = -1;
    c->iter = -1;
    char err[1024];
    /* The task file first, so flags override it wherever they stand. */
    const char *task_file = NULL, *problem_file = NULL;
    int n_plain = 0;
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);
        if (argv[i][0] != '-' && len > 5 && strcmp(argv[i] + len - 5, ".json") == 0 && t && !task_file)
            task_file = argv[i];
        /* A PyTorch problem file is a task too (its reference), where a
         * task stands: first.  A later .py is a kernel (Triton), as in
         * `emile profile TASK.json KERNEL.py` or `PROBLEM.py KERNEL.py`. */
        if (argv[i][0] != '-' && len > 3 && strcmp(argv[i] + len - 3, ".py") == 0 && t && !problem_file &&
            !task_file && n_plain == 0)
            problem_file = argv[i];
        if (argv[i][0] != '-')
            n_plain++;
        if (argv[i][0] == '-' && argv[i][1] == '-' && (is_task_flag(argv[i] + 2) || is_value_flag(argv[i] + 2)))
            i++;
    }
    if (task_file && task_load_file(t, task_file, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        return 2;
    }
    if (problem_file && task_set_reference_file(t, problem_file, err, sizeof err) != 0)
        goto bad;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a == task_file || a == problem_file)
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
        } else if (is_value_flag(name)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "emile: --%s needs a value\n", name);
                return 2;
            }
            if (set_value(c, name, argv[++i]) != 0)
                return 2;
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
    /* A --store whose folder is missing is a typo: refused before any work
     * (a cook would otherwise measure the device first). */
    if (c->store && store_check_named_path(c->store, err, sizeof err) != 0) {
        fprintf(stderr, "emile: --store %s: %s\n", c->store, err);
        return 2;
    }
    if (need_task && t && !t->problem_pending && task_finalize(t, err, sizeof err) != 0)
        goto bad;
    return 0;
bad:
    fprintf(stderr, "emile: %s\n", err);
    return 2;
}

int cli_store_open(const char *store_arg, cli_store_use_t use, store_t **s)
{
    char path[4096];
    store_origin_t origin = STORE_FROM_ENV;
    *s = NULL;
    if (store_arg) {
        snprintf(path, sizeof path, "%s", store_arg);
    } else if (store_default_location(path, sizeof path, &origin) != 0) {
        fprintf(stderr, "emile: %s\n", store_last_open_error());
        return 1;
    }
    int from_env = !store_arg && origin == STORE_FROM_ENV;
    int flags = use == CLI_STORE_WRITE ? 0 : STORE_OPEN_EXISTING;
    if (use == CLI_STORE_WRITE && !store_arg && !from_env)
        flags |= STORE_OPEN_CREATE_DIRS;
    if (store_open(path, flags, s) == 0)
        return 0;
    store_missing_t missing = store_last_open_missing();
    /* The default's directory is only made by the first cook: before that,
     * a reader finds no store, as when the file is missing. */
    if (missing == STORE_MISSING_DIR && !store_arg && !from_env)
        missing = STORE_MISSING_FILE;
    if (missing == STORE_MISSING_FILE && use == CLI_STORE_LIST)
        return 0;
    if (missing == STORE_MISSING_FILE) {
        if (store_arg)
            fprintf(stderr, "emile: no run store at %s yet (cook something first, or check --store)\n", path);
        else if (from_env)
            fprintf(stderr, "emile: no run store at %s yet (EMILE_STORE names it; cook something first, "
                            "or fix EMILE_STORE)\n", path);
        else
            fprintf(stderr, "emile: no run store at %s yet (cook something first, or --store PATH)\n", path);
    } else if (from_env && missing == STORE_MISSING_DIR) {
        /* A typo in the variable is the likely cause: name it. */
        fprintf(stderr, "emile: EMILE_STORE=%s: %s (a typo? emile does not create the folder EMILE_STORE "
                        "names)\n", path, store_last_open_error());
    } else if (from_env) {
        fprintf(stderr, "emile: EMILE_STORE=%s: %s\n", path, store_last_open_error());
    } else {
        fprintf(stderr, "emile: %s\n", store_last_open_error());
    }
    /* A folder that does not exist is a typo in what the user named: bad
     * input, as for --store.  No store file yet is no run yet (1, as a run
     * number not in the store). */
    return missing == STORE_MISSING_DIR ? 2 : 1;
}

int cli_open_store(const cli_common_t *c, cli_store_use_t use, store_t **s)
{
    return cli_store_open(c->store, use, s);
}
