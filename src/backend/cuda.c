/* cuda.c -- the cuda backend: CUDA C++ kernels built by nvcc for the
 * detected architecture (sm_90a on Hopper, so wgmma and TMA are there) into
 * a shared object using the shared CUDA runtime.  The driver is reached
 * with dlopen, so emile runs (and says why cuda is unavailable) on machines
 * without it.  Ceilings: kernels/ceilings/cuda_ceilings.cu (cuBLAS GEMM for
 * bf16/fp16 tensor cores, an FMA kernel for fp32, a device copy). */
#include "backend.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda_inspect.h"
#include "util/child_call.h"
#include "util/fs.h"
#include "util/paths.h"
#include "sandbox/sandbox.h"

typedef struct drv {
    int (*Init)(unsigned);
    int (*DeviceGetCount)(int *);
    int (*DeviceGet)(int *, int);
    int (*DeviceGetName)(char *, int, int);
    int (*DeviceGetAttribute)(int *, int, int);
    int (*DeviceTotalMem)(size_t *, int);
    int (*DeviceGetPCIBusId)(char *, int, int);   /* optional: the physical card (the device lock) */
} drv_t;

static int load_driver(drv_t *d, char *why, size_t n)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, n, "no NVIDIA driver (libcuda.so.1 not found): the cuda backend needs a GPU host");
        return -1;
    }
    *(void **)&d->Init = dlsym(h, "cuInit");
    *(void **)&d->DeviceGetCount = dlsym(h, "cuDeviceGetCount");
    *(void **)&d->DeviceGet = dlsym(h, "cuDeviceGet");
    *(void **)&d->DeviceGetName = dlsym(h, "cuDeviceGetName");
    *(void **)&d->DeviceGetAttribute = dlsym(h, "cuDeviceGetAttribute");
    *(void **)&d->DeviceTotalMem = dlsym(h, "cuDeviceTotalMem_v2");
    *(void **)&d->DeviceGetPCIBusId = dlsym(h, "cuDeviceGetPCIBusId");
    if (!d->Init || !d->DeviceGetCount || !d->DeviceGet || !d->DeviceGetName || !d->DeviceGetAttribute ||
        !d->DeviceTotalMem) {
        snprintf(why, n, "libcuda.so.1 lacks the driver entry points emile needs");
        return -1;
    }
    int count = 0;
    if (d->Init(0) != 0 || d->DeviceGetCount(&count) != 0 || count < 1) {
        snprintf(why, n, "the NVIDIA driver reports no usable GPU");
        return -1;
    }
    return 0;
}

const char *cuda_nvcc(void)
{
    const char *c = getenv("EMILE_NVCC");
    if (c && *c)
        return c;
    return access("/usr/local/cuda/bin/nvcc", X_OK) == 0 ? "/usr/local/cuda/bin/nvcc" : "nvcc";
}

/* Compute capability of device 0 as e.g. 90 from the driver, in this
 * process; 0 when unknown. */
static int driver_cc(void)
{
    drv_t d;
    char why[256];
    int dev = 0, ma = 0, mi = 0;
    if (load_driver(&d, why, sizeof why) != 0)
        return 0;
    d.DeviceGet(&dev, 0);
    d.DeviceGetAttribute(&ma, 75, dev); /* COMPUTE_CAPABILITY_MAJOR */
    d.DeviceGetAttribute(&mi, 76, dev);
    return ma * 10 + mi;
}

static int driver_cc_child(void *ctx, int fd)
{
    (void)ctx;
    int v = driver_cc();
    return fs_write_all(fd, &v, sizeof v) == 0 ? 0 : 1;
}

/* driver_cc() asked in a child, which alone loads and initialises the
 * driver; 0 when unknown. */
static int driver_cc_in_child(void)
{
    int v = 0;
    size_t len = 0;
    if (child_call(driver_cc_child, NULL, &v, sizeof v, &len) != 0 || len != sizeof v)
        return 0;
    return v >= 0 ? v : 0;
}

/* Compute capability of device 0 as e.g. 90; 0 when unknown.  Building a
 * compile command must not bring the driver into a process that has not
 * loaded it: cuInit starts the driver's threads, and a process that forks
 * children to run CUDA (the Tasting Room: its engine children are forked,
 * not executed, and it refuses to fork with threads) must reach fork()
 * single-threaded and without a CUDA context its children cannot use.  So
 * the driver is asked here only when it is already here (the worker, which
 * probed the device in-process); otherwise in a short-lived child. */
