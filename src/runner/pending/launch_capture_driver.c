/* launch_capture_driver.c -- the runner's capture of CUDA driver-API
 * launches (cuLaunchKernel, cuLaunchKernelEx, cuLaunchCooperativeKernel and
 * their per-thread-stream variants), beside device_cuda.c's capture of the
 * runtime's cudaLaunchKernel: a candidate that loads a module with the
 * driver API and launches it would otherwise be missing from the profile's
 * per-kernel report (registers, shared memory, occupancy) and from the
 * check that all work is on the harness's stream.
 *
 * (Triton candidates do not need it: their generated entry point loads the
 * cubin with the runtime's library API and launches with cudaLaunchKernel,
 * which device_cuda.c already captures.)
 *
 * Not built yet (src/runner/pending/ is outside the Makefile's RUNNER_SRC
 * glob): src/runner belongs to the trust-boundary work.  To hook it:
 *   1. move this file to src/runner/;
 *   2. in device_cuda.c, export the recording half of record_launch():
 *        void runner_capture_launch(const launch_record_t *r, void *stream)
 *      which, while capturing, appends *r with other_stream computed from
 *      stream against g_harness_stream (as record_launch does);
 *   3. when the runner's exports become an explicit list (a version script
 *      or --dynamic-list instead of -rdynamic), add cuLaunchKernel,
 *      cuLaunchKernel_ptsz, cuLaunchKernelEx, cuLaunchKernelEx_ptsz,
 *      cuLaunchCooperativeKernel, cuLaunchCooperativeKernel_ptsz.
 * Until step 2 the weak reference below is NULL and launches pass through
 * unrecorded.
 *
 * How it works: the runner executable exports these symbols, so a
 * candidate linked against libcuda resolves them here first (the global
 * scope precedes its own dependencies); the real entry points are looked
 * up in the already-loaded libcuda (RTLD_NOLOAD: nothing new is loaded).
 * A candidate that fetches the real pointer with cuGetProcAddress escapes
 * the profile's per-kernel facts, not the timing: the harness times the
 * whole call from outside. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "runner/launches.h"

typedef int curesult_t;
typedef void *cufunction_t;
typedef void *custream_t;

/* CUlaunchConfig (cuda.h, CUDA 12+): the fields read here come first. */
typedef struct cu_launch_config {
    unsigned grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes;
    custream_t stream;
    void *attrs;
    unsigned n_attrs;
} cu_launch_config_t;

#define CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES 1
#define CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES 3
#define CU_FUNC_ATTRIBUTE_NUM_REGS 4
#define CUDA_ERROR_NOT_INITIALIZED 3

void runner_capture_launch(const launch_record_t *r, void *stream) __attribute__((weak));

/* The real entry point `name` in the libcuda the candidate loaded. */
static void *real(const char *name)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    void *f = h ? dlsym(h, name) : NULL;
    if (h)
        dlclose(h);
    return f;
}

static void capture(cufunction_t f, const unsigned grid[3], const unsigned block[3], unsigned smem,
                    custream_t stream)
{
    if (!runner_capture_launch)
        return;
    launch_record_t r;
    memset(&r, 0, sizeof r);
    memcpy(r.grid, grid, sizeof r.grid);
    memcpy(r.block, block, sizeof r.block);
    r.dyn_smem = smem;
    curesult_t (*attr)(int *, int, cufunction_t) = (curesult_t (*)(int *, int, cufunction_t))real("cuFuncGetAttribute");
    curesult_t (*get_name)(const char **, cufunction_t) =
        (curesult_t (*)(const char **, cufunction_t))real("cuFuncGetName");   /* CUDA >= 12.3 */
    int v = 0;
    if (attr && attr(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, f) == 0)
        r.regs = v;
    if (attr && attr(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f) == 0)
        r.static_smem = (size_t)v;
    if (attr && attr(&v, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, f) == 0)
        r.local = (size_t)v;
    const char *name = NULL;
    if (get_name && get_name(&name, f) == 0 && name)
        snprintf(r.name, sizeof r.name, "%s", name);
    else
        snprintf(r.name, sizeof r.name, "kernel@%p", f);
    runner_capture_launch(&r, stream);
}

typedef curesult_t (*launch_fn)(cufunction_t, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                custream_t, void **, void **);
typedef curesult_t (*coop_fn)(cufunction_t, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              custream_t, void **);
typedef curesult_t (*launch_ex_fn)(const cu_launch_config_t *, cufunction_t, void **, void **);

#define LAUNCH(sym)                                                                                          \
    __attribute__((visibility("default"))) curesult_t sym(cufunction_t f, unsigned gx, unsigned gy, unsigned gz, \
                                                          unsigned bx, unsigned by, unsigned bz, unsigned smem,  \
                                                          custream_t stream, void **params, void **extra)        \
    {                                                                                                        \
        launch_fn fn = (launch_fn)real(#sym);                                                                \
        if (!fn)                                                                                             \
            return CUDA_ERROR_NOT_INITIALIZED;                                                               \
        unsigned g[3] = {gx, gy, gz}, b[3] = {bx, by, bz};                                                   \
        capture(f, g, b, smem, stream);                                                                      \
        return fn(f, gx, gy, gz, bx, by, bz, smem, stream, params, extra);                                   \
    }
LAUNCH(cuLaunchKernel)
LAUNCH(cuLaunchKernel_ptsz)

#define COOP(sym)                                                                                            \
    __attribute__((visibility("default"))) curesult_t sym(cufunction_t f, unsigned gx, unsigned gy, unsigned gz, \
                                                          unsigned bx, unsigned by, unsigned bz, unsigned smem,  \
                                                          custream_t stream, void **params)                      \
    {                                                                                                        \
        coop_fn fn = (coop_fn)real(#sym);                                                                    \
        if (!fn)                                                                                             \
            return CUDA_ERROR_NOT_INITIALIZED;                                                               \
        unsigned g[3] = {gx, gy, gz}, b[3] = {bx, by, bz};                                                   \
        capture(f, g, b, smem, stream);                                                                      \
        return fn(f, gx, gy, gz, bx, by, bz, smem, stream, params);                                          \
    }
COOP(cuLaunchCooperativeKernel)
COOP(cuLaunchCooperativeKernel_ptsz)

#define LAUNCH_EX(sym)                                                                                       \
    __attribute__((visibility("default"))) curesult_t sym(const cu_launch_config_t *c, cufunction_t f,         \
                                                          void **params, void **extra)                           \
    {                                                                                                        \
        launch_ex_fn fn = (launch_ex_fn)real(#sym);                                                          \
        if (!fn)                                                                                             \
            return CUDA_ERROR_NOT_INITIALIZED;                                                               \
        if (c) {                                                                                             \
            unsigned g[3] = {c->grid_x, c->grid_y, c->grid_z}, b[3] = {c->block_x, c->block_y, c->block_z};  \
            capture(f, g, b, c->shared_bytes, c->stream);                                                    \
        }                                                                                                    \
        return fn(c, f, params, extra);                                                                      \
    }
LAUNCH_EX(cuLaunchKernelEx)
LAUNCH_EX(cuLaunchKernelEx_ptsz)
