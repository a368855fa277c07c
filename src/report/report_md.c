/*
 * report_md.c -- the Markdown report of a run (report_markdown).
 */
#include "report_md.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/lang.h"
#include "report_util.h"
#include "textbuf.h"

/* Longest reason in the table: the full text is in the best kernel's
 * section, and a table row should stay a row. */
#define REASON_MAX 200
#define LABEL_MAX 60
#define ERROR_LINES 12
#define ERROR_BYTES 1200

/* A task field as text: strings as they are, integers exact, reals short. */
static void put_scalar(textbuf_t *b, const json_t *v)
{
    char num[48];
    if (json_is_string(v)) {
        textbuf_md_cell(b, json_string_value(v), 0);
    } else if (json_is_integer(v)) {
        textbuf_printf(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 1e15)
            textbuf_printf(b, "%.0f", d);
        else {
            snprintf(num, sizeof num, "%.6g", d);
            textbuf_puts(b, num);
        }
    } else if (json_is_boolean(v)) {
        textbuf_puts(b, json_is_true(v) ? "yes" : "no");
    } else {
        textbuf_puts(b, "-");
    }
}

/* A number for a table cell with 4 significant digits, "-" when unknown. */
static void put_sig(textbuf_t *b, double v)
{
    char num[48];
    rep_fmt_sig(num, sizeof num, v, 4);
    textbuf_puts(b, num);
}

static const char *task_op(const json_t *task)
{
    const char *op = rep_str(task, "op");
    return op ? op : rep_str(task, "op.name");
}

/* The median time of the valid iteration 0 (the reference), NAN if none. */
static double reference_time(const json_t *iterations)
{
    size_t i;
    const json_t *it;
    json_array_foreach(iterations, i, it)
        if (rep_iter_num(it) == 0 && rep_iter_valid(it))
            return rep_iter_time_ms(it);
    return NAN;
}

/* The iteration object with number n, NULL if none. */
static const json_t *find_iter(const json_t *iterations, int n)
{
    size_t i;
    const json_t *it;
    json_array_foreach(iterations, i, it)
        if (rep_iter_num(it) == n)
            return it;
    return NULL;
}

/* run.best_iter when it names a valid iteration, else the fastest valid
 * one; -1 when nothing is valid. */
static int choose_best(const json_t *run, const json_t *iterations)
{
    const json_t *bi = json_object_get(run, "best_iter");
    if (json_is_integer(bi)) {
        const json_t *it = find_iter(iterations, (int)json_integer_value(bi));
        if (it && rep_iter_valid(it))
            return (int)json_integer_value(bi);
    }
    int best = -1;
    double best_t = INFINITY;
    size_t i;
    const json_t *it;
    json_array_foreach(iterations, i, it) {
        double t = rep_iter_time_ms(it);
        if (rep_iter_valid(it) && t > 0 && t < best_t) {
            best_t = t;
            best = rep_iter_num(it);
        }
    }
    return best;
}

static void title_section(textbuf_t *b, const json_t *run, const json_t *task)
{
    textbuf_puts(b, "# Emile run");
    const json_t *id = json_object_get(run, "id");
    if (json_is_integer(id))
        textbuf_printf(b, " %lld", (long long)json_integer_value(id));
    const char *name = rep_str(task, "name");
    const char *op = task_op(task);
    if ((name && *name) || op) {
        textbuf_puts(b, ": ");
        textbuf_md_cell(b, name && *name ? name : op, 0);
    }
    textbuf_puts(b, "\n\n");
    const char *status = rep_str(run, "status");
    textbuf_puts(b, "Status: **");
    textbuf_md_cell(b, status ? status : "unknown", 0);
    textbuf_puts(b, "**");
    const char *note = rep_str(run, "note");
    if (note && *note) {
        textbuf_puts(b, " (");
        textbuf_md_cell(b, note, 0);
        textbuf_puts(b, ")");
    }
    const char *created = rep_str(run, "created");
    if (created) {
        textbuf_puts(b, ", started ");
        textbuf_md_cell(b, created, 0);
    }
    const char *updated = rep_str(run, "updated");
    if (updated) {
        textbuf_puts(b, ", last update ");
        textbuf_md_cell(b, updated, 0);
    }
    textbuf_puts(b, ".\n\n");
}

