/*
 * device.h -- what the runner needs from a backend's device: an arena that
 * mirrors the worker's shared host arena, copies, poisoning, cache flushing
 * and a timed call of the kernel.  One implementation per backend
 * (device_cpu.c, device_cuda.c), chosen by name at start-up.
 *
 * All functions return 0 on success, -1 with a message in err.
 */
#ifndef EMILE_RUNNER_DEVICE_H
#define EMILE_RUNNER_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include "emile.h"

typedef struct run_timing {
    int rc;                /* the kernel's return value */
    double elapsed_ns;     /* the time that counts */
    double cpu_ns;         /* CPU time of all threads during the call (cpu; runner_main) */
    double wall_ns;        /* host wall time, call to completion */
    int escaped;           /* work finished after the stream's end event */
} run_timing_t;

typedef struct device {
    const char *name;
    /* Before seccomp: open the device, allocate a device arena of `bytes`
     * (NULL on cpu: the host arena is used directly), a flush buffer (its
     * size and how it was chosen in flush_bytes and flush_source). */
    int (*init)(struct device *d, uint8_t *host_arena, size_t bytes, char *err, size_t n);
    /* Device address of arena offset off. */
    void *(*ptr)(struct device *d, size_t off);
    int (*upload)(struct device *d, size_t off, size_t bytes, char *err, size_t n);
    int (*download)(struct device *d, size_t off, size_t bytes, size_t host_off, char *err, size_t n);
    int (*poison)(struct device *d, size_t off, size_t bytes, char *err, size_t n);
    int (*flush)(struct device *d, char *err, size_t n);
    /* Time one call; the kernel's whole work must be inside. */
    int (*timed_call)(struct device *d, emile_kernel_fn fn, emile_args_t *args,
                      run_timing_t *t, char *err, size_t n);
    /* Is the device still usable (cuda: no sticky error)? */
    int (*healthy)(struct device *d, char *err, size_t n);
    void *stream;
    uint8_t *host;
    size_t bytes;
    size_t flush_bytes;
    char flush_source[200];
    void *priv;
} device_t;

device_t *device_cpu(void);
device_t *device_cuda(void);

#endif
