/* report.c -- see report.h. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "task/task.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *sorted, int n, double q)
{
    if (n <= 0)
        return 0;
    double pos = q * (n - 1);
    int lo = (int)floor(pos), hi = (int)ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

double profile_peak_gflops(const json_t *device, int dtype)
{
    const json_t *peak = json_object_get(json_object_get(device, "ceilings"), "peak_gflops");
    if (json_is_number(peak))
        return json_number_value(peak);
    const json_t *v = json_object_get(peak, dtype_name(dtype));
    if (!json_is_number(v))
        v = json_object_get(peak, "f32");
    return json_is_number(v) ? json_number_value(v) : 0;
}

json_t *profile_report(const profile_input_t *in)
{
    json_t *r = json_object();
    int n = in->reps;
    double *t = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) {
        t[i] = in->elapsed_ns[i] * 1e-6;
        mean += t[i];
    }
    mean = n ? mean / n : 0;
    for (int i = 0; i < n; i++)
        var += (t[i] - mean) * (t[i] - mean);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double med = quantile(t, n, 0.5);
    json_t *tm = json_object();
    json_object_set_new(tm, "median", json_real(med));
    json_object_set_new(tm, "min", json_real(n ? t[0] : 0));
    json_object_set_new(tm, "max", json_real(n ? t[n - 1] : 0));
    json_object_set_new(tm, "mean", json_real(mean));
    json_object_set_new(tm, "stdev", json_real(n > 1 ? sqrt(var / (n - 1)) : 0));
    json_object_set_new(tm, "p10", json_real(quantile(t, n, 0.1)));
    json_object_set_new(tm, "p90", json_real(quantile(t, n, 0.9)));
    json_object_set_new(tm, "reps", json_integer(n));
    json_object_set_new(tm, "warmup", json_integer(in->warmup));
    json_object_set_new(r, "time_ms", tm);
    free(t);

    json_object_set_new(r, "backend", json_string(in->backend));
    json_object_set_new(r, "device", json_string(json_string_value(json_object_get(in->device, "name"))
                                                     ? json_string_value(json_object_get(in->device, "name"))
                                                     : "unknown"));
    json_object_set_new(r, "dtype", json_string(dtype_name(in->dtype)));
    double sec = med * 1e-3;
    double gflops = sec > 0 ? in->flops / sec * 1e-9 : 0;
    double gbs = sec > 0 ? in->bytes / sec * 1e-9 : 0;
    double intensity = in->bytes > 0 ? in->flops / in->bytes : 0;
    double peak = profile_peak_gflops(in->device, in->dtype);
    const json_t *bw_j = json_object_get(json_object_get(in->device, "ceilings"), "bandwidth_gbs");
    double bw = json_is_number(bw_j) ? json_number_value(bw_j) : 0;
    double ridge = bw > 0 ? peak / bw : 0;
    double roof = peak;
    if (bw > 0 && intensity * bw < roof)
        roof = intensity * bw;
    json_object_set_new(r, "flops", json_real(in->flops));
    json_object_set_new(r, "bytes", json_real(in->bytes));
    json_object_set_new(r, "gflops", json_real(gflops));
    json_object_set_new(r, "gbs", json_real(gbs));
    json_object_set_new(r, "intensity", json_real(intensity));
    json_object_set_new(r, "peak_gflops", json_real(peak));
    json_object_set_new(r, "bandwidth_gbs", json_real(bw));
    json_object_set_new(r, "ridge", json_real(ridge));
    json_object_set_new(r, "bound", json_string(intensity >= ridge ? "compute" : "memory"));
    json_object_set_new(r, "roofline_gflops", json_real(roof));
    json_object_set_new(r, "roofline_pct", json_real(roof > 0 ? 100.0 * gflops / roof : 0));
    json_object_set_new(r, "pct_peak_flops", json_real(peak > 0 ? 100.0 * gflops / peak : 0));
    json_object_set_new(r, "pct_bandwidth", json_real(bw > 0 ? 100.0 * gbs / bw : 0));
    if (in->cpu_ns && n > 0) {
        double *par = malloc(sizeof(double) * (size_t)n);
        for (int i = 0; i < n; i++)
            par[i] = in->elapsed_ns[i] > 0 ? in->cpu_ns[i] / in->elapsed_ns[i] : 0;
        qsort(par, (size_t)n, sizeof *par, cmp_double);
        json_object_set_new(r, "parallelism", json_real(quantile(par, n, 0.5)));
        free(par);
    }
    json_object_set_new(r, "max_err", json_real(in->max_err));
    json_object_set_new(r, "escaped_runs", json_integer(in->escaped_runs));
    json_object_set_new(r, "kernels", in->kernels ? json_deep_copy(in->kernels) : json_array());
    if (in->counters)
        json_object_set_new(r, "counters", json_deep_copy(in->counters));
    json_object_set_new(r, "diagnosis", profile_diagnose(r, in->device, in->dtype));
    return r;
}
