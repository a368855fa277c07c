/* device_cuda.c -- the cuda device for the runner.  The CUDA runtime is
 * loaded with dlopen so that emile builds and runs where CUDA is absent; a
 * missing runtime is a clear message, not a crash.  Candidates are built
 * with `-cudart shared`, so the process holds one runtime and one context.
 *
 * Timing: CUDA events around the call on the harness's stream, then a full
 * device synchronisation.  If the host saw the device busy well after the
 * stream's end event (work launched on another stream, or from a thread the
 * kernel left behind), the host wall time counts instead and the run is
 * marked "escaped".  A persisting-L2 window or limit left set by a kernel is
 * an error: it would speed up the next timed run. */
#include "device.h"
#include "launches.h"
#include "unmask_ptx.h"
#include "util/keystream.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int cuerr_t;
typedef struct dim3_t { unsigned x, y, z; } dim3_t;
typedef struct cuda_api {
    cuerr_t (*SetDevice)(int);
    cuerr_t (*Malloc)(void **, size_t);
    cuerr_t (*Memcpy)(void *, const void *, size_t, int);
    cuerr_t (*Memset)(void *, int, size_t);
    cuerr_t (*MemsetAsync)(void *, int, size_t, void *);
    cuerr_t (*StreamCreate)(void **);
    cuerr_t (*StreamSynchronize)(void *);
    cuerr_t (*DeviceSynchronize)(void);
    cuerr_t (*EventCreate)(void **);
    cuerr_t (*EventRecord)(void *, void *);
    cuerr_t (*EventSynchronize)(void *);
    cuerr_t (*EventElapsedTime)(float *, void *, void *);
    cuerr_t (*GetLastError)(void);
    cuerr_t (*PeekAtLastError)(void);
    const char *(*GetErrorString)(cuerr_t);
    cuerr_t (*DeviceGetAttribute)(int *, int, int);
    cuerr_t (*DeviceGetLimit)(size_t *, int);
    cuerr_t (*DeviceSetLimit)(int, size_t);
    cuerr_t (*StreamGetAttribute)(void *, int, void *);
    cuerr_t (*FuncGetAttributes)(void *, const void *);
    cuerr_t (*MallocAsync)(void **, size_t, void *);
    cuerr_t (*FreeAsync)(void *, void *);
    cuerr_t (*FuncGetName)(const char **, const void *);
    cuerr_t (*HostRegister)(void *, size_t, unsigned);
    cuerr_t (*LaunchKernel)(const void *, dim3_t, dim3_t, void **, size_t, void *);
    cuerr_t (*LaunchKernel2)(const void *, dim3_t, dim3_t, void **, size_t, void *);
    cuerr_t (*LaunchKernel2Ptsz)(const void *, dim3_t, dim3_t, void **, size_t, void *);
    cuerr_t (*LibraryLoadData)(void **, const void *, void *, void **, unsigned, void *, void **, unsigned);
    cuerr_t (*LibraryGetKernel)(void **, void *, const char *);
} cuda_api_t;

typedef struct cuda_priv {
    cuda_api_t api;
    uint8_t *dev_arena;
    void *flush_buf;
    size_t flush_bytes;
    void *ev0, *ev1;
    size_t persist_baseline;   /* the device's persisting-L2 limit as we found it */
    void *unmask_lib, *unmask_kernel;   /* unmask_ptx.h, loaded at init */
} cuda_priv_t;

#define CUDA_MEMCPY_H2D 1
#define CUDA_MEMCPY_D2H 2
#define CUDA_HOST_REGISTER_DEFAULT 0
#define CUDA_ATTR_L2_CACHE_SIZE 89
#define CUDA_LIMIT_PERSISTING_L2 0x06
#define CUDA_STREAM_ATTR_ACCESS_POLICY_WINDOW 1

/* ---- launch capture ---------------------------------------------------
 * The runner exports cudaLaunchKernel and the two __cudaLaunchKernel entry
 * points (and nothing else: src/runner/exports.list), so a candidate's
 * <<<...>>> launches resolve to these functions before the runtime's: each launch's configuration and the kernel's resources are
 * recorded, then the real launch is made.  Per-kernel reports come from
 * here (name, grid, block, registers, shared and local memory). */
