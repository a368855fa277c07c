/* cmd_profile.c -- `emile profile TASK KERNEL`: the profile_kernel tool on
 * its own.  Exit 0 when the kernel is valid, 1 otherwise. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/lang.h"
#include "cli.h"
#include "report/report_md.h"
#include "util/fs.h"
#include "cook/cook.h"
#include "worker/evaluate.h"
#include "worker/worker_client.h"

int cmd_profile(int argc, char **argv)
{
    task_t t;
    task_init(&t);
    cli_common_t c;
    int rc = cli_parse(argc, argv, &t, &c, 1);
    if (rc != 0) {
        task_free(&t);
        return rc;
    }
    if (c.n_positional != 1) {
        fprintf(stderr, "emile: usage: emile profile TASK.json KERNEL [--json] [--counters] (or PROBLEM.py KERNEL)\n");
        task_free(&t);
        return 2;
    }
    if (t.problem_pending && (rc = cli_problem_resolve(&t, c.worker)) != 0) {
        task_free(&t);
        return rc;
    }
    char *src = fs_read_file(c.positional[0], 1 << 22, NULL);
    if (!src) {
        fprintf(stderr, "emile: cannot read kernel %s: %s\n", c.positional[0], strerror(errno));
        task_free(&t);
        return 2;
    }
    /* The kernel file's extension names its language (k.py on cuda: Triton). */
    const lang_t *by_ext = lang_for_path(t.backend, c.positional[0]);
    if (by_ext)
        snprintf(t.lang, sizeof t.lang, "%s", by_ext->name);
    /* A file of a language this backend does not build (k.py on cpu) is
     * bad input, not a C file that fails to compile. */
    const char *dot = strrchr(c.positional[0], '.');
    for (const lang_t *const *l = lang_all(); !by_ext && dot && *l; l++) {
        char why[300];
        if (strcmp((*l)->src_ext, dot) == 0 && !lang_for(t.backend, (*l)->name, why, sizeof why)) {
            fprintf(stderr, "emile: kernel %s is %s: %s\n", c.positional[0], (*l)->name, why);
            free(src);
            task_free(&t);
            return 2;
        }
    }
    char err[1024];
    json_t *device = cook_fetch_device(c.worker, t.backend, err, sizeof err);
    if (!device || worker_task_fits(&t, device, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        json_decref(device);
        free(src);
        task_free(&t);
        return device ? 2 : 1;
    }
    json_decref(device);
    worker_client_t w;
    if (worker_client_open(&w, c.worker, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        free(src);
        task_free(&t);
        return 1;
    }
    w.timeout_s = worker_client_evaluate_timeout(t.compile_limit_s, t.time_limit_s);
    json_t *req = json_object();
    json_object_set_new(req, "cmd", json_string("evaluate"));
    json_object_set_new(req, "task", task_to_json(&t));
    json_object_set_new(req, "kernel", json_pack("{ss}", "source", src));
    json_object_set_new(req, "options", json_pack("{sb}", "counters", c.counters));
    json_t *reply = worker_client_call(&w, req, err, sizeof err);
    json_decref(req);
    worker_client_close(&w);
    free(src);
    task_free(&t);
    if (!reply) {
        fprintf(stderr, "emile: %s\n", err);
        return 1;
    }
    const char *status = json_string_value(json_object_get(reply, "status"));
    int valid = status && strcmp(status, "valid") == 0;
    if (c.json) {
        char *s = json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
    } else if (valid) {
        char *table = report_profile_table(json_object_get(reply, "report"));
        printf("%s", table ? table : "");
        free(table);
    } else {
        const char *e = json_string_value(json_object_get(reply, "error"));
        printf("status: %s\nerror: %s\n", status ? status : "?", e ? e : "");
        const char *log = json_string_value(json_object_get(json_object_get(reply, "compile"), "log"));
        if (status && strcmp(status, "compile_error") == 0 && log)
            printf("compiler output:\n%s\n", log);
    }
    json_decref(reply);
    return valid ? 0 : 1;
}
