/* cpu.c -- the cpu backend: C kernels built by the system compiler with
 * -O3 -march=native -fopenmp into a shared object; ceilings measured by
 * kernels/ceilings/cpu_ceilings.c (vector FMA peak on all cores, and a
 * multithreaded copy for memory bandwidth). */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/paths.h"
#include "worker/sandbox.h"

static const char *cc(void)
{
    const char *c = getenv("EMILE_CC");
    return c && *c ? c : "cc";
}

static int cpu_available(char *why, size_t n)
{
    (void)why; (void)n;
    return 0;
}

static int add(char **argv, int *k, int max, char **buf, size_t *left, const char *s)
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

static int cpu_compile_argv(const char *src, const char *out, const char *include_dir, char **argv, int max,
                            char *buf, size_t bufn)
{
    int k = 0;
    char inc[1024];
    snprintf(inc, sizeof inc, "-I%s", include_dir);
    const char *args[] = {cc(), "-std=gnu11", "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared",
                          "-Wall", "-fvisibility=hidden", inc, src, "-o", out, "-lm"};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        if (add(argv, &k, max, &buf, &bufn, args[i]) != 0)
            return -1;
    return 0;
}

static int cpu_describe(json_t **device, char *err, size_t n)
{
    (void)err; (void)n;
    char model[256] = "unknown cpu", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        fclose(f);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    char host[128] = "host", key[512], name[400];
    gethostname(host, sizeof host - 1);
    snprintf(key, sizeof key, "cpu:%s:%s:%ld", host, model, cores);
    snprintf(name, sizeof name, "%s (%ld cores)", model, cores);
    json_t *d = json_object();
    json_object_set_new(d, "backend", json_string("cpu"));
    json_object_set_new(d, "name", json_string(name));
    json_object_set_new(d, "key", json_string(key));
    json_object_set_new(d, "cores", json_integer(cores));
    json_object_set_new(d, "cache_bytes", json_integer(llc > 0 ? llc : 0));
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    json_object_set_new(d, "memory_bytes", json_integer(pages > 0 && page > 0 ? (json_int_t)pages * page : 0));
    *device = d;
    return 0;
}

static int cpu_measure(const char *workdir, json_t **ceilings, char *err, size_t n)
{
    char src[1024], prog[1024], buf[4096];
    emile_root_file("kernels/ceilings/cpu_ceilings.c", src, sizeof src);
    snprintf(prog, sizeof prog, "%s/cpu_ceilings", workdir);
    char *argv[] = {(char *)cc(), "-std=gnu11", "-O3", "-march=native", "-fopenmp", src, "-o", prog, "-lm", NULL};
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.drop_uid = -1;             /* our own program */
    l.wall_s = 120;
    l.fsize_bytes = 64 << 20;
    int st, to;
    char *log = NULL;
    if (sandbox_run(workdir, argv, &l, &st, &to, &log, NULL, err, n) != 0)
        return -1;
    if (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, n, "cannot build the cpu ceilings program %s: %.300s", src, log ? log : "");
        free(log);
        return -1;
    }
    free(log);
    char *run[] = {prog, NULL};
    l.mem_bytes = 0;
    if (sandbox_run(workdir, run, &l, &st, &to, &log, NULL, err, n) != 0)
        return -1;
    json_t *j = NULL;
    if (!to && WIFEXITED(st) && WEXITSTATUS(st) == 0 && log) {
        /* The last line that parses as JSON. */
        char *line = strtok(log, "\n");
        while (line) {
            json_t *t = json_loads(line, 0, NULL);
            if (t) {
                json_decref(j);
                j = t;
            }
            line = strtok(NULL, "\n");
        }
    }
    snprintf(buf, sizeof buf, "%.300s", log ? log : "");
    free(log);
    if (!j || !json_object_get(j, "peak_gflops") || !json_object_get(j, "bandwidth_gbs")) {
        json_decref(j);
        snprintf(err, n, "the cpu ceilings program printed no ceilings: %s", buf);
        return -1;
    }
    json_object_set_new(j, "method", json_string("kernels/ceilings/cpu_ceilings.c: FMA chains on all cores; "
                                                 "multithreaded copy (read + write bytes)"));
    *ceilings = j;
    return 0;
}

static int cpu_inspect(const char *so, const char *workdir, json_t **kernels, char *err, size_t n)
{
    (void)so; (void)workdir; (void)err; (void)n;
    *kernels = json_array();
    return 0;
}

const backend_t backend_cpu = {
    .name = "cpu",
    .src_ext = ".c",
    .host_mem_limit = 1,
    .available = cpu_available,
    .compile_argv = cpu_compile_argv,
    .describe = cpu_describe,
    .measure_ceilings = cpu_measure,
    .inspect = cpu_inspect,
};
