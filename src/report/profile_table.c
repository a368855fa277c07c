/*
 * profile_table.c -- one profile report as a terminal table
 * (report_profile_table, declared in report_md.h).
 */
#include "report_md.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_util.h"
#include "textbuf.h"

#define LABEL_W 14

static void row_label(textbuf_t *b, const char *label)
{
    textbuf_printf(b, "%-*s", LABEL_W, label);
}

/* A percentage with one decimal, "-" when unknown. */
static const char *pct(char *buf, size_t n, double v)
{
    if (isfinite(v))
        snprintf(buf, n, "%.1f%%", v);
    else
        snprintf(buf, n, "-");
    return buf;
}

/* v with 4 significant digits and an SI prefix: "268.4 M", "2.097 k". */
static void fmt_si(char *buf, size_t n, double v)
{
    static const char *pre[] = {"", " k", " M", " G", " T", " P", " E"};
    int k = 0;
    while (fabs(v) >= 999.95 && k < 6) {
        v /= 1000;
        k++;
    }
    size_t len = rep_fmt_sig(buf, n, v, 4);
    snprintf(buf + len, n - len, "%s", pre[k]);
}

/* Append one JSON value compactly: integers exact, reals with four digits,
 * number arrays as a shape ("64x8x1"), other structures as compact JSON. */
static void put_value(textbuf_t *b, const json_t *v)
{
    char num[48];
    if (json_is_integer(v)) {
        textbuf_printf(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        rep_fmt_sig(num, sizeof num, json_real_value(v), 4);
        textbuf_puts(b, num);
    } else if (json_is_string(v)) {
        textbuf_plain(b, json_string_value(v));
    } else if (json_is_boolean(v)) {
        textbuf_puts(b, json_is_true(v) ? "yes" : "no");
    } else if (json_is_null(v) || !v) {
        textbuf_puts(b, "-");
    } else {
        int shape = json_is_array(v) && json_array_size(v) > 0;
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
            shape &= json_is_number(e);
        if (shape) {
            json_array_foreach(v, i, e) {
                if (i)
                    textbuf_putc(b, 'x');
                put_value(b, e);
            }
            return;
        }
        char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s) {
            b->failed = 1;
            return;
        }
        textbuf_plain(b, s);
        free(s);
    }
}

static void time_rows(textbuf_t *b, const json_t *r)
{
    const json_t *t = json_object_get(r, "time_ms");
    double med = rep_num(t, "median");
    if (!json_is_object(t) || isnan(med))
        return;
    char s[3][32];
    rep_fmt_time(s[0], sizeof s[0], med);
    rep_fmt_time(s[1], sizeof s[1], rep_num(t, "min"));
    rep_fmt_time(s[2], sizeof s[2], rep_num(t, "max"));
    row_label(b, "time");
    textbuf_printf(b, "median %s   min %s   max %s\n", s[0], s[1], s[2]);

    /* Spread: how far apart the extremes are, as a share of the median. */
    double lo = rep_num(t, "min"), hi = rep_num(t, "max");
    double sd = rep_num(t, "stdev");
    double p10 = rep_num(t, "p10"), p90 = rep_num(t, "p90");
    double reps = rep_num(t, "reps"), warm = rep_num(t, "warmup");
    int any = 0;
    row_label(b, "");
    if (med > 0 && isfinite(lo) && isfinite(hi)) {
        textbuf_printf(b, "spread %.1f%% (max-min)/median", 100 * (hi - lo) / med);
        any = 1;
    }
    if (med > 0 && isfinite(sd)) {
        textbuf_printf(b, "%sstdev %.1f%%", any ? ", " : "", 100 * sd / med);
        any = 1;
    }
    if (isfinite(p10) && isfinite(p90)) {
        rep_fmt_time(s[1], sizeof s[1], p10);
        rep_fmt_time(s[2], sizeof s[2], p90);
        textbuf_printf(b, "%sp10-p90 %s-%s", any ? ", " : "", s[1], s[2]);
        any = 1;
    }
    if (isfinite(reps)) {
        textbuf_printf(b, "%s%.0f reps", any ? ", " : "", reps);
        if (isfinite(warm))
            textbuf_printf(b, " after %.0f warm-up", warm);
        any = 1;
    }
    if (!any)
        textbuf_puts(b, "-");
    textbuf_putc(b, '\n');
}

