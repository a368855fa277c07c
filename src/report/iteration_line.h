/*
 * iteration_line.h -- the one terminal line `emile cook` prints per
 * iteration as it finishes, and the header line above them, so a person
 * watching sees time, throughput, share of the roofline, speedup, what the
 * diagnosis says and what the agent tried, without opening the report.
 *
 *  iter        time           perf  roofline  speedup  diagnosis               change
 *     0    12.10 ms  22.18 GFLOP/s     14.8%    1.00x  single_threaded         reference
 *     4  invalid        max_err 3.1e-02 > tol 1.0e-04                          flash bq=64
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
