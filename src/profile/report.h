/* report.h -- the profile report (docs/PROTOCOL.md): timing statistics,
 * achieved rates against the op's FLOP/byte model, shares of the measured
 * ceilings, the roofline, and the diagnosis.  One JSON shape for the CLI,
 * the agents, the store and the web UI. */
#ifndef EMILE_REPORT_H
#define EMILE_REPORT_H

#include <jansson.h>

typedef struct profile_input {
    const char *backend;
    const json_t *device;        /* with "ceilings" */
    int dtype;
    double flops, bytes;
    const double *elapsed_ns;    /* per timed run */
    const double *cpu_ns;        /* per timed run (cpu), may be NULL */
    int reps, warmup;
    int escaped_runs;            /* runs whose work escaped the stream */
    double max_err;
    const json_t *kernels;       /* per device kernel facts, may be NULL */
    const json_t *counters;      /* hardware counters, may be NULL */
} profile_input_t;

json_t *profile_report(const profile_input_t *in);
/* Peak GFLOP/s of the device for a dtype (falls back to f32), 0 if unknown. */
double profile_peak_gflops(const json_t *device, int dtype);
/* Diagnosis tags for a finished report: array of {"tag","detail"}. */
json_t *profile_diagnose(const json_t *report, const json_t *device, int dtype);

#endif
