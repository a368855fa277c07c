/* cli.h -- the commands of `emile`, one function each (argc/argv after the
 * command name), returning the process exit status. */
#ifndef EMILE_CLI_H
#define EMILE_CLI_H

int cmd_cook(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_worker(int argc, char **argv);

/* Shared option parsing: fills a task from a file and/or flags. */
#include "store/store.h"
#include "task/task.h"
#define CLI_MAX_WORKERS 16
typedef struct cli_common {
    const char *store;
    const char *worker;              /* the first --worker */
    const char *workers[CLI_MAX_WORKERS]; /* every --worker, in order */
    int n_workers;
    int per_worker;                  /* --workers N (0: not given) */
    int confirm;                     /* --confirm N (-1: not given) */
    double worker_timeout;           /* --worker-timeout S (0: not given) */
    int iter;                        /* --iter N (-1: not given) */
    int json, events, quiet, counters, remeasure;
    const char *positional[4];
    int n_positional;
} cli_common_t;

/* Parse argv: task flags go into t (when t != NULL), common options into
 * c; the first positional argument ending in .json is the task file.
 * Returns 0, or 2 after printing a message (an unknown flag, a bad value,
 * a --store whose folder does not exist). */
int cli_parse(int argc, char **argv, task_t *t, cli_common_t *c, int need_task);
/* 1 when --name takes a value (a task flag, --store, --worker, ...). */
int cli_flag_takes_value(const char *name);
/* 1 when --name is an option of some command. */
int cli_flag_known(const char *name);

/* A task whose reference is a PyTorch problem (.py, problem_pending):
 * the worker describes it and its op is built from that (cli_problem.c).
 * Returns 0, or the exit status after printing "emile: ..." (2 for a
 * problem that cannot be an oracle or a missing Python/torch). */
int cli_problem_resolve(task_t *t, const char *worker_cmd);

/* "vs PyTorch: 2.1x eager (.. ms), 1.3x torch.compile (.. ms)" for the
 * best iteration of a run whose reference (history's iteration 0) measured
 * PyTorch's floors; 1 when written, 0 when the run has none. */
#include <jansson.h>
int cli_floors_note(const json_t *history, const json_t *best, char *buf, size_t n);
/* The same line from the reference's floors object itself. */
int cli_floors_line(const json_t *floors, double best_ms, char *buf, size_t n);

/* What a command does with the run store, which decides what it may create
 * and what a missing store means. */
typedef enum cli_store_use {
    CLI_STORE_READ,  /* show, export, resume: a missing store is an error
                      * ("no run store at PATH yet"); nothing is created */
    CLI_STORE_LIST,  /* runs: a missing store is an empty list (0 with *s
                      * NULL); nothing is created */
    CLI_STORE_WRITE, /* cook: the file is created; so is the default's
                      * directory, but never one named by --store or
                      * $EMILE_STORE */
} cli_store_use_t;
/* Opens the store named by store_arg (--store), else the default
 * (store_default_location).  A directory named by --store or $EMILE_STORE
 * that does not exist is an error naming it, for every use.  Returns 0;
 * 2 after "emile: ..." on stderr when the folder the user named (--store,
 * $EMILE_STORE) does not exist (bad input); 1 after it otherwise (no store
 * file yet, a store that cannot be opened). */
int cli_store_open(const char *store_arg, cli_store_use_t use, store_t **s);
int cli_open_store(const cli_common_t *c, cli_store_use_t use, store_t **s);

#endif
