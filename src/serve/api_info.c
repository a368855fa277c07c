/* api_info.c -- what the page needs to build its forms: the ready example
 * tasks, the builtin ops, the backends and their languages, the engine's
 * status; and a health check. */
#include "serve_internal.h"
#include "backend/backend.h"
#include "backend/lang.h"
#include "task/task.h"
#include "task/task_py.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXAMPLES 64

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

enum MHD_Result api_examples(request_t *r, int64_t id)
{
    json_t *list = json_array();
    DIR *d = r->s->examples_dir ? opendir(r->s->examples_dir) : NULL;
    char *names[MAX_EXAMPLES];
    int n = 0;
    struct dirent *e;
    while (d && n < MAX_EXAMPLES && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] != '.' && len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
            if ((names[n] = strdup(e->d_name)))
                n++;
    }
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        char path[4096], err[512] = "";
        snprintf(path, sizeof path, "%s/%s", r->s->examples_dir, names[i]);
        task_t t;
        task_init(&t);
        json_t *o = json_object();
        json_object_set_new(o, "file", json_string(names[i]));
        /* The task as the page will send it back: reference inlined. */
        int loaded = task_load_file(&t, path, err, sizeof err) == 0;
        if (loaded && t.problem_pending) {
            /* A PyTorch problem: a worker describes it when it is sent. */
            json_object_set_new(o, "name", json_string(t.name[0] ? t.name : names[i]));
            json_object_set_new(o, "task", task_problem_json(&t));
        } else if (loaded && task_finalize(&t, err, sizeof err) == 0) {
            json_object_set_new(o, "name", json_string(t.name[0] ? t.name : names[i]));
            json_object_set_new(o, "task", task_to_json(&t));
        } else {
            json_object_set_new(o, "name", json_string(names[i]));
            json_object_set_new(o, "error", json_string(err));
        }
        task_free(&t);
        json_array_append_new(list, o);
        free(names[i]);
    }
    json_t *o = json_object();
    json_object_set_new(o, "examples", list);
    return respond_json(r, 200, o);
}

enum MHD_Result api_ops(request_t *r, int64_t id)
{
    const op_t **ops;
    int n;
    op_list_builtin(&ops, &n);
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, op_to_json(ops[i]));
    json_t *o = json_object();
    json_object_set_new(o, "ops", list);
    return respond_json(r, 200, o);
}

/* The backend registry (backend.h), the default first, each with its
 * languages (its default first): the page's backend choices come from
 * here, not from a list of its own.  Nothing is measured or probed (that
 * is `emile devices`, on a worker). */
enum MHD_Result api_backends(request_t *r, int64_t id)
{
    json_t *list = json_array();
    for (const backend_t *const *b = backend_all(); *b; b++) {
        json_t *langs = json_array();
        for (int i = 0; (*b)->langs && (*b)->langs[i]; i++) {
            const lang_t *l = lang_find((*b)->langs[i]);
            if (l)
                json_array_append_new(langs, json_pack("{ssssssss}", "name", l->name, "tag", l->tag, "title",
                                                       l->title, "src_ext", l->src_ext));
        }
        json_array_append_new(list, json_pack("{sssbssssso}", "name", (*b)->name, "default",
                                              *b == backend_default(), "kind",
                                              (*b)->kind == BACKEND_GPU ? "gpu" : "host", "device_words",
                                              (*b)->device_words ? (*b)->device_words : "", "langs", langs));
    }
    json_t *o = json_object();
    json_object_set_new(o, "backends", list);
    return respond_json(r, 200, o);
}

enum MHD_Result api_health(request_t *r, int64_t id)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "token_required", json_boolean(serve_token(r->s) != NULL));
    json_object_set_new(o, "store", json_string(r->s->store_path));
    return respond_json(r, 200, o);
}