/* One "| key | value |" row of a two-column table. */
static void kv_row(textbuf_t *b, const char *key, const json_t *v)
{
    textbuf_printf(b, "| %s | ", key);
    put_scalar(b, v);
    textbuf_puts(b, " |\n");
}

static void task_section(textbuf_t *b, const json_t *run, const json_t *task,
                         size_t n_iters)
{
    textbuf_puts(b, "## Task\n\n| | |\n|---|---|\n");
    const char *op = task_op(task);
    textbuf_puts(b, "| op | ");
    textbuf_md_cell(b, op ? op : "-", 0);
    textbuf_puts(b, " |\n| parameters | ");
    const json_t *params = json_object_get(task, "params");
    if (json_is_object(params) && json_object_size(params) > 0) {
        const char *key;
        const json_t *v;
        int first = 1;
        json_object_foreach((json_t *)params, key, v) {
            textbuf_puts(b, first ? "" : ", ");
            textbuf_md_cell(b, key, 0);
            textbuf_putc(b, '=');
            put_scalar(b, v);
            first = 0;
        }
    } else {
        textbuf_puts(b, "-");
    }
    textbuf_puts(b, " |\n");
    kv_row(b, "dtype", json_object_get(task, "dtype"));
    const json_t *backend = json_object_get(task, "backend");
    kv_row(b, "backend", backend ? backend : json_object_get(run, "backend"));
    if (json_object_get(task, "lang"))
        kv_row(b, "language", json_object_get(task, "lang"));
    const json_t *agent = json_object_get(run, "agent");
    kv_row(b, "agent", agent ? agent : json_object_get(task, "agent"));
    double target = rep_num(task, "target");
    if (isnan(target))
        target = rep_num(task, "target_pct");
    textbuf_puts(b, "| target | ");
    if (isfinite(target))
        textbuf_printf(b, "%g%% of roofline", target);
    else
        textbuf_puts(b, "-");
    textbuf_puts(b, " |\n| budget | ");
    const json_t *mi = json_object_get(task, "max_iters");
    if (json_is_integer(mi))
        textbuf_printf(b, "%lld iterations after the reference",
                       (long long)json_integer_value(mi));
    else
        textbuf_puts(b, "-");
    textbuf_printf(b, " (%zu recorded) |\n\n", n_iters);
}

static void device_section(textbuf_t *b, const json_t *device, const char *dtype)
{
    textbuf_puts(b, "## Device\n\n");
    if (!json_is_object(device)) {
        textbuf_puts(b, "No device recorded.\n\n");
        return;
    }
    textbuf_puts(b, "| | |\n|---|---|\n");
    kv_row(b, "name", json_object_get(device, "name"));
    const json_t *c = json_object_get(device, "ceilings");
    const json_t *peaks = json_object_get(c, "peak_gflops");
    char num[48];
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)peaks, key, v) {
        if (!json_is_number(v))
            continue;
        textbuf_puts(b, "| peak ");
        textbuf_md_cell(b, key, 0);
        rep_fmt_flops(num, sizeof num, json_number_value(v));
        textbuf_printf(b, " | %s |\n", num);
    }
    double bw = rep_num(c, "bandwidth_gbs");
    textbuf_puts(b, "| bandwidth | ");
    put_sig(b, bw);
    textbuf_puts(b, " GB/s |\n");
    /* The ridge for the task's dtype, where the roofline bends. */
    double peak = rep_num(peaks, dtype);
    const char *which = dtype;
    if (!(peak > 0)) {
        peak = rep_num(peaks, "f32");
        which = "f32";
    }
    if (peak > 0 && bw > 0) {
        textbuf_puts(b, "| ridge (");
        textbuf_md_cell(b, which, 0);
        textbuf_puts(b, ") | ");
        put_sig(b, peak / bw);
        textbuf_puts(b, " FLOP/byte |\n");
    }
    const json_t *m = json_object_get(c, "measured");
    if (json_is_boolean(m)) {
        textbuf_printf(b, "| ceilings | %s", json_is_true(m) ? "measured" : "nominal");
        const char *at = rep_str(c, "measured_at");
        if (at && json_is_true(m)) {
            textbuf_puts(b, " at ");
            textbuf_md_cell(b, at, 0);
        }
        textbuf_puts(b, " |\n");
    }
    textbuf_putc(b, '\n');
}

