/* diagnose.c -- diagnosis tags a kernel expert would give, read off a
 * profile report (and the device).  The builtin agent's rules act on these
 * tags, so each tag carries a sentence with the numbers behind it. */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "emile.h"

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static void tag(json_t *arr, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void tag(json_t *arr, const char *name, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_t *t = json_object();
    json_object_set_new(t, "tag", json_string(name));
    json_object_set_new(t, "detail", json_string(buf));
    json_array_append_new(arr, t);
}

/* A host device: threads and SIMD lanes. */
static void diagnose_host(json_t *d, const json_t *r, const json_t *device)
{
    double cores = num(device, "cores");
    double par = num(r, "parallelism");
    const json_t *ceil = json_object_get(device, "ceilings");
    double vbytes = num(ceil, "vector_bytes");
    double peak = num(r, "peak_gflops");
    if (cores > 1 && par > 0 && par < 1.3)
        tag(d, "single_threaded", "the kernel kept %.2f of %.0f cores busy", par, cores);
    else if (cores > 1 && par > 0 && par < 0.85 * cores)
        tag(d, "load_imbalance", "the kernel kept %.2f of %.0f cores busy: threads wait for each other", par,
            cores);
    /* Per busy core, compare with one core's vector peak: far below the
     * scalar share of it means the loops did not vectorise. */
    double lanes = vbytes > 0 ? vbytes / 4 : 8;
    double busy = par > 1 ? par : 1;
    double per_core = num(r, "gflops") / busy;
    double core_peak = cores > 0 ? peak / cores : peak;
    if (core_peak > 0 && per_core < core_peak / lanes * 0.75)
        tag(d, "scalar_code", "%.2f GFLOP/s per busy core, below one core's scalar share of the vector peak "
                              "(%.2f of %.1f GFLOP/s with %.0f lanes)", per_core, core_peak / lanes, core_peak,
            lanes);
}

/* A GPU: per device kernel, from the launches and the machine code
 * (spills, occupancy and its limiter, waves, tensor-core instructions);
 * the counters' DRAM traffic; work outside the stream. */
static void diagnose_gpu(json_t *d, const json_t *r, const json_t *device, int dtype)
{
    const json_t *kernels = json_object_get(r, "kernels");
    size_t i;
    const json_t *k;
    int any_tc = 0, n_k = 0;
    json_array_foreach(kernels, i, k) {
        n_k++;
        const char *name = json_string_value(json_object_get(k, "name"));
        double local = num(k, "local");
        if (local > 0)
            tag(d, "spills", "%s uses %.0f bytes of local memory per thread (register spills)", name ? name : "?",
                local);
        any_tc |= num(k, "hmma") > 0 || num(k, "hgmma") > 0;
        const char *lim = json_string_value(json_object_get(k, "limiter"));
        double occ = num(k, "occupancy");
        if (lim && occ > 0 && occ < 0.25) {
            char t[64];
            snprintf(t, sizeof t, "occupancy_limited_by_%s", lim);
            tag(d, t, "%s: theoretical occupancy %.0f%%, limited by %s", name ? name : "?", occ * 100, lim);
        }
        double waves = num(k, "waves");
        if (waves > 0 && waves < 8) {
            double frac = waves - floor(waves);
            if (frac > 0 && frac < 0.5)
                tag(d, "tail_effect", "%s runs %.2f waves: the last wave keeps only %.0f%% of the SMs busy",
                    name ? name : "?", waves, frac * 100);
            else if (waves < 1)
                tag(d, "tail_effect", "%s runs %.2f waves: the grid does not fill the GPU", name ? name : "?", waves);
        }
    }
    if (n_k > 0 && !any_tc && (dtype == EMILE_DTYPE_BF16 || dtype == EMILE_DTYPE_F16))
        tag(d, "no_tensor_cores", "no HMMA/HGMMA instruction in the SASS: the %s math runs on CUDA cores",
            dtype == EMILE_DTYPE_BF16 ? "bf16" : "fp16");
    const json_t *ctr = json_object_get(r, "counters");
    double dram = num(ctr, "dram_bytes");
    if (dram > 0 && num(r, "bytes") > 0 && dram > 1.5 * num(r, "bytes"))
        tag(d, "excess_dram_traffic", "DRAM traffic %.3g bytes is %.1fx the minimum: data is re-read",
            dram, dram / num(r, "bytes"));
    if (num(r, "escaped_runs") > 0)
        tag(d, "work_outside_stream", "%.0f timed runs finished work after the stream's end event; "
                                      "their host wall time was counted", num(r, "escaped_runs"));
    (void)device;
}

json_t *profile_diagnose(const json_t *r, const json_t *device, int dtype)
{
    json_t *d = json_array();
    /* The tag set is the device class's (backend.h), not the vendor's. */
    const backend_t *b = backend_find(json_string_value(json_object_get(r, "backend")));
    int gpu = b && b->kind == BACKEND_GPU;
    if (gpu)
        diagnose_gpu(d, r, device, dtype);
    else
        diagnose_host(d, r, device);
    double roof = num(r, "roofline_pct");
    const char *bound = json_string_value(json_object_get(r, "bound"));
    if (roof > 105)
        tag(d, "above_roofline", "%.0f%% of the attainable rate: faster than the measured ceilings allow; check "
                                 "the op's FLOP/byte model, or remeasure the ceilings (emile devices --remeasure)", roof);
    else if (roof >= 70)
        tag(d, "near_roofline", "%.0f%% of the attainable rate at this intensity", roof);
    else if (bound && strcmp(bound, "memory") == 0)
        tag(d, gpu ? "memory_bound_below_bandwidth" : "memory_bound",
            "intensity %.2f FLOP/B is below the ridge (%.2f): bandwidth bound, at %.0f%% of it",
            num(r, "intensity"), num(r, "ridge"), num(r, "pct_bandwidth"));
    else
        tag(d, "compute_bound", "intensity %.1f FLOP/B is above the ridge (%.1f): at %.1f%% of peak compute",
            num(r, "intensity"), num(r, "ridge"), num(r, "pct_peak_flops"));
    if (gpu && roof < 25 && num(r, "pct_bandwidth") < 25) {
        const json_t *k = json_array_get(json_object_get(r, "kernels"), 0);
        if (k && num(k, "occupancy") > 0 && num(k, "occupancy") < 0.2)
            tag(d, "latency_bound", "low rate and low bandwidth with %.0f%% occupancy: too few warps in flight",
                num(k, "occupancy") * 100);
    }
    const json_t *tm = json_object_get(r, "time_ms");
    double med = num(tm, "median");
    if (med > 0 && (num(tm, "p90") - num(tm, "p10")) / med > 0.25)
        tag(d, "noisy_timing", "p10-p90 spread is %.0f%% of the median",
            100 * (num(tm, "p90") - num(tm, "p10")) / med);
    return d;
}
