/*
 * backend.h -- what the worker needs from a backend: how to build a kernel
 * source into a shared object, which runner device hosts it, what the
 * device is and what its ceilings are.  A new backend is one file here and
 * one line in backend_find (backend.c); the runner side is one device_*.c
 * in src/runner/.
 */
#ifndef EMILE_BACKEND_H
#define EMILE_BACKEND_H

#include <jansson.h>
#include <stddef.h>

typedef struct backend {
    const char *name;          /* "cpu", "cuda" */
    const char *src_ext;       /* ".c", ".cu" */
    int host_mem_limit;        /* 1: RLIMIT_AS may bound the runner */
    /* 0 when usable here; else -1 with the reason. */
    int (*available)(char *why, size_t n);
    /* Fill argv (NULL-terminated, strings in buf) to build src into out. */
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