static void iteration_table(textbuf_t *b, const json_t *iterations, int best,
                            double ref_ms)
{
    textbuf_puts(b, "## Iterations\n\n");
    if (json_array_size(iterations) == 0) {
        textbuf_puts(b, "No iterations recorded.\n\n");
        return;
    }
    textbuf_puts(b, "| iter | label | status | time ms (median) | GFLOP/s | "
                    "% roofline | speedup | diagnosis | reason |\n"
                    "|---:|---|---|---:|---:|---:|---:|---|---|\n");
    size_t i;
    const json_t *it;
    json_array_foreach(iterations, i, it) {
        int n = rep_iter_num(it);
        int valid = rep_iter_valid(it);
        if (n < 0)
            textbuf_puts(b, "| ? | ");
        else if (n == best)
            textbuf_printf(b, "| **%d** (best) | ", n);
        else
            textbuf_printf(b, "| %d | ", n);
        textbuf_md_cell(b, rep_str(it, "label"), LABEL_MAX);
        textbuf_puts(b, " | ");
        const char *st = rep_str(it, "status");
        textbuf_md_cell(b, st ? st : "unknown", 0);
        textbuf_puts(b, " | ");
        if (valid) {
            put_sig(b, rep_iter_time_ms(it));
            textbuf_puts(b, " | ");
            put_sig(b, rep_iter_gflops(it));
            textbuf_puts(b, " | ");
            double p = rep_iter_roofline_pct(it);
            if (isfinite(p))
                textbuf_printf(b, "%.1f", p);
            else
                textbuf_puts(b, "-");
            textbuf_puts(b, " | ");
            double sp = rep_iter_speedup(it, ref_ms);
            if (isfinite(sp))
                textbuf_printf(b, "%.2fx", sp);
            else
                textbuf_puts(b, "-");
        } else {
            textbuf_puts(b, "- | - | - | -");
        }
        textbuf_puts(b, " | ");
        char tags[512];
        rep_diag_tags(json_object_get(it, "report"), ", ", tags, sizeof tags);
        textbuf_md_cell(b, tags, 0);
        textbuf_puts(b, " | ");
        textbuf_md_cell(b, rep_str(it, "reason"), REASON_MAX);
        textbuf_puts(b, " |\n");
    }
    textbuf_putc(b, '\n');
}