static void throughput_rows(textbuf_t *b, const json_t *r)
{
    char a[48], c[48], d[48];
    double gf = rep_num(r, "gflops"), gbs = rep_num(r, "gbs");
    if (isfinite(gf) || isfinite(gbs)) {
        rep_fmt_flops(a, sizeof a, gf);
        rep_fmt_sig(c, sizeof c, gbs, 4);
        row_label(b, "throughput");
        textbuf_printf(b, "%s   %s GB/s", a, c);
        double fl = rep_num(r, "flops"), by = rep_num(r, "bytes");
        if (isfinite(fl) && isfinite(by)) {
            fmt_si(a, sizeof a, fl);
            fmt_si(d, sizeof d, by);
            textbuf_printf(b, "   (%sFLOP, %sB a call)", a, d);
        }
        textbuf_putc(b, '\n');
    }
    double in = rep_num(r, "intensity"), ridge = rep_num(r, "ridge");
    const char *bound = rep_str(r, "bound");
    if (isfinite(in) || isfinite(ridge) || bound) {
        rep_fmt_sig(a, sizeof a, in, 4);
        rep_fmt_sig(c, sizeof c, ridge, 4);
        row_label(b, "intensity");
        textbuf_printf(b, "%s FLOP/byte   ridge %s FLOP/byte   bound: ", a, c);
        textbuf_plain(b, bound ? bound : "-");
        textbuf_putc(b, '\n');
    }
    double pp = rep_num(r, "pct_peak_flops"), pb = rep_num(r, "pct_bandwidth");
    double peak = rep_num(r, "peak_gflops"), bw = rep_num(r, "bandwidth_gbs");
    if (isfinite(pp) || isfinite(pb)) {
        rep_fmt_flops(a, sizeof a, peak);
        rep_fmt_sig(c, sizeof c, bw, 4);
        char p1[24], p2[24];
        row_label(b, "ceilings");
        textbuf_printf(b, "%s of peak %s   %s of bandwidth %s GB/s\n",
                       pct(p1, sizeof p1, pp), a, pct(p2, sizeof p2, pb), c);
    }
    double rp = rep_num(r, "roofline_pct"), rg = rep_num(r, "roofline_gflops");
    if (isfinite(rp)) {
        row_label(b, "roofline");
        textbuf_printf(b, "%.1f%%", rp);
        if (isfinite(rg)) {
            rep_fmt_flops(a, sizeof a, rg);
            textbuf_printf(b, " of the %s attainable at this intensity", a);
        }
        textbuf_putc(b, '\n');
    }
    double par = rep_num(r, "parallelism");
    if (isfinite(par)) {
        row_label(b, "parallelism");
        textbuf_printf(b, "%.2f (CPU time / wall time)\n", par);
    }
    double me = rep_num(r, "max_err");
    if (isfinite(me)) {
        row_label(b, "max error");
        textbuf_printf(b, "%.2e\n", me);
    }
}

static void kernel_rows(textbuf_t *b, const json_t *r)
{
    const json_t *ks = json_object_get(r, "kernels");
    if (!json_is_array(ks) || json_array_size(ks) == 0)
        return;
    row_label(b, "kernels");
    textbuf_printf(b, "%zu\n", json_array_size(ks));
    size_t i;
    const json_t *k;
    json_array_foreach(ks, i, k) {
        textbuf_puts(b, "  ");
        const char *name = rep_str(k, "name");
        textbuf_plain(b, name ? name : "(unnamed)");
        if (!json_is_object(k)) {
            textbuf_puts(b, "  ");
            put_value(b, k);
        }
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)k, key, v) {
            if (strcmp(key, "name") == 0)
                continue;
            textbuf_puts(b, "  ");
            textbuf_plain(b, key);
            textbuf_putc(b, ' ');
            put_value(b, v);
        }
        textbuf_putc(b, '\n');
    }
}

/* "key  value" rows under a heading, keys padded to the longest. */
static void object_rows(textbuf_t *b, const char *heading, const json_t *obj)
{
    if (!json_is_object(obj) || json_object_size(obj) == 0)
        return;
    textbuf_printf(b, "%s\n", heading);
    size_t w = 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
        if (strlen(key) > w)
            w = strlen(key);
    json_object_foreach((json_t *)obj, key, v) {
        /* Per-kernel raw metrics belong to --json; the table keeps the summary. */
        if (strcmp(key, "kernels") == 0 && json_is_array(v))
            continue;
        textbuf_puts(b, "  ");
        textbuf_plain(b, key);
        textbuf_repeat(b, ' ', w - strlen(key) + 2);
        if (strcmp(key, "top_stalls") == 0 && json_is_array(v)) {
            size_t i;
            const json_t *st;
            json_array_foreach((json_t *)v, i, st) {
                const char *why = json_string_value(json_object_get(st, "reason"));
                textbuf_printf(b, "%s%s %.1f%%", i ? ", " : "", why ? why : "?",
                               json_number_value(json_object_get(st, "pct")));
            }
        } else {
            put_value(b, v);
        }
        textbuf_putc(b, '\n');
    }
}

static void diagnosis_rows(textbuf_t *b, const json_t *r)
{
    const json_t *diag = json_object_get(r, "diagnosis");
    if (!json_is_array(diag) || json_array_size(diag) == 0) {
        row_label(b, "diagnosis");
        textbuf_puts(b, "-\n");
        return;
    }
    textbuf_puts(b, "diagnosis\n");
    size_t w = 0, i;
    const json_t *d;
    json_array_foreach(diag, i, d) {
        const char *tag = json_is_string(d) ? json_string_value(d) : rep_str(d, "tag");
        if (tag && strlen(tag) > w)
            w = strlen(tag);
    }
    json_array_foreach(diag, i, d) {
        const char *tag = json_is_string(d) ? json_string_value(d) : rep_str(d, "tag");
        const char *detail = rep_str(d, "detail");
        if (!tag)
            tag = "?";
        textbuf_puts(b, "  ");
        textbuf_plain(b, tag);
        if (detail && *detail) {
            textbuf_repeat(b, ' ', w - strlen(tag) + 2);
            textbuf_plain(b, detail);
        }
        textbuf_putc(b, '\n');
    }
}

char *report_profile_table(const json_t *report)
{
    if (!json_is_object(report))
        return NULL;
    textbuf_t b;
    textbuf_init(&b);
    time_rows(&b, report);
    throughput_rows(&b, report);
    kernel_rows(&b, report);
    object_rows(&b, "counters", json_object_get(report, "counters"));
    diagnosis_rows(&b, report);
    return textbuf_finish(&b);
}
