/*
 * fake_libcuda.c -- a stand-in for the NVIDIA driver (libcuda.so.1) on
 * machines without a GPU: the entry points src/backend/cuda.c looks up,
 * one device "Fake GPU" of compute capability 8.9.  Like the real driver,
 * cuInit starts a thread that stays (the real one's are cuda-EvtHandlr and
 * friends), and it appends the caller's process id to $FAKE_CUDA_INIT_LOG,
 * so a test sees which process initialised the driver.
 * Build: cc -std=c11 -shared -fPIC -pthread -Wl,-soname,libcuda.so.1 \
 *        fake_libcuda.c -o DIR/libcuda.so.1   (then LD_LIBRARY_PATH=DIR)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *driver_thread(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

int cuInit(unsigned flags)
{
    static int started;
    (void)flags;
    if (!started) {
        pthread_t t;
        if (pthread_create(&t, NULL, driver_thread, NULL) != 0)
            return 1;
        pthread_setname_np(t, "fake-EvtHandlr");
        started = 1;
    }
    const char *log = getenv("FAKE_CUDA_INIT_LOG");
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    return 0;
}

int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return 0; }

int cuDeviceGetName(char *name, int len, int dev)
{
    (void)dev;
    snprintf(name, (size_t)len, "Fake GPU");
    return 0;
}

/* 75, 76: COMPUTE_CAPABILITY_MAJOR, _MINOR; anything else 1. */
int cuDeviceGetAttribute(int *v, int attr, int dev)
{
    (void)dev;
    *v = attr == 75 ? 8 : attr == 76 ? 9 : 1;
    return 0;
}

int cuDeviceTotalMem_v2(size_t *bytes, int dev)
{
    (void)dev;
    *bytes = (size_t)1 << 30;
    return 0;
}
