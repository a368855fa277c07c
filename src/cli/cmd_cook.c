/* cmd_cook.c -- `emile cook`, `emile resume`, `emile worker`.
 *
 * A cook of one task (a task file and/or flags), or a menu of several on
 * one pool of workers: a menu file ({"menu": [task, "task.json", ...]})
 * and/or list values of shape flags (--seq 1024,2048,4096: one task per
 * value; several lists: every combination). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cook.h"
#include "worker/worker.h"

#define MENU_MAX 64

/* Task flags whose value may be a list (the shape and its dtype). */
static const char *const listable[] = {"batch", "seq", "q-heads", "kv-heads", "head-dim", "dtype",
                                       "rows", "cols", "eps", "target", "max-iters"};

typedef struct axis {
    int argi;                  /* where its value sits in args */
    const char *flag;
    char *copy;                /* the list, split in place */
    char *values[MENU_MAX];
    int n;
} axis_t;

static int is_listable(const char *flag)
{
    for (size_t i = 0; i < sizeof listable / sizeof listable[0]; i++)
        if (strcmp(listable[i], flag) == 0)
            return 1;
    return 0;
}

/* Positional arguments that cannot be a task: a directory, or a file
 * ending neither in .json nor in .py (a PyTorch problem).  0, or 2 after the message. */
static int check_positionals(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0) {
            if (!cli_flag_known(a + 2))
                return 0;              /* cli_parse names it */
            i += cli_flag_takes_value(a + 2);
            continue;
        }
        struct stat st;
        size_t len = strlen(a);
        if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
            fprintf(stderr, "emile: %s is a directory, not a task file (emile cook TASK.json, e.g. "
                            "examples/cpu_attention.json, or the task as flags: emile help)\n", a);
            return 2;
        }
        if ((len <= 5 || strcmp(a + len - 5, ".json") != 0) && (len <= 3 || strcmp(a + len - 3, ".py") != 0)) {
            fprintf(stderr, "emile: unexpected argument '%s' (a task file ends in .json, a PyTorch problem in .py)\n",
                    a);
            return 2;
        }
    }
    return 0;
}

/* The menu of the first .json argument, when it is a menu file (new
 * reference, its index in *at), else NULL.  A file that cannot be read is
 * left to the task loader, whose words name the problem. */
static json_t *menu_of(int argc, char **argv, int *at)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            i += cli_flag_takes_value(argv[i] + 2);
            continue;
        }
        json_t *j = json_load_file(argv[i], 0, NULL);
        json_t *m = json_incref(json_object_get(j, "menu"));
        json_decref(j);
        *at = i;
        return m;
    }
    return NULL;
}

/* Split the list values of shape flags into axes.  The number of tasks
 * (the product of their sizes), or -1 after a message. */
static int find_axes(int argc, char **argv, axis_t *axes, int *n_axes)
{
    int combos = 1;
    *n_axes = 0;
    for (int i = 0; i + 1 < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0)
            continue;
        const char *flag = argv[i] + 2;
        if (!cli_flag_takes_value(flag))
            continue;
        if (!is_listable(flag) || !strchr(argv[i + 1], ',')) {
            i++;
            continue;
        }
        if (*n_axes == 8) {
            fprintf(stderr, "emile: at most 8 flags with lists of values\n");
            return -1;
        }
        axis_t *a = &axes[(*n_axes)++];
        a->argi = i + 1;
        a->flag = flag;
        a->copy = strdup(argv[i + 1]);
        a->n = 0;
        for (char *save = NULL, *v = strtok_r(a->copy, ",", &save); v; v = strtok_r(NULL, ",", &save))
            if (a->n < MENU_MAX)
                a->values[a->n++] = v;
        if (a->n == 0) {
            fprintf(stderr, "emile: --%s has an empty list\n", flag);
            return -1;
        }
        combos *= a->n;
        if (combos > MENU_MAX) {
            fprintf(stderr, "emile: the lists make more than %d tasks\n", MENU_MAX);
            return -1;
        }
        i++;
    }
    return combos;
}

/* One task: entry (a menu entry: a path or an object, relative to
 * base_dir), or args' task file and flags.  0, or 2 after a message. */
