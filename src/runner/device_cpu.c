/* device_cpu.c -- the cpu "device": tensors live in the shared host arena
 * itself, so upload and download are no-ops and the worker sees outputs as
 * soon as they are written (it reads them from its own mapping).  The timer
 * is the host's monotonic clock; the runner reads every thread's CPU clock
 * around the call to tell how many cores the kernel kept busy. */
#include "device.h"
#include "util/keystream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "runner/cache_size.h"

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

/* What the memory limit (RLIMIT_AS, set by the worker from the task's
 * limit) leaves for the flush buffer: a quarter of the room not mapped yet,
 * so the kernel keeps the rest; 0 when there is no limit. */
static size_t flush_cap(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY)
        return 0;
    size_t mapped = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long pages = 0;
        if (fscanf(f, "%lu", &pages) == 1)
            mapped = (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    size_t limit = (size_t)r.rlim_cur;
    return limit > mapped ? (limit - mapped) / 4 : 1;
}

static int cpu_init(device_t *d, uint8_t *host, size_t bytes, char *err, size_t n)
{
    cpu_priv_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    /* Twice the last-level cache from sysfs (never sysconf: see
     * cache_size.h), within what the memory limit leaves: writing it evicts
     * the kernel's inputs, so every timed run starts from memory. */
    p->flush_bytes = cache_flush_bytes("/sys", flush_cap(), d->flush_source, sizeof d->flush_source);
    d->flush_bytes = p->flush_bytes;
    d->can_unmask = 1;
    p->flush_buf = malloc(p->flush_bytes);
    if (!p->flush_buf) {
        free(p);
        snprintf(err, n, "cannot allocate the cache-flush buffer (%zu MiB: %s)", d->flush_bytes >> 20,
                 d->flush_source);
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
    double t0 = now_ns(CLOCK_MONOTONIC);
    t->rc = fn(args);
    double t1 = now_ns(CLOCK_MONOTONIC);
    t->elapsed_ns = t1 - t0;
    t->wall_ns = t1 - t0;
    t->escaped = 0;
    return 0;
}

static int cpu_healthy(device_t *d, char *err, size_t n)
{
    (void)d; (void)err; (void)n;
    return 0;
}

static int cpu_unmask(device_t *d, size_t off, size_t bytes, keystream_key_t key, char *err, size_t n)
{
    (void)err;
    (void)n;
    keystream_xor(d->host, off, bytes, key);
    return 0;
}

static device_t cpu_device = {
    .name = "cpu",
    .cpu_time = 1,
    .init = cpu_init,
    .ptr = cpu_ptr,
    .upload = cpu_upload,
    .download = cpu_download,
    .poison = cpu_poison,
    .flush = cpu_flush,
    .unmask = cpu_unmask,
    .timed_call = cpu_timed_call,
    .healthy = cpu_healthy,
};

device_t *device_cpu(void)
{
    return &cpu_device;
}
