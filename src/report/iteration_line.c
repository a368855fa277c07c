/*
 * iteration_line.c -- the live terminal line per iteration.
 */
#include "iteration_line.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_util.h"
#include "textbuf.h"

/* Column widths; the change column starts at the same place on valid and
 * failed lines so the eye can run down it. */
enum {
    W_ITER = 4, W_TIME = 10, W_PERF = 13, W_PCT = 8, W_SPEED = 8, W_DIAG = 24,
    W_STATUS = 13,
    /* Failed lines: status + error fill time..diagnosis. */
    W_ERROR = W_TIME + W_PERF + W_PCT + W_SPEED + W_DIAG + 4 * 2 - W_STATUS - 1,
    MAX_CHANGE = 72
};

/* Control bytes (ESC above all) in text from an LLM or a compiler could
 * drive the user's terminal; show them as '?'. */
static void defang(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            *s = '?';
}

/* Trim trailing blanks, return the final length. */
static int finish(char *buf, size_t n)
{
    size_t len = strnlen(buf, n - 1);
    buf[len] = '\0';
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = '\0';
    return (int)len;
}

int iteration_line_header(char *buf, size_t n)
{
    if (!buf || n == 0)
        return -1;
    snprintf(buf, n, "%*s  %*s  %*s  %*s  %*s  %-*s  %s",
             W_ITER, "iter", W_TIME, "time", W_PERF, "perf", W_PCT, "roofline",
             W_SPEED, "speedup", W_DIAG, "diagnosis", "change");
    return finish(buf, n);
}

/* The agent's words for this candidate: its label, else the first line of
 * its reason. */
static void change_text(const json_t *it, char *out, size_t n)
{
    const char *label = rep_str(it, "label");
    if (!label || !*label)
        label = rep_str(it, "reason");
    text_first_line(label, out, n, MAX_CHANGE);
    defang(out);
}

int iteration_line(char *buf, size_t n, const json_t *iteration, double ref_time_ms)
{
    if (!buf || n == 0)
        return -1;
    buf[0] = '\0';
    if (!json_is_object(iteration))
        return -1;

    char num[16] = "?";
    int iter = rep_iter_num(iteration);
    if (iter >= 0)
        snprintf(num, sizeof num, "%d", iter);
    char change[MAX_CHANGE + 8];
    change_text(iteration, change, sizeof change);

    if (!rep_iter_valid(iteration)) {
        const char *status = rep_str(iteration, "status");
        char st[W_STATUS + 1];
        text_first_line(status ? status : "unknown", st, sizeof st, W_STATUS);
        defang(st);
        const char *e = rep_str(iteration, "error");
        if (!e || !*e)
            e = rep_str(iteration, "compile_log");
        char err[W_ERROR + 1];
        text_first_line(e, err, sizeof err, W_ERROR);
        defang(err);
        snprintf(buf, n, "%*s  %-*s %-*s  %s", W_ITER, num, W_STATUS, st,
                 W_ERROR, err, change);
        return finish(buf, n);
    }

    char t[32], perf[32], pct[16] = "-", speed[16] = "-", diag[256];
    rep_fmt_time(t, sizeof t, rep_iter_time_ms(iteration));
    rep_fmt_flops(perf, sizeof perf, rep_iter_gflops(iteration));
    double p = rep_iter_roofline_pct(iteration);
    if (isfinite(p))
        snprintf(pct, sizeof pct, "%.1f%%", p);
    double sp = rep_iter_speedup(iteration, ref_time_ms);
    if (isfinite(sp))
        snprintf(speed, sizeof speed, sp >= 1000 ? "%.0fx" : "%.2fx", sp);
    rep_diag_tags(json_object_get(iteration, "report"), ",", diag, sizeof diag);
    defang(diag);
    snprintf(buf, n, "%*s  %*s  %*s  %*s  %*s  %-*s  %s", W_ITER, num,
             W_TIME, t, W_PERF, perf, W_PCT, pct, W_SPEED, speed,
             W_DIAG, diag, change);
    return finish(buf, n);
}
