/* cuda_inspect.c -- see cuda_inspect.h. */
#include "cuda_inspect.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sandbox/sandbox.h"

static long field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

json_t *cuda_parse_res_usage(const char *text)
{
    json_t *arr = json_array();
    const char *p = text;
    while ((p = strstr(p, "Function ")) != NULL) {
        p += 9;
        const char *end = strchr(p, ':');
        const char *nl = strchr(p, '\n');
        if (!end || !nl || end > nl)
            continue;
        char name[1024];
        size_t len = (size_t)(end - p) < sizeof name - 1 ? (size_t)(end - p) : sizeof name - 1;
        memcpy(name, p, len);
        name[len] = 0;
        const char *res = nl + 1;
        const char *res_end = strchr(res, '\n');
        char line[1024];
        size_t ll = res_end ? (size_t)(res_end - res) : strlen(res);
        if (ll >= sizeof line)
            ll = sizeof line - 1;
        memcpy(line, res, ll);
        line[ll] = 0;
        json_t *k = json_object();
        json_object_set_new(k, "name", json_string(name));
        json_object_set_new(k, "registers", json_integer(field(line, "REG:")));
        json_object_set_new(k, "stack", json_integer(field(line, "STACK:")));
        json_object_set_new(k, "shared", json_integer(field(line, "SHARED:")));
        json_object_set_new(k, "local", json_integer(field(line, "LOCAL:")));
        json_object_set_new(k, "constant", json_integer(field(line, "CONSTANT[0]:")));
        json_array_append_new(arr, k);
        p = nl;
    }
    return arr;
}

json_t *cuda_parse_sass(const char *text)
{
    json_t *out = json_object();
    json_t *cur = NULL;
    const char *line = text;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *fn = strstr(line, "Function : ");
        if (fn && fn < line + len) {
            char name[1024];
            size_t nlen = len - (size_t)(fn + 11 - line);
            if (nlen >= sizeof name)
                nlen = sizeof name - 1;
            memcpy(name, fn + 11, nlen);
            name[nlen] = 0;
            cur = json_object();
            json_object_set_new(cur, "hmma", json_integer(0));
            json_object_set_new(cur, "hgmma", json_integer(0));
            json_object_set_new(cur, "ldmatrix", json_integer(0));
            json_object_set_new(cur, "tma", json_integer(0));
            json_object_set_new(out, name, cur);
        } else if (cur) {
            char buf[512];
            size_t bl = len < sizeof buf - 1 ? len : sizeof buf - 1;
            memcpy(buf, line, bl);
            buf[bl] = 0;
            const char *keys[][2] = {{" HMMA", "hmma"}, {" HGMMA", "hgmma"}, {" LDSM", "ldmatrix"},
                                     {" UTMALDG", "tma"}, {" UBLKCP", "tma"}};
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
                if (strstr(buf, keys[i][0])) {
                    json_t *v = json_object_get(cur, keys[i][1]);
                    json_integer_set(v, json_integer_value(v) + 1);
                }
        }
        line = nl ? nl + 1 : NULL;
    }
    return out;
}

static char *run_tool(const char *workdir, char *const argv[], char *err, size_t n)
{
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.drop_uid = -1;
    l.wall_s = 60;
    l.mem_bytes = 0;
    l.fsize_bytes = 64 << 20;
    int st, to;
    char *log = NULL;
    if (sandbox_run(workdir, argv, &l, &st, &to, &log, NULL, err, n) != 0)
        return NULL;
    if (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, n, "%s failed: %.200s", argv[0], log ? log : "");
        free(log);
        return NULL;
    }
    return log;
}

int cuda_inspect(const char *so_path, const char *workdir, int cc, json_t **kernels, char *err, size_t n)
{
    (void)cc;
    char tool[1024], tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", cuda_nvcc());
    if (strchr(tmp, '/'))
        snprintf(tool, sizeof tool, "%s/cuobjdump", dirname(tmp));
    else
        snprintf(tool, sizeof tool, "cuobjdump");
    char *a1[] = {tool, "-res-usage", (char *)so_path, NULL};
    char *res = run_tool(workdir, a1, err, n);
    if (!res)
        return -1;
    json_t *arr = cuda_parse_res_usage(res);
    free(res);
    char *a2[] = {tool, "-sass", (char *)so_path, NULL};
    char *sass = run_tool(workdir, a2, err, n);
    json_t *tc = sass ? cuda_parse_sass(sass) : json_object();
    free(sass);
    size_t i;
    json_t *k;
    json_array_foreach(arr, i, k) {
        json_t *t = json_object_get(tc, json_string_value(json_object_get(k, "name")));
        if (t)
            json_object_update(k, t);
    }
    json_decref(tc);
    *kernels = arr;
    return 0;
}
