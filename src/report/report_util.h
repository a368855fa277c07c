/*
 * report_util.h -- what every report writer needs: reading numbers and
 * strings out of the stored JSON (store.h / PROTOCOL.md shapes) without a
 * crash when a field is missing, the iteration's metrics with their
 * fallbacks into the profile report, and the number formats shared by the
 * terminal, Markdown and SVG (so the same run reads the same everywhere).
 */
#ifndef EMILE_REPORT_UTIL_H
#define EMILE_REPORT_UTIL_H

#include <jansson.h>
#include <stddef.h>

/* The value at a dotted path ("report.time_ms.median") below obj; NULL when
 * obj is NULL, a step is missing or is not an object. */
const json_t *rep_get(const json_t *obj, const char *path);
/* The number at path (integer or real); NAN when absent or not a number. */
double rep_num(const json_t *obj, const char *path);
/* The string at path; NULL when absent or not a string. */
const char *rep_str(const json_t *obj, const char *path);

/* An iteration's metrics: the top-level field when it is a number, else the
 * profile report's (time_ms.median, gflops, roofline_pct, intensity); NAN
 * when neither is there. */
double rep_iter_time_ms(const json_t *it);
double rep_iter_gflops(const json_t *it);
double rep_iter_roofline_pct(const json_t *it);
double rep_iter_intensity(const json_t *it);
/* Speedup over a reference time: ref/time when both are positive, else the
 * stored "speedup" field, else NAN. */
double rep_iter_speedup(const json_t *it, double ref_time_ms);
/* 1 when the iteration's status is "valid". */
int rep_iter_valid(const json_t *it);
/* The iteration number; -1 when absent. */
int rep_iter_num(const json_t *it);

/* The diagnosis tags of a profile report joined by sep ("a,b"); "" when
 * none.  Accepts tag objects {"tag","detail"} and bare strings. */
void rep_diag_tags(const json_t *report, const char *sep, char *buf, size_t n);

/* v with sig significant digits in fixed notation ("22.10", "0.01230"),
 * exponent notation beyond 1e9 or below 1e-6, "-" when NaN or infinite.
 * Returns the length written (snprintf-like truncation). */
size_t rep_fmt_sig(char *buf, size_t n, double v, int sig);
/* A time in milliseconds with its unit chosen for the magnitude:
 * "1.234 s", "12.10 ms", "912.3 us", "87.00 ns"; "-" when unknown. */
size_t rep_fmt_time(char *buf, size_t n, double ms);
/* GFLOP/s with unit: "22.10 GFLOP/s", "1.234 TFLOP/s" from 1000 on; "-". */
size_t rep_fmt_flops(char *buf, size_t n, double gflops);

#endif
