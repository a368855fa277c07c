/*
 * iteration_line.h -- the one terminal line `emile cook` prints per
 * iteration as it finishes, and the header line above them, so a person
 * watching sees time, throughput, share of the roofline, speedup, what the
 * diagnosis says and what the agent tried, without opening the report.
 *
 * iter        time           perf  roofline   speedup  diagnosis                 change
 *    0    50.00 ms  5.369 GFLOP/s      3.6%     1.00x  single_threaded,scalar_code  reference
 *    2  compile_error compile failed: 2 errors                                   vectorized
 *    3    5.000 ms  53.69 GFLOP/s     35.8%    10.00x  compute_bound             omp 2 threads + simd
 */
#ifndef EMILE_REPORT_ITERATION_LINE_H
#define EMILE_REPORT_ITERATION_LINE_H

#include <jansson.h>
#include <stddef.h>

/* Write the column header (no newline) into buf of size n.  Returns the
 * number of bytes in buf, -1 when buf is NULL or n is 0. */
int iteration_line_header(char *buf, size_t n);

/* Write one iteration (store.h iteration object) as a line without newline
 * into buf of size n, cut to fit.  ref_time_ms is the reference's median
 * time (iteration 0) for the speedup column; <= 0 or NaN uses the stored
 * "speedup" field.  A valid iteration shows time, GFLOP/s (TFLOP/s from
 * 1000 on), % of roofline, speedup, diagnosis tags and the agent's label
 * (or its reason's first line when there is no label); any other status
 * shows the status and the first line of the error, trimmed.  Missing fields
 * print as "-".  Returns the number of bytes in buf, -1 when buf is NULL,
 * n is 0 or iteration is not an object (buf is then "" when writable). */
int iteration_line(char *buf, size_t n, const json_t *iteration, double ref_time_ms);

#endif
