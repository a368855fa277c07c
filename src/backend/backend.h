/*
 * backend.h -- what the worker needs from a backend: how to build a kernel
 * source into a shared object, which runner device hosts it, what the
 * device is and what its ceilings are, what its profile can report and how
 * it is timed.  A new backend is one file here and one line in
 * backend_registry (backend.c); the runner side is one device_*.c in
 * src/runner/.  Its kernel languages are in lang.h (one file each).
 */
#ifndef EMILE_BACKEND_H
#define EMILE_BACKEND_H

#include <jansson.h>
#include <stddef.h>

/* What a backend's profile can report (backend_t.caps). */
enum {
    BACKEND_CAP_LAUNCHES = 1 << 0,  /* the runner captures each device launch: grid, block,
                                       registers, shared memory, occupancy, its stream */
    BACKEND_CAP_CPU_TIME = 1 << 1,  /* the runner's CPU time per run measures parallelism */
    BACKEND_CAP_COUNTERS = 1 << 2,  /* hardware counters through counters_tool */
    BACKEND_CAP_SASS = 1 << 3,      /* inspect() reads the machine code (tensor-core instructions) */
};

/* The class of device, for what depends on it and not on the vendor: the
 * diagnoses (occupancy, tensor cores vs threads, SIMD), the seccomp filter
 * of a process that loads kernels (GPU drivers need ioctls and map code). */
typedef enum backend_kind { BACKEND_HOST = 0, BACKEND_GPU = 1 } backend_kind_t;

typedef struct backend {
    const char *name;          /* "cpu", "cuda" */
    const char *src_ext;       /* ".c", ".cu": its default language's */
    int host_mem_limit;        /* 1: RLIMIT_AS may bound the runner */
    backend_kind_t kind;
    const char *device_words;  /* what runs the kernels, for people and models:
                                  "the host CPU", "an NVIDIA GPU" */
    const char *runner_device; /* the runner's device (src/runner/device_<x>.c) */
    int device_memory;         /* 1: kernels work in the device's own memory, which
                                  mirrors the worker's host arena: inputs are uploaded,
                                  outputs fetched back ("snap"), a flush is queued on
                                  the device's stream; 0: they work in the host arena */
    const char *visible_devices_env; /* the environment variable that gives a process one
                                  device of the host ("CUDA_VISIBLE_DEVICES": a local
                                  pool's workers, one device each); NULL: not split */
    int (*count_devices)(void);  /* the host's devices where visible_devices_env is not
                                  set (cuda: the driver's list); NULL or 0: one */
    const char *torch_device;  /* PyTorch's device for the trusted oracle of a PyTorch
                                  problem on this backend ("cpu", "cuda") */
    const char *const *langs;  /* the kernel languages it builds (lang.h), its default
                                  first; NULL-terminated */
    unsigned caps;             /* BACKEND_CAP_* */
    const char *counters_tool; /* the hardware-counter tool ("ncu"), NULL when none */
    const char *no_counters_why; /* why there are none, when counters_tool is NULL */
    /* Timing policy: untimed warm-up runs, then timed runs filling about
     * timing_budget_s (at least min_reps, at most max_reps). */
    int warmup;
    double timing_budget_s;
    int min_reps, max_reps;
    int engine_dtype;          /* the dtype its engine's attention slot hands a kernel
                                  (emile_dtype_t): the Tasting Room's check */
    /* 0 when usable here; else -1 with the reason. */
    int (*available)(char *why, size_t n);
    /* Fill argv (NULL-terminated, strings in buf) to build src, a source of
     * the default language, into out (other languages: lang.h). */
    int (*compile_argv)(const char *src, const char *out, const char *include_dir,
                        char **argv, int max, char *buf, size_t bufn);
    /* Name, cores/SMs, cache sizes... (no ceilings).  Key for the cache. */
    int (*describe)(json_t **device, char *err, size_t n);
    /* Measure the ceilings in workdir (our own trusted programs). */
    int (*measure_ceilings)(const char *workdir, json_t **ceilings, char *err, size_t n);
    /* Static facts about the built .so (cuda: per-kernel resources). */
    int (*inspect)(const char *so_path, const char *workdir, json_t **kernels, char *err, size_t n);
} backend_t;

const backend_t *backend_find(const char *name);
/* Every backend, NULL-terminated, in the registry's order. */
const backend_t *const *backend_all(void);
/* The registry's first backend, the one every machine has: what a task,
 * a request or a tool that names none gets. */
const backend_t *backend_default(void);
/* Add a backend at run time, after the registry's own (a test's fake
 * device; a product backend is a registry line).  0, or -1 when its name
 * is taken or the table is full (BACKEND_MAX). */
#define BACKEND_MAX 16
int backend_register(const backend_t *b);
/* "cpu, cuda": the names, for messages. */
const char *backend_names(void);
/* Append s to a NULL-terminated argv whose strings live in *buf (*left
 * bytes free); -1 when argv or buf is full.  For compile_argv. */
int backend_argv_add(char **argv, int *k, int max, char **buf, size_t *left, const char *s);
/* Build one of our own ceiling programs with build_argv in workdir, run it
 * and return the last line of its output that parses as a JSON object
 * holding "peak_gflops" and "bandwidth_gbs"; -1 with err otherwise. */
int backend_run_ceilings_program(const char *workdir, char *const build_argv[], const char *prog,
                                 double wall_s, json_t **out, char *err, size_t n);
/* The device object of docs/PROTOCOL.md, ceilings measured once and cached
 * in emile_cache_dir() (remeasure forces a new measurement). */
int backend_device(const backend_t *b, int remeasure, json_t **device, char *err, size_t n);

#endif
