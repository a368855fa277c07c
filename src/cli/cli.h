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
typedef struct cli_common {
    const char *store;
    const char *worker;
    int json, events, quiet, counters, remeasure;
    const char *positional[4];
    int n_positional;
} cli_common_t;

/* Parse argv: task flags go into t (when t != NULL), common options into
 * c; the first positional argument ending in .json is the task file.
 * Returns 0, or 2 after printing a message. */
int cli_parse(int argc, char **argv, task_t *t, cli_common_t *c, int need_task);
int cli_open_store(const cli_common_t *c, int create_default, store_t **s);

#endif
