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
#include "sandbox/sandbox.h"

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

static int cpu_compile_argv(const char *src, const char *out, const char *include_dir, char **argv, int max,
                            char *buf, size_t bufn)
{
    int k = 0;
    char inc[1024];
    snprintf(inc, sizeof inc, "-I%s", include_dir);
    const char *args[] = {cc(), "-std=gnu11", "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared",
                          "-Wall", "-fvisibility=hidden", inc, src, "-o", out, "-lm"};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        if (backend_argv_add(argv, &k, max, &buf, &bufn, args[i]) != 0)
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
    char src[1024], prog[1024];
    emile_root_file("kernels/ceilings/cpu_ceilings.c", src, sizeof src);
    snprintf(prog, sizeof prog, "%s/cpu_ceilings", workdir);
    char *argv[] = {(char *)cc(), "-std=gnu11", "-O3", "-march=native", "-fopenmp", src, "-o", prog, "-lm", NULL};
    if (backend_run_ceilings_program(workdir, argv, prog, 120, ceilings, err, n) != 0)
        return -1;
    json_object_set_new(*ceilings, "method", json_string("kernels/ceilings/cpu_ceilings.c: one core's best 2 ms "
                                                        "FMA trial x physical cores; best memcpy of the team or "
                                                        "a lone thread (read + write bytes)"));
    return 0;
}

static int cpu_inspect(const char *so, const char *workdir, json_t **kernels, char *err, size_t n)
{
    (void)so; (void)workdir; (void)err; (void)n;
    *kernels = json_array();
    return 0;
}

static const char *const cpu_langs[] = {"c", NULL};

const backend_t backend_cpu = {
    .name = "cpu",
    .src_ext = ".c",
    .host_mem_limit = 1,
    .kind = BACKEND_HOST,
    .device_words = "the host CPU",
    .runner_device = "cpu",
    .device_memory = 0,
    .torch_device = "cpu",
    .langs = cpu_langs,
    .caps = BACKEND_CAP_CPU_TIME,
    .no_counters_why = "hardware counters are read with Nsight Compute on the cuda backend; the cpu backend has none",
    .warmup = 2,
    .timing_budget_s = 1.0,
    .min_reps = 5,
    .max_reps = 50,
    .engine_dtype = 0, /* EMILE_DTYPE_F32 */
    .available = cpu_available,
    .compile_argv = cpu_compile_argv,
    .describe = cpu_describe,
    .measure_ceilings = cpu_measure,
    .inspect = cpu_inspect,
};