int cuda_cc(void)
{
    static int cc = -1;
    if (cc >= 0)
        return cc;
    const char *env = getenv("EMILE_CUDA_ARCH");
    if (env) {
        cc = atoi(env);
        return cc;
    }
    void *here = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (here) {
        dlclose(here);
        cc = driver_cc();
    } else {
        cc = driver_cc_in_child();
    }
    return cc;
}

/* Shared memory a block may opt in to (bytes) on device 0's architecture
 * (cuda_cc: EMILE_CUDA_ARCH, else the device's; sm_90 when unknown).  A
 * table, not the driver: building a compile command must not bring the
 * driver into this process (see cuda_cc). */
int cuda_smem_optin(void)
{
    static const int table[][2] = {{70, 98304}, {75, 65536}, {80, 166912}, {86, 101376}, {87, 166912},
                                   {89, 101376}, {90, 232448}, {100, 232448}, {103, 232448}, {120, 101376}};
    int cc = cuda_cc() > 0 ? cuda_cc() : 90;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i][0] == cc)
            return table[i][1];
    return 101376;
}

static int cuda_available(char *why, size_t n)
{
    drv_t d;
    return load_driver(&d, why, n);
}

/* sm_90 -> sm_90a: the arch-specific target that enables wgmma/TMA. */
void cuda_arch_flag(int cc, char *buf, size_t n)
{
    if (cc <= 0)
        cc = 90;
    snprintf(buf, n, "-arch=sm_%d%s", cc, cc == 90 || cc == 100 ? "a" : "");
}

static int cuda_compile_argv(const char *src, const char *out, const char *include_dir, char **argv, int max,
                             char *buf, size_t bufn)
{
    int k = 0;
    char inc[1024], arch[32];
    snprintf(inc, sizeof inc, "-I%s", include_dir);
    cuda_arch_flag(cuda_cc(), arch, sizeof arch);
    const char *args[] = {cuda_nvcc(), "-O3", "-std=c++17", arch, "-shared", "-Xcompiler", "-fPIC",
                          "-cudart", "shared", "-lineinfo", "-Xptxas", "-v", inc, src, "-o", out};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        if (backend_argv_add(argv, &k, max, &buf, &bufn, args[i]) != 0)
            return -1;
    return 0;
}

static int cuda_describe(json_t **device, char *err, size_t n)
{
    drv_t d;
    if (load_driver(&d, err, n) != 0)
        return -1;
    int dev, sms = 0, ma = 0, mi = 0, l2 = 0, smem = 0, regs = 0, clock = 0, memclk = 0, busw = 0, thr = 0;
    char name[256] = {0};
    size_t mem = 0;
    d.DeviceGet(&dev, 0);
    d.DeviceGetName(name, sizeof name, dev);
    d.DeviceGetAttribute(&sms, 16, dev);    /* MULTIPROCESSOR_COUNT */
    d.DeviceGetAttribute(&ma, 75, dev);
    d.DeviceGetAttribute(&mi, 76, dev);
    d.DeviceGetAttribute(&l2, 38, dev);     /* L2_CACHE_SIZE */
    d.DeviceGetAttribute(&smem, 97, dev);   /* MAX_SHARED_MEMORY_PER_MULTIPROCESSOR */
    d.DeviceGetAttribute(&regs, 82, dev);   /* MAX_REGISTERS_PER_MULTIPROCESSOR */
    d.DeviceGetAttribute(&thr, 39, dev);    /* MAX_THREADS_PER_MULTIPROCESSOR */
    d.DeviceGetAttribute(&clock, 13, dev);  /* CLOCK_RATE kHz */
    d.DeviceGetAttribute(&memclk, 36, dev); /* MEMORY_CLOCK_RATE kHz */
    d.DeviceGetAttribute(&busw, 37, dev);   /* GLOBAL_MEMORY_BUS_WIDTH */
    d.DeviceTotalMem(&mem, dev);
    char host[128] = "host", key[512];
    gethostname(host, sizeof host - 1);
    snprintf(key, sizeof key, "cuda:%s:%s:0", host, name);
    json_t *j = json_object();
    json_object_set_new(j, "backend", json_string("cuda"));
    json_object_set_new(j, "name", json_string(name));
    json_object_set_new(j, "key", json_string(key));
    /* The card itself, whatever CUDA_VISIBLE_DEVICES calls it: workers
     * that time on one card share its device lock (worker/device_turn.h). */
    char bus[64] = "";
    if (d.DeviceGetPCIBusId && d.DeviceGetPCIBusId(bus, sizeof bus, dev) == 0 && bus[0])
        json_object_set_new(j, "pci_bus_id", json_string(bus));
    json_object_set_new(j, "compute_capability", json_integer(ma * 10 + mi));
    json_object_set_new(j, "sms", json_integer(sms));
    json_object_set_new(j, "l2_bytes", json_integer(l2));
    json_object_set_new(j, "smem_per_sm", json_integer(smem));
    json_object_set_new(j, "regs_per_sm", json_integer(regs));
    json_object_set_new(j, "threads_per_sm", json_integer(thr));
    json_object_set_new(j, "memory_bytes", json_integer((json_int_t)mem));
    json_object_set_new(j, "clock_khz", json_integer(clock));
    /* Datasheet figures shown beside the measured ones. */
    json_t *ds = json_object();
    json_object_set_new(ds, "bandwidth_gbs", json_real(2.0 * memclk * 1e3 * (busw / 8.0) / 1e9));
    if (strstr(name, "H100") && strstr(name, "HBM3")) {
        json_object_set_new(ds, "bf16_tflops", json_real(989.4));
        json_object_set_new(ds, "fp32_tflops", json_real(66.9));
        json_object_set_new(ds, "bandwidth_gbs", json_real(3350));
    } else if (strstr(name, "H200")) {
        json_object_set_new(ds, "bf16_tflops", json_real(989.4));
        json_object_set_new(ds, "fp32_tflops", json_real(66.9));
        json_object_set_new(ds, "bandwidth_gbs", json_real(4800));
    }
    json_object_set_new(j, "datasheet", ds);
    *device = j;
    return 0;
}

