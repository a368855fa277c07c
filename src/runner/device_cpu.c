/* device_cpu.c -- the cpu "device": tensors live in the shared host arena
 * itself, so upload and download are no-ops and the worker sees outputs as
 * soon as they are written.  The timer is the host's monotonic clock; the
 * process CPU clock beside it tells how many cores the kernel kept busy. */
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct cpu_priv {
    uint8_t *flush_buf;
    size_t flush_bytes;
} cpu_priv_t;

static double now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t llc_bytes(void)
{
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    long c = l3 > 0 ? l3 : (l2 > 0 ? l2 : 32L << 20);
    return (size_t)c;
}

static int cpu_init(device_t *d, uint8_t *host, size_t bytes, char *err, size_t n)
{
    cpu_priv_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    /* Twice the last-level cache, at least 32 MiB: writing it evicts the
     * kernel's inputs, so every timed run starts from memory. */
    p->flush_bytes = 2 * llc_bytes();
    if (p->flush_bytes < (32u << 20))
        p->flush_bytes = 32u << 20;
    p->flush_buf = malloc(p->flush_bytes);
    if (!p->flush_buf) {
        free(p);
        snprintf(err, n, "cannot allocate the cache-flush buffer");
        return -1;
    }
    memset(p->flush_buf, 1, p->flush_bytes);
    d->priv = p;
    d->host = host;
    d->bytes = bytes;
    d->stream = NULL;
    return 0;
}

static void *cpu_ptr(device_t *d, size_t off)
{
    return d->host + off;
}

/* "Upload" on the cpu: the data is already in the shared arena; touch
 * every page so that a set the kernel has not seen yet does not pay page
 * faults inside its first timed run. */
static int cpu_upload(device_t *d, size_t off, size_t bytes, char *err, size_t n)
{
    (void)err; (void)n;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < bytes; i += 4096)
        sink ^= d->host[off + i];
    (void)sink;
    return 0;
}

static int cpu_download(device_t *d, size_t off, size_t bytes, size_t host_off, char *err, size_t n)
{
    (void)err; (void)n;
    if (host_off != off)
        memcpy(d->host + host_off, d->host + off, bytes);
    return 0;
}

static int cpu_poison(device_t *d, size_t off, size_t bytes, char *err, size_t n)
{
    (void)err; (void)n;
    /* All-ones bytes are a NaN in every float format. */
    memset(d->host + off, 0xff, bytes);
    return 0;
}

static int cpu_flush(device_t *d, char *err, size_t n)
{
    (void)err; (void)n;
    cpu_priv_t *p = d->priv;
    volatile uint8_t *b = p->flush_buf;
    for (size_t i = 0; i < p->flush_bytes; i += 64)
        b[i] = (uint8_t)(b[i] + 1);
    return 0;
}

static int cpu_timed_call(device_t *d, emile_kernel_fn fn, emile_args_t *args, run_timing_t *t,
                          char *err, size_t n)
{
    (void)d; (void)err; (void)n;
    double c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    double t0 = now_ns(CLOCK_MONOTONIC);
    t->rc = fn(args);
    double t1 = now_ns(CLOCK_MONOTONIC);
    double c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    t->elapsed_ns = t1 - t0;
    t->wall_ns = t1 - t0;
    t->cpu_ns = c1 - c0;
    t->escaped = 0;
    return 0;
}

static int cpu_healthy(device_t *d, char *err, size_t n)
{
    (void)d; (void)err; (void)n;
    return 0;
}

static device_t cpu_device = {
    .name = "cpu",
    .init = cpu_init,
    .ptr = cpu_ptr,
    .upload = cpu_upload,
    .download = cpu_download,
    .poison = cpu_poison,
    .flush = cpu_flush,
    .timed_call = cpu_timed_call,
    .healthy = cpu_healthy,
};

device_t *device_cpu(void)
{
    return &cpu_device;
}
