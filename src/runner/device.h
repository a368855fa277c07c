/*
 * device.h -- what the runner needs from a backend's device: an arena that
 * mirrors the worker's shared host arena, copies, poisoning, cache flushing
 * and a timed call of the kernel, and what the runner does around the
 * kernel for it.  One implementation per backend (device_cpu.c,
 * device_cuda.c), found by the backend's runner_device name in the
 * registry of device.c; runner_main.c asks the struct, never the name.
 *
 * All functions return 0 on success, -1 with a message in err.
 */
#ifndef EMILE_RUNNER_DEVICE_H
#define EMILE_RUNNER_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include "emile.h"
#include "launches.h"
#include "util/keystream.h"

typedef struct run_timing {
    int rc;                /* the kernel's return value */
    double elapsed_ns;     /* the time that counts */
    double cpu_ns;         /* CPU time of all threads during the call (cpu; runner_main) */
    double wall_ns;        /* host wall time, call to completion */
    int escaped;           /* work finished after the stream's end event */
} run_timing_t;

typedef struct device {
    const char *name;
    /* What the runner does around the kernel for this device. */
    const char *const *env;    /* NAME, VALUE, ... set before the kernel is loaded
                                  (cuda: modules loaded eagerly); NULL-terminated */
    int queued_flush;          /* 1: prep queues the cache flush, which runs on the
                                  device's stream right before the timed call;
                                  0: prep flushes */
    int cpu_time;              /* 1: the runner's CPU time over a call is the kernel's
                                  work (the worker reads it: parallelism, forgery) */
    int sticky_errors;         /* 1: a failed prep or run leaves the device unusable,
                                  and the runner exits */
    int gpu_driver;            /* 1: reached through a GPU driver: its device files are
                                  opened (Landlock) and its ioctls and file probes
                                  allowed (seccomp_install's write_errno) */
    /* The libraries its driver maps as it pleases after start-up; NULL: none,
     * and once the kernel is loaded a filter forbids new executable memory
     * (else a scan of the mappings after each run looks). */
    int (*driver_code)(const char *path);
    /* The device launches of the last run (count, *out valid until the next
     * run); NULL: none are captured. */
    int (*launches)(const launch_record_t **out);
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
    /* XOR the whole words of device arena range [off, off + bytes) with the
     * keystream of key (src/util/keystream.h; key 0, 0: the same pass, no
     * change), queued on the device's stream before the timed call. */
    int (*unmask)(struct device *d, size_t off, size_t bytes, keystream_key_t key, char *err, size_t n);
    /* Time one call; the kernel's whole work must be inside. */
    int (*timed_call)(struct device *d, emile_kernel_fn fn, emile_args_t *args,
                      run_timing_t *t, char *err, size_t n);
    /* Is the device still usable (cuda: no sticky error)? */
    int (*healthy)(struct device *d, char *err, size_t n);
    void *stream;
    int can_unmask;            /* set by init: unmask works (the init line's unmask=) */
    int host_pinned;           /* set by init: the host arena is page-locked, so
                                  transfers are direct DMA (cuda) */
    uint8_t *host;
    size_t bytes;
    size_t flush_bytes;
    char flush_source[200];
    void *priv;
} device_t;

device_t *device_cpu(void);
device_t *device_cuda(void);
/* The device of that name (a backend's runner_device), or NULL. */
device_t *device_find(const char *name);

#endif