/* A fence longer than any run of backticks in s, so s cannot close it. */
static int fence_len(const char *s)
{
    int longest = 0, run = 0;
    for (; s && *s; s++) {
        run = *s == '`' ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    return longest >= 3 ? longest + 1 : 3;
}

static void best_section(textbuf_t *b, const json_t *it, double ref_ms)
{
    textbuf_printf(b, "## Best kernel: iteration %d", rep_iter_num(it));
    const char *label = rep_str(it, "label");
    if (label && *label) {
        textbuf_puts(b, " (");
        textbuf_md_cell(b, label, 0);
        textbuf_puts(b, ")");
    }
    textbuf_puts(b, "\n\n");
    char t[32], perf[48];
    rep_fmt_time(t, sizeof t, rep_iter_time_ms(it));
    rep_fmt_flops(perf, sizeof perf, rep_iter_gflops(it));
    textbuf_printf(b, "- median time %s, %s", t, perf);
    double p = rep_iter_roofline_pct(it);
    if (isfinite(p))
        textbuf_printf(b, ", %.1f%% of roofline", p);
    double sp = rep_iter_speedup(it, ref_ms);
    if (isfinite(sp))
        textbuf_printf(b, ", %.2fx the reference's speed", sp);
    textbuf_puts(b, "\n");
    const char *reason = rep_str(it, "reason");
    if (reason && *reason) {
        textbuf_puts(b, "- why: ");
        textbuf_md_cell(b, reason, 0);
        textbuf_puts(b, "\n");
    }
    textbuf_putc(b, '\n');

    char *table = report_profile_table(json_object_get(it, "report"));
    if (table) {
        textbuf_printf(b, "### Profile\n\n%s\n", "```text");
        textbuf_puts(b, table);
        textbuf_puts(b, "```\n\n");
        free(table);
    }
    const char *src = rep_str(it, "source");
    if (src && *src) {
        const char *lang = rep_str(it, "lang");
        int f = fence_len(src);
        textbuf_puts(b, "### Source\n\n");
        textbuf_repeat(b, '`', (size_t)f);
        /* The info string ends at a blank or a backtick; keep it a word. */
        if (lang && strspn(lang, "abcdefghijklmnopqrstuvwxyz+") == strlen(lang))
            textbuf_puts(b, lang_find(lang) ? lang_find(lang)->fence : lang);
        textbuf_putc(b, '\n');
        textbuf_puts(b, src);
        if (src[strlen(src) - 1] != '\n')
            textbuf_putc(b, '\n');
        textbuf_repeat(b, '`', (size_t)f);
        textbuf_puts(b, "\n\n");
    }
}

static void failures_section(textbuf_t *b, const json_t *iterations)
{
    int any = 0;
    size_t i;
    const json_t *it;
    json_array_foreach(iterations, i, it) {
        if (rep_iter_valid(it))
            continue;
        if (!any)
            textbuf_puts(b, "## Failed iterations\n\n");
        any = 1;
        const char *st = rep_str(it, "status");
        textbuf_printf(b, "### Iteration %d: ", rep_iter_num(it));
        textbuf_md_cell(b, st ? st : "unknown", 0);
        const char *label = rep_str(it, "label");
        if (label && *label) {
            textbuf_puts(b, " (");
            textbuf_md_cell(b, label, LABEL_MAX);
            textbuf_puts(b, ")");
        }
        textbuf_puts(b, "\n\n");
        const char *e = rep_str(it, "error");
        const char *log = rep_str(it, "compile_log");
        if ((!e || !*e) && (!log || !*log)) {
            textbuf_puts(b, "No error recorded.\n\n");
            continue;
        }
        /* The error line names the problem; a compiler's log says where. */
        const char *texts[2] = {e, st && strcmp(st, "compile_error") == 0 ? log : NULL};
        for (int k = 0; k < 2; k++) {
            if (!texts[k] || !*texts[k])
                continue;
            int f = fence_len(texts[k]);
            textbuf_repeat(b, '`', (size_t)f);
            textbuf_puts(b, "text\n");
            textbuf_head(b, texts[k], ERROR_LINES, ERROR_BYTES);
            textbuf_repeat(b, '`', (size_t)f);
            textbuf_puts(b, "\n\n");
        }
    }
}

char *report_markdown(const json_t *run, const json_t *iterations,
                      char *err, size_t errlen)
{
    if (!json_is_object(run)) {
        snprintf(err, errlen, "the run is not an object");
        return NULL;
    }
    if (iterations && !json_is_array(iterations)) {
        snprintf(err, errlen, "iterations is not an array");
        return NULL;
    }
    const json_t *task = json_object_get(run, "task");
    const char *dtype = rep_str(task, "dtype");
    if (!dtype)
        dtype = "f32";
    double ref_ms = reference_time(iterations);
    int best = choose_best(run, iterations);

    textbuf_t b;
    textbuf_init(&b);
    title_section(&b, run, task);
    task_section(&b, run, task, json_array_size(iterations));
    device_section(&b, json_object_get(run, "device"), dtype);
    iteration_table(&b, iterations, best, ref_ms);
    const json_t *bit = best >= 0 ? find_iter(iterations, best) : NULL;
    if (bit)
        best_section(&b, bit, ref_ms);
    else
        textbuf_puts(&b, "## Best kernel\n\nNo iteration was valid.\n\n");
    failures_section(&b, iterations);

    char *out = textbuf_finish(&b);
    if (!out)
        snprintf(err, errlen, "out of memory");
    return out;
}