static int cuda_measure(const char *workdir, json_t **ceilings, char *err, size_t n)
{
    char src[1024], prog[1024], arch[32], inc[1024];
    emile_root_file("kernels/ceilings/cuda_ceilings.cu", src, sizeof src);
    snprintf(prog, sizeof prog, "%s/cuda_ceilings", workdir);
    snprintf(inc, sizeof inc, "-I%s/include", emile_root());
    cuda_arch_flag(cuda_cc(), arch, sizeof arch);
    char *argv[] = {(char *)cuda_nvcc(), "-O3", "-std=c++17", arch, inc, src, "-o", prog, "-lcublas", NULL};
    return backend_run_ceilings_program(workdir, argv, prog, 300, ceilings, err, n);
}

/* A Triton kernel's .so embeds its cubin as data, where cuobjdump does not
 * look; its build leaves the cubin beside it (kernel.cubin): read that. */
static int cuda_inspect_so(const char *so, const char *workdir, json_t **kernels, char *err, size_t n)
{
    char cubin[1024];
    size_t len = strlen(so);
    if (len > 3 && strcmp(so + len - 3, ".so") == 0 && len < sizeof cubin - 8) {
        snprintf(cubin, sizeof cubin, "%.*s.cubin", (int)(len - 3), so);
        if (access(cubin, R_OK) == 0)
            return cuda_inspect(cubin, workdir, cuda_cc(), kernels, err, n);
    }
    return cuda_inspect(so, workdir, cuda_cc(), kernels, err, n);
}

/* The driver's list (/proc/driver/nvidia/gpus, one directory a GPU): no
 * CUDA needed to count them. */
static int cuda_count_devices(void)
{
    int n = 0;
    DIR *d = opendir("/proc/driver/nvidia/gpus");
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static const char *const cuda_langs[] = {"cuda", "triton", NULL};

const backend_t backend_cuda = {
    .name = "cuda",
    .src_ext = ".cu",
    .host_mem_limit = 0,
    .kind = BACKEND_GPU,
    .device_words = "an NVIDIA GPU",
    .runner_device = "cuda",
    .device_memory = 1,
    .visible_devices_env = "CUDA_VISIBLE_DEVICES",
    .count_devices = cuda_count_devices,
    .torch_device = "cuda",
    .langs = cuda_langs,
    .caps = BACKEND_CAP_LAUNCHES | BACKEND_CAP_COUNTERS | BACKEND_CAP_SASS,
    .counters_tool = "ncu",
    .warmup = 3,
    .timing_budget_s = 0.3,
    .min_reps = 20,
    .max_reps = 200,
    .engine_dtype = 2, /* EMILE_DTYPE_BF16 */
    .available = cuda_available,
    .compile_argv = cuda_compile_argv,
    .describe = cuda_describe,
    .measure_ceilings = cuda_measure,
    .inspect = cuda_inspect_so,
};
