/*
 * report_util.c -- JSON access with fallbacks and shared number formats.
 */
#include "report_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const json_t *rep_get(const json_t *obj, const char *path)
{
    const json_t *cur = obj;
    const char *p = path;
    while (cur && p && *p) {
        if (!json_is_object(cur))
            return NULL;
        size_t len = strcspn(p, ".");
        char key[64];
        if (len >= sizeof key)
            return NULL;
        memcpy(key, p, len);
        key[len] = '\0';
        cur = json_object_get(cur, key);
        p += len;
        if (*p == '.')
            p++;
    }
    return cur;
}

double rep_num(const json_t *obj, const char *path)
{
    const json_t *v = rep_get(obj, path);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

const char *rep_str(const json_t *obj, const char *path)
{
    const json_t *v = rep_get(obj, path);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The top-level number key, else the report's number at rpath. */
static double with_fallback(const json_t *it, const char *key, const char *rpath)
{
    double v = rep_num(it, key);
    if (isnan(v))
        v = rep_num(rep_get(it, "report"), rpath);
    return v;
}

double rep_iter_time_ms(const json_t *it)
{
    /* Top level time_ms is the median as a number; in the report it is the
     * whole timing object. */
    return with_fallback(it, "time_ms", "time_ms.median");
}

double rep_iter_gflops(const json_t *it)
{
    return with_fallback(it, "gflops", "gflops");
}

double rep_iter_roofline_pct(const json_t *it)
{
    return with_fallback(it, "roofline_pct", "roofline_pct");
}

double rep_iter_intensity(const json_t *it)
{
    return with_fallback(it, "intensity", "intensity");
}

double rep_iter_speedup(const json_t *it, double ref_time_ms)
{
    double t = rep_iter_time_ms(it);
    if (ref_time_ms > 0 && t > 0 && isfinite(ref_time_ms) && isfinite(t))
        return ref_time_ms / t;
    return rep_num(it, "speedup");
}

int rep_iter_valid(const json_t *it)
{
    const char *st = rep_str(it, "status");
    return st && strcmp(st, "valid") == 0;
}

int rep_iter_num(const json_t *it)
{
    const json_t *v = json_object_get(it, "iter");
    if (json_is_integer(v))
        return (int)json_integer_value(v);
    /* A hand-written run file may say 3.0. */
    double d = json_is_real(v) ? json_real_value(v) : -1;
    return (d >= 0 && d < 1e9 && d == floor(d)) ? (int)d : -1;
}

void rep_diag_tags(const json_t *report, const char *sep, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    buf[0] = '\0';
    const json_t *diag = json_object_get(report, "diagnosis");
    if (!json_is_array(diag))
        return;
    size_t used = 0, i;
    const json_t *d;
    json_array_foreach(diag, i, d) {
        const char *tag = json_is_string(d) ? json_string_value(d)
                                            : rep_str(d, "tag");
        if (!tag || !*tag)
            continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? sep : "", tag);
        if (w < 0 || (size_t)w >= n - used) {
            buf[used] = '\0';     /* never half a tag */
            return;
        }
        used += (size_t)w;
    }
}

size_t rep_fmt_sig(char *buf, size_t n, double v, int sig)
{
    if (!buf || n == 0)
        return 0;
    if (sig < 1)
        sig = 1;
    int w;
    if (!isfinite(v)) {
        w = snprintf(buf, n, "-");
    } else if (v == 0) {
        w = snprintf(buf, n, "0");
    } else if (fabs(v) >= 1e9 || fabs(v) < 1e-6) {
        w = snprintf(buf, n, "%.*e", sig - 1, v);
    } else {
        /* Let printf do the rounding to sig digits, then read its exponent:
         * this gets 9.9996 -> "10.00" right where floor(log10) would not. */
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*e", sig - 1, v);
        const char *e = strchr(tmp, 'e');
        int exp10 = e ? atoi(e + 1) : 0;
        int dec = sig - 1 - exp10;
        if (dec < 0)
            dec = 0;
        w = snprintf(buf, n, "%.*f", dec, v);
    }
    if (w < 0)
        return 0;
    return (size_t)w < n ? (size_t)w : n - 1;
}

/* "<value> <unit>" from the parts. */
static size_t with_unit(char *buf, size_t n, double v, const char *unit)
{
    char num[48];
    rep_fmt_sig(num, sizeof num, v, 4);
    int w = snprintf(buf, n, "%s %s", num, unit);
    if (w < 0)
        return 0;
    return (size_t)w < n ? (size_t)w : n - 1;
}

size_t rep_fmt_time(char *buf, size_t n, double ms)
{
    if (!buf || n == 0)
        return 0;
    if (!isfinite(ms) || ms < 0)
        return (size_t)snprintf(buf, n, "%s", n > 1 ? "-" : "");
    /* Thresholds at 999.95 etc. so that rounding never shows "1000 ms". */
    if (ms >= 999.95)
        return with_unit(buf, n, ms / 1e3, "s");
    if (ms >= 0.99995)
        return with_unit(buf, n, ms, "ms");
    if (ms >= 0.00099995)
        return with_unit(buf, n, ms * 1e3, "us");
    return with_unit(buf, n, ms * 1e6, "ns");
}

size_t rep_fmt_flops(char *buf, size_t n, double gflops)
{
    if (!buf || n == 0)
        return 0;
    if (!isfinite(gflops) || gflops < 0)
        return (size_t)snprintf(buf, n, "%s", n > 1 ? "-" : "");
    if (gflops >= 999.95)
        return with_unit(buf, n, gflops / 1e3, "TFLOP/s");
    return with_unit(buf, n, gflops, "GFLOP/s");
}
