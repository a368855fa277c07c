/* backend.c -- the backend registry and the ceilings cache shared by all
 * backends. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/paths.h"
#include "sandbox/sandbox.h"

extern const backend_t backend_cpu;
extern const backend_t backend_cuda;

/* The registry: one line per backend, the default first.  The rest of
 * the table is room for backend_register. */
static const backend_t *backend_registry[BACKEND_MAX + 1] = {&backend_cpu, &backend_cuda};

const backend_t *const *backend_all(void)
{
    return backend_registry;
}

const backend_t *backend_default(void)
{
    return backend_registry[0];
}

int backend_register(const backend_t *b)
{
    int i = 0;
    while (backend_registry[i])
        i++;
    if (!b || !b->name || backend_find(b->name) || i >= BACKEND_MAX)
        return -1;
    backend_registry[i] = b;
    return 0;
}

const backend_t *backend_find(const char *name)
{
    for (int i = 0; name && backend_registry[i]; i++)
        if (strcmp(name, backend_registry[i]->name) == 0)
            return backend_registry[i];
    return NULL;
}

const char *backend_names(void)
{
    static char names[256];
    static int listed;         /* how many names[] holds (backend_register adds) */
    int count = 0;
    while (backend_registry[count])
        count++;
    if (count != listed) {
        names[0] = 0;
        listed = count;
        for (int i = 0; backend_registry[i]; i++) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", backend_registry[i]->name);
        }
    }
    return names;
}

int backend_argv_add(char **argv, int *k, int max, char **buf, size_t *left, const char *s)
{
    size_t len = strlen(s) + 1;
    if (*k + 1 >= max || len > *left)
        return -1;
    memcpy(*buf, s, len);
    argv[(*k)++] = *buf;
    *buf += len;
    *left -= len;
    argv[*k] = NULL;
    return 0;
}

static void cache_path(const char *key, char *buf, size_t n)
{
    char safe[256];
    snprintf(safe, sizeof safe, "%s", key);
    for (char *c = safe; *c; c++)
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') && *c != '-')
            *c = '_';
    snprintf(buf, n, "%s/device-%s.json", emile_cache_dir(), safe);
}

/* Every number in fresh that the earlier measurement beat takes the
 * earlier value (nested objects too): a ceiling is the best this machine
 * has shown, and a re-measurement on a loaded machine reads low.  A
 * ceiling too low would make honest kernels look faster than the
 * machine. */
static void keep_best(json_t *fresh, const json_t *earlier)
{
    const char *k;
    json_t *v;
    json_object_foreach(fresh, k, v) {
        const json_t *e = json_object_get(earlier, k);
        if (json_is_object(v) && json_is_object(e))
            keep_best(v, e);
        else if (json_is_number(v) && json_is_number(e) && json_number_value(e) > json_number_value(v))
            json_object_set_new(fresh, k, json_deep_copy(e));
    }
}

int backend_device(const backend_t *b, int remeasure, json_t **device, char *err, size_t n)
{
    json_t *dev = NULL;
    if (b->available(err, n) != 0)
        return -1;
    if (b->describe(&dev, err, n) != 0)
        return -1;
    const char *key = json_string_value(json_object_get(dev, "key"));
    char path[1024];
    cache_path(key ? key : b->name, path, sizeof path);
    if (!remeasure) {
        json_t *cached = json_load_file(path, 0, NULL);
        json_t *c = cached ? json_object_get(cached, "ceilings") : NULL;
        if (c && json_is_object(c)) {
            json_object_set(dev, "ceilings", c);
            json_object_set_new(dev, "cached", json_true());
            json_decref(cached);
            *device = dev;
            return 0;
        }
        json_decref(cached);
    }
    char work[512];
    if (fs_mkdtemp("emile-ceil-", work, sizeof work) != 0) {
        snprintf(err, n, "cannot create a temporary directory");
        json_decref(dev);
        return -1;
    }
    json_t *ceil = NULL;
    int rc = b->measure_ceilings(work, &ceil, err, n);
    fs_rm_rf(work);
    if (rc != 0) {
        json_decref(dev);
        return -1;
    }
    json_t *earlier = json_load_file(path, 0, NULL);
    json_t *earlier_ceil = json_object_get(earlier, "ceilings");
    if (json_is_object(earlier_ceil))
        keep_best(ceil, earlier_ceil);
    json_decref(earlier);
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(ceil, "measured_at", json_string(when));
    json_object_set_new(ceil, "measured", json_true());
    json_object_set_new(dev, "ceilings", ceil);
    json_object_set_new(dev, "cached", json_false());
    char *text = json_dumps(dev, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text) {
        fs_write_file(path, text, strlen(text));
        free(text);
    }
    *device = dev;
    return 0;
}

int backend_run_ceilings_program(const char *workdir, char *const build_argv[], const char *prog,
                                 double wall_s, json_t **out, char *err, size_t n)
{
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.drop_uid = -1;             /* our own trusted programs */
    l.wall_s = wall_s;
    l.mem_bytes = 0;             /* nvcc and the CUDA runtime reserve a lot */
    l.fsize_bytes = 64 << 20;
    int st, to;
    char *log = NULL;
    if (sandbox_run(workdir, build_argv, &l, &st, &to, &log, NULL, err, n) != 0)
        return -1;
    if (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, n, "cannot build the ceilings program (%s): %.400s", build_argv[0], log ? log : "");
        free(log);
        return -1;
    }
    free(log);
    log = NULL;
    char *run[] = {(char *)prog, NULL};
    if (sandbox_run(workdir, run, &l, &st, &to, &log, NULL, err, n) != 0)
        return -1;
    json_t *j = NULL;
    char tail[320];
    snprintf(tail, sizeof tail, "%.300s", log ? log : "");
    if (!to && WIFEXITED(st) && WEXITSTATUS(st) == 0 && log) {
        char *save = NULL;
        for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            json_t *t = json_loads(line, 0, NULL);
            if (t) {
                json_decref(j);
                j = t;
            }
        }
    }
    free(log);
    if (!j || !json_object_get(j, "peak_gflops") || !json_object_get(j, "bandwidth_gbs")) {
        json_decref(j);
        snprintf(err, n, "the ceilings program %s printed no ceilings: %s", prog, tail);
        return -1;
    }
    *out = j;
    return 0;
}