static int load_one(task_t *t, const json_t *entry, const char *base_dir, int argc, char **argv,
                    cli_common_t *c)
{
    char err[1024];
    task_init(t);
    if (entry) {
        char path[4096];
        int rc;
        if (json_is_string(entry)) {
            const char *p = json_string_value(entry);
            if (p[0] == '/')
                snprintf(path, sizeof path, "%.4000s", p);
            else
                snprintf(path, sizeof path, "%.2000s/%.2000s", base_dir, p);
            rc = task_load_file(t, path, err, sizeof err);
        } else {
            rc = task_from_json(t, entry, base_dir, err, sizeof err);
        }
        if (rc != 0) {
            fprintf(stderr, "emile: a task of the menu: %s\n", err);
            return 2;
        }
    }
    if (cli_parse(argc, argv, t, c, 0) != 0)
        return 2;
    /* A PyTorch problem: its op comes from the worker's oracle, which
     * finalizes the task (cli_problem.c). */
    if (t->problem_pending)
        return cli_problem_resolve(t, c->worker);
    if (task_finalize(t, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        return 2;
    }
    return 0;
}

static void options_of(const cli_common_t *c, cli_cook_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->store_path = c->store;
    o->workers = c->workers;
    o->n_workers = c->n_workers;
    o->per_worker = c->per_worker;
    o->confirm_rounds = c->confirm;
    o->worker_timeout_s = c->worker_timeout;
    o->events = c->events;
    o->quiet = c->quiet;
}

int cmd_cook(int argc, char **argv)
{
    if (check_positionals(argc, argv) != 0)
        return 2;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    task_t *tasks = calloc(MENU_MAX, sizeof *tasks);
    task_t *ptrs[MENU_MAX];
    axis_t axes[8];
    int n_axes = 0, n_tasks = 0, rc = 2;
    cli_common_t c;
    if (!args || !tasks) {
        fprintf(stderr, "emile: out of memory\n");
        goto out;
    }
    memcpy(args, argv, sizeof *args * (size_t)argc);
    int nargs = argc, menu_at = -1;
    json_t *menu = menu_of(nargs, args, &menu_at);
    char base_dir[4096] = ".";
    if (menu) {
        if (!json_is_array(menu) || json_array_size(menu) == 0) {
            fprintf(stderr, "emile: %s: \"menu\" must be a list of tasks (objects or task files)\n",
                    args[menu_at]);
            json_decref(menu);
            goto out;
        }
        const char *slash = strrchr(args[menu_at], '/');
        size_t dir_len = slash ? (size_t)(slash - args[menu_at]) : 0;
        if (slash && dir_len < sizeof base_dir) {
            memcpy(base_dir, args[menu_at], dir_len);
            base_dir[dir_len] = '\0';
        }
        memmove(&args[menu_at], &args[menu_at + 1], sizeof *args * (size_t)(nargs - menu_at - 1));
        nargs--;
    }
    int combos = find_axes(nargs, args, axes, &n_axes);
    size_t entries = menu ? json_array_size(menu) : 1;
    if (combos < 0 || entries * (size_t)combos > MENU_MAX) {
        if (combos >= 0)
            fprintf(stderr, "emile: the menu makes more than %d tasks\n", MENU_MAX);
        json_decref(menu);
        goto out;
    }
    rc = 0;
    for (size_t e = 0; e < entries && rc == 0; e++)
        for (int k = 0; k < combos && rc == 0; k++) {
            /* The k-th combination of the lists' values. */
            char suffix[256] = "";
            for (int a = 0, rest = k; a < n_axes; a++) {
                const char *v = axes[a].values[rest % axes[a].n];
                rest /= axes[a].n;
                args[axes[a].argi] = (char *)v;
                size_t len = strlen(suffix);
                snprintf(suffix + len, sizeof suffix - len, " %s=%s", axes[a].flag, v);
            }
            task_t *t = &tasks[n_tasks++];
            rc = load_one(t, menu ? json_array_get(menu, e) : NULL, base_dir, nargs, args, &c);
            if (rc == 0 && n_axes > 0 && t->name[0]) {
                size_t len = strlen(t->name);
                snprintf(t->name + len, sizeof t->name - len, "%s", suffix);
            }
        }
    json_decref(menu);
    if (rc != 0)
        goto out;
    for (int i = 0; i < n_tasks; i++)
        ptrs[i] = &tasks[i];
    cli_cook_options_t o;
    options_of(&c, &o);
    rc = cli_cook_start(ptrs, n_tasks, &o);
out:
    for (int i = 0; i < n_tasks; i++)
        task_free(&tasks[i]);
    for (int a = 0; a < n_axes; a++)
        free(axes[a].copy);
    free(tasks);
    free(args);
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
    cli_cook_options_t o;
    options_of(&c, &o);
    return cli_cook_resume(run, max_iters, &o);
}

int cmd_worker(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return worker_serve(stdin, stdout);
}