static cuda_api_t *g_api;
static void *g_harness_stream;
static launch_record_t g_launches[RUNNER_MAX_LAUNCHES];
static int g_n_launches, g_capturing;

/* Layout of cudaFuncAttributes (stable since CUDA 9): sizes in bytes. */
typedef struct func_attrs {
    size_t sharedSizeBytes, constSizeBytes, localSizeBytes;
    int maxThreadsPerBlock, numRegs, ptxVersion, binaryVersion, cacheModeCA;
    int maxDynamicSharedSizeBytes, preferredShmemCarveout;
    int pad[32];
} func_attrs_t;

static void record_launch(const void *func, dim3_t grid, dim3_t block, size_t smem, void *stream)
{
    if (!g_capturing || g_n_launches >= RUNNER_MAX_LAUNCHES)
        return;
    launch_record_t *r = &g_launches[g_n_launches++];
    memset(r, 0, sizeof *r);
    r->grid[0] = grid.x; r->grid[1] = grid.y; r->grid[2] = grid.z;
    r->block[0] = block.x; r->block[1] = block.y; r->block[2] = block.z;
    r->dyn_smem = smem;
    r->other_stream = stream != g_harness_stream && stream != NULL ? 1 : stream == NULL ? 2 : 0;
    func_attrs_t fa;
    memset(&fa, 0, sizeof fa);
    /* cudaKernel_t handles are accepted by the cudaFunc* calls too. */
    if (g_api->FuncGetAttributes(&fa, func) == 0) {
        r->regs = fa.numRegs;
        r->static_smem = fa.sharedSizeBytes;
        r->local = fa.localSizeBytes;
    }
    const char *name = NULL;
    if (g_api->FuncGetName && g_api->FuncGetName(&name, func) == 0 && name)
        snprintf(r->name, sizeof r->name, "%s", name);
    else
        snprintf(r->name, sizeof r->name, "kernel@%p", func);
}

/* The launch entry points a candidate's <<<...>>> can reach: CUDA 12's
 * cudaLaunchKernel and CUDA 13's __cudaLaunchKernel(_ptsz), whose first
 * argument is a cudaKernel_t. */
__attribute__((visibility("default"))) cuerr_t cudaLaunchKernel(const void *func, dim3_t grid, dim3_t block,
                                                                void **args, size_t smem, void *stream)
{
    if (!g_api)
        return 98; /* cudaErrorInvalidDeviceFunction: no runtime loaded */
    record_launch(func, grid, block, smem, stream);
    return g_api->LaunchKernel(func, grid, block, args, smem, stream);
}

__attribute__((visibility("default"))) cuerr_t __cudaLaunchKernel(const void *kernel, dim3_t grid, dim3_t block,
                                                                  void **args, size_t smem, void *stream)
{
    if (!g_api || !g_api->LaunchKernel2)
        return 98;
    record_launch(kernel, grid, block, smem, stream);
    return g_api->LaunchKernel2(kernel, grid, block, args, smem, stream);
}

__attribute__((visibility("default"))) cuerr_t __cudaLaunchKernel_ptsz(const void *kernel, dim3_t grid,
                                                                       dim3_t block, void **args, size_t smem,
                                                                       void *stream)
{
    if (!g_api || !g_api->LaunchKernel2Ptsz)
        return 98;
    record_launch(kernel, grid, block, smem, stream);
    return g_api->LaunchKernel2Ptsz(kernel, grid, block, args, smem, stream);
}

int runner_launches(const launch_record_t **out)
{
    *out = g_launches;
    return g_n_launches;
}

static int fail(cuda_priv_t *p, cuerr_t e, const char *what, char *err, size_t n)
{
    snprintf(err, n, "%s: %s (cuda error %d)", what, p->api.GetErrorString ? p->api.GetErrorString(e) : "?", e);
    return -1;
}

#define CK(call, what)                                   \
    do {                                                 \
        cuerr_t e_ = (call);                             \
        if (e_ != 0)                                     \
            return fail(p, e_, what, err, n);            \
    } while (0)

