/*
 * taste_hf_confine.c -- the Tasting Room's sandbox for its Python children:
 * build/libemile-confine.so exports these three entry points (and nothing
 * else: it is built with hidden visibility), which python/emile/taste_hf.py
 * calls through ctypes around loading a kernel, the same steps in the same
 * order as the C engine's child (taste_confine.h).  A Python process cannot
 * be handed a seccomp filter across exec (exec itself is forbidden by it),
 * so it installs the filter on itself, from this code.
 */
#include <stddef.h>
#include <sys/types.h>

#include "taste/taste_confine.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT int emile_py_confine_identity(int parent, char *err, size_t n);
EXPORT int emile_py_confine_filter(int gpu, int report_fd, char *err, size_t n);
EXPORT int emile_py_confine_loaded(int gpu, char *err, size_t n);

/* The network namespace and nobody's uid (root), the allow-listed
 * environment, not dumpable, killed with parent. */
EXPORT int emile_py_confine_identity(int parent, char *err, size_t n)
{
    return taste_confine_identity((pid_t)parent, err, n);
}

/* The runner's seccomp filter, forbidden calls reported on report_fd
 * (gpu: the model is on a GPU, whose driver probes files). */
EXPORT int emile_py_confine_filter(int gpu, int report_fd, char *err, size_t n)
{
    return taste_confine_filter(gpu, report_fd, err, n);
}

/* Once the kernel is loaded: unless gpu, no new executable memory. */
EXPORT int emile_py_confine_loaded(int gpu, char *err, size_t n)
{
    return taste_confine_loaded(gpu, err, n);
}