static int load_api(cuda_api_t *a, char *err, size_t n)
{
    const char *names[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so"};
    void *h = NULL;
    for (size_t i = 0; i < 3 && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(err, n, "the CUDA runtime (libcudart.so) was not found: is CUDA installed and on LD_LIBRARY_PATH?");
        return -1;
    }
#define SYM(f)                                                           \
    do {                                                                 \
        *(void **)&a->f = dlsym(h, "cuda" #f);                           \
        if (!a->f) {                                                     \
            snprintf(err, n, "libcudart lacks cuda%s", #f);              \
            return -1;                                                   \
        }                                                                \
    } while (0)
    SYM(SetDevice); SYM(Malloc); SYM(Memcpy); SYM(Memset); SYM(MemsetAsync);
    SYM(StreamCreate); SYM(StreamSynchronize); SYM(DeviceSynchronize); SYM(EventCreate);
    SYM(EventRecord); SYM(EventSynchronize); SYM(EventElapsedTime); SYM(GetLastError);
    SYM(PeekAtLastError); SYM(GetErrorString); SYM(DeviceGetAttribute); SYM(DeviceGetLimit);
    SYM(DeviceSetLimit); SYM(StreamGetAttribute); SYM(FuncGetAttributes); SYM(LaunchKernel);
    *(void **)&a->FuncGetName = dlsym(h, "cudaFuncGetName");   /* CUDA >= 12.3 */
    *(void **)&a->MallocAsync = dlsym(h, "cudaMallocAsync");
    *(void **)&a->LaunchKernel2 = dlsym(h, "__cudaLaunchKernel");
    *(void **)&a->LaunchKernel2Ptsz = dlsym(h, "__cudaLaunchKernel_ptsz");
    *(void **)&a->FreeAsync = dlsym(h, "cudaFreeAsync");
    *(void **)&a->HostRegister = dlsym(h, "cudaHostRegister");
    *(void **)&a->LibraryLoadData = dlsym(h, "cudaLibraryLoadData");   /* CUDA >= 12.0 */
    *(void **)&a->LibraryGetKernel = dlsym(h, "cudaLibraryGetKernel");
#undef SYM
    return 0;
}

static int cuda_unmask(device_t *d, size_t off, size_t bytes, keystream_key_t key, char *err, size_t n);

static int cuda_init(device_t *d, uint8_t *host, size_t bytes, char *err, size_t n)
{
    cuda_priv_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    d->priv = p;
    if (load_api(&p->api, err, n) != 0)
        return -1;
    CK(p->api.SetDevice(0), "cudaSetDevice");
    CK(p->api.Malloc((void **)&p->dev_arena, bytes), "cudaMalloc(arena)");
    int l2 = 0;
    p->api.DeviceGetAttribute(&l2, CUDA_ATTR_L2_CACHE_SIZE, 0);
    p->flush_bytes = (size_t)(l2 > 0 ? l2 : (50 << 20)) * 4;
    d->flush_bytes = p->flush_bytes;
    snprintf(d->flush_source, sizeof d->flush_source, "%s x 4",
             l2 > 0 ? "the device's L2 size (cudaDevAttrL2CacheSize)" : "50 MiB assumed (no L2 size reported)");
    CK(p->api.Malloc(&p->flush_buf, p->flush_bytes), "cudaMalloc(flush)");
    CK(p->api.StreamCreate(&d->stream), "cudaStreamCreate");
    g_api = &p->api;
    g_harness_stream = d->stream;
    p->api.DeviceGetLimit(&p->persist_baseline, CUDA_LIMIT_PERSISTING_L2);
    CK(p->api.EventCreate(&p->ev0), "cudaEventCreate");
    CK(p->api.EventCreate(&p->ev1), "cudaEventCreate");
    /* Device memory is never handed out uninitialised. */
    CK(p->api.Memset(p->dev_arena, 0xff, bytes), "cudaMemset");
    /* Create the stream-ordered memory pool now, before the seccomp filter:
     * references and candidates allocate scratch with cudaMallocAsync. */
    if (p->api.MallocAsync && p->api.FreeAsync) {
        void *tmp = NULL;
        CK(p->api.MallocAsync(&tmp, 1 << 20, d->stream), "cudaMallocAsync");
        CK(p->api.FreeAsync(tmp, d->stream), "cudaFreeAsync");
        CK(p->api.StreamSynchronize(d->stream), "cudaStreamSynchronize");
    }
    /* Page-lock the shared host arena.  Uploads and downloads are then one
     * DMA at the bus's speed instead of the driver's staged copies through
     * the CPU, whose time varied by a millisecond for 31 MB of weights from
     * one process to the next (H100, 2026-12-06): the held-back check
     * allows the null runner's transfer time, and only transfers that cost
     * what the null runner's cost leave an honest kernel inside it.  The
     * null runner is this same code, so both sides get the same kind of
     * memory; pageable memory stays the fallback, and the runner says
     * which one it got (init's pinned=). */
    d->host_pinned = 0;
    if (p->api.HostRegister && bytes > 0) {
        if (p->api.HostRegister(host, bytes, CUDA_HOST_REGISTER_DEFAULT) == 0)
            d->host_pinned = 1;
        else
            p->api.GetLastError();   /* not sticky: clear it, stay pageable */
    }
    /* The unmask pass (device.h), compiled by the driver now, before the
     * seccomp filter and the kernel; a runtime without libraries, or a
     * driver that cannot compile it, leaves the runner unable to take
     * masked sets, which the worker is told (init's unmask=0). */
    if (p->api.LibraryLoadData && p->api.LibraryGetKernel &&
        (p->api.LibraryLoadData(&p->unmask_lib, runner_unmask_ptx, NULL, NULL, 0, NULL, NULL, 0) != 0 ||
         p->api.LibraryGetKernel(&p->unmask_kernel, p->unmask_lib, "emile_unmask") != 0)) {
        p->unmask_kernel = NULL;
        p->api.GetLastError();   /* not sticky: the worker falls back to whole held-back cycles */
    }
    /* One launch now, before the filter, on the arena's first words (key
     * 0, 0 changes nothing): a pass that cannot run is found here, where
     * the worker can fall back, not in a timed run. */
    if (p->unmask_kernel) {
        char e2[256];
        keystream_key_t zero = {0, 0};
        if (cuda_unmask(d, 0, bytes < 4096 ? bytes : 4096, zero, e2, sizeof e2) != 0 ||
            p->api.StreamSynchronize(d->stream) != 0) {
            p->unmask_kernel = NULL;
            p->api.GetLastError();
        }
    }
    d->can_unmask = p->unmask_kernel != NULL;
    CK(p->api.DeviceSynchronize(), "cudaDeviceSynchronize");
    d->host = host;
    d->bytes = bytes;
    return 0;
}

static void *cuda_ptr(device_t *d, size_t off)
{
    return ((cuda_priv_t *)d->priv)->dev_arena + off;
}

static int cuda_upload(device_t *d, size_t off, size_t bytes, char *err, size_t n)
{
    cuda_priv_t *p = d->priv;
    CK(p->api.Memcpy(p->dev_arena + off, d->host + off, bytes, CUDA_MEMCPY_H2D), "upload");
    return 0;
}

static int cuda_download(device_t *d, size_t off, size_t bytes, size_t host_off, char *err, size_t n)
{
    cuda_priv_t *p = d->priv;
    CK(p->api.Memcpy(d->host + host_off, p->dev_arena + off, bytes, CUDA_MEMCPY_D2H), "download");
    return 0;
}

static int cuda_poison(device_t *d, size_t off, size_t bytes, char *err, size_t n)
{
    cuda_priv_t *p = d->priv;
    CK(p->api.MemsetAsync(p->dev_arena + off, 0xff, bytes, d->stream), "poison");
    return 0;
}

static int cuda_flush(device_t *d, char *err, size_t n)
{
    cuda_priv_t *p = d->priv;
    CK(p->api.MemsetAsync(p->flush_buf, 0x5a, p->flush_bytes, d->stream), "L2 flush");
    return 0;
}

static int cuda_unmask(device_t *d, size_t off, size_t bytes, keystream_key_t key, char *err, size_t n)
{
    cuda_priv_t *p = d->priv;
    if (!p->unmask_kernel) {
        snprintf(err, n, "the CUDA runtime cannot load the unmask pass (cudaLibraryLoadData: CUDA >= 12.0)");
        return -1;
    }
    size_t first, count;
    keystream_words(off, bytes, &first, &count);
    if (count == 0)
        return 0;
    unsigned long long ptr = (unsigned long long)(uintptr_t)(p->dev_arena + first * 8), words = count, w0 = first,
                       k0 = key.k0, k1 = key.k1;
    void *args[] = {&ptr, &words, &w0, &k0, &k1};
    size_t blocks = (count + 255) / 256;
    dim3_t grid = {(unsigned)(blocks < 1024 ? blocks : 1024), 1, 1}, block = {256, 1, 1};
    CK(p->api.LaunchKernel(p->unmask_kernel, grid, block, args, 0, d->stream), "the unmask pass");
    return 0;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cuda_timed_call(device_t *d, emile_kernel_fn fn, emile_args_t *args, run_timing_t *t,
                           char *err, size_t n)
{
    cuda_priv_t *p = d->priv;
    /* No synchronisation here: the L2 flush queued just before keeps the
     * GPU busy while the kernel's host code prepares its launches, so the
     * window measures device work (as in a real pipeline, and as the
     * peers' benchmarks measure), not the host's launch latency. */
    CK(p->api.EventRecord(p->ev0, d->stream), "cudaEventRecord");
    double h0 = now_ns();
    g_n_launches = 0;
    g_capturing = 1;
    t->rc = fn(args);
    g_capturing = 0;
    CK(p->api.EventRecord(p->ev1, d->stream), "cudaEventRecord");
    CK(p->api.EventSynchronize(p->ev1), "kernel execution");
    double h_ev = now_ns();
    CK(p->api.DeviceSynchronize(), "kernel execution");
    double h1 = now_ns();
    CK(p->api.GetLastError(), "kernel launch");
    float ms = 0;
    CK(p->api.EventElapsedTime(&ms, p->ev0, p->ev1), "cudaEventElapsedTime");
    t->elapsed_ns = (double)ms * 1e6;
    t->wall_ns = h1 - h0;
    t->cpu_ns = 0;
    /* The device stayed busy after the stream's end event: some of the
     * kernel's work ran outside the stream.  Count the host's view. */
    t->escaped = (h1 - h_ev) > 50e3 + 0.05 * t->elapsed_ns;
    if (t->escaped && t->wall_ns > t->elapsed_ns)
        t->elapsed_ns = t->wall_ns;
    size_t persist = 0;
    if (p->api.DeviceGetLimit(&persist, CUDA_LIMIT_PERSISTING_L2) == 0 && persist != p->persist_baseline) {
        p->api.DeviceSetLimit(CUDA_LIMIT_PERSISTING_L2, p->persist_baseline);
        snprintf(err, n, "the kernel changed the persisting-L2 cache limit (%zu -> %zu bytes) and left it set",
                 p->persist_baseline, persist);
        return -1;
    }
    unsigned char win[64] = {0};
    if (p->api.StreamGetAttribute(d->stream, CUDA_STREAM_ATTR_ACCESS_POLICY_WINDOW, win) == 0) {
        size_t num_bytes;
        memcpy(&num_bytes, win + sizeof(void *), sizeof num_bytes);
        if (num_bytes > 0) {
            snprintf(err, n, "the kernel left an L2 access-policy window set on the stream (%zu bytes)", num_bytes);
            return -1;
        }
    }
    return 0;
}

static int cuda_healthy(device_t *d, char *err, size_t n)
{
    cuda_priv_t *p = d->priv;
    CK(p->api.DeviceSynchronize(), "device");
    CK(p->api.PeekAtLastError(), "device");
    return 0;
}

/* The CUDA driver maps its own libraries lazily. */
static int cuda_driver_code(const char *path)
{
    return strstr(path, "libcuda") || strstr(path, "libnvidia") || strstr(path, "libcudart");
}

/* Load CUDA modules when the kernel is loaded, not at its first launch:
 * the driver's work is done before the kernel's own code runs. */
static const char *const cuda_env[] = {"CUDA_MODULE_LOADING", "EAGER", NULL};

static device_t cuda_device = {
    .name = "cuda",
    .env = cuda_env,
    .queued_flush = 1,
    .cpu_time = 0,
    .sticky_errors = 1,
    .gpu_driver = 1,
    .driver_code = cuda_driver_code,
    .launches = runner_launches,
    .init = cuda_init,
    .ptr = cuda_ptr,
    .upload = cuda_upload,
    .download = cuda_download,
    .poison = cuda_poison,
    .flush = cuda_flush,
    .unmask = cuda_unmask,
    .timed_call = cuda_timed_call,
    .healthy = cuda_healthy,
};

device_t *device_cuda(void)
{
    return &cuda_device;
}
