/*
 * history.c -- the bounded history.  Each iteration costs the context its
 * source (in the model's tool call) and its report (in our answer); a run
 * of fifty would not fit.  So only the newest `keep` iterations stay whole;
 * older ones shrink to one line (the profile line and the diagnosis) and a
 * placeholder where the source was.  The stored records are never changed:
 * only the request built from them is.
 */
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inline-tool answers (counters, reference source) older than this many
 * user turns are cut to this many characters. */
#define OLD_ANSWER_CHARS 600

static double num(const json_t *o, const char *k, double dflt)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* Append the diagnosis of a report ("; diagnosis: tag (detail), ..."). */
static void add_diagnosis(char *buf, size_t n, const json_t *report)
{
    const json_t *dx = json_object_get(report, "diagnosis");
    if (!json_is_array(dx) || json_array_size(dx) == 0)
        return;
    size_t l = strlen(buf);
    snprintf(buf + l, n - l, "; diagnosis:");
    size_t i;
    const json_t *d;
    json_array_foreach(dx, i, d) {
        const char *tag = json_string_value(json_object_get(d, "tag"));
        const char *det = json_string_value(json_object_get(d, "detail"));
        l = strlen(buf);
        if (tag && det && *det)
            snprintf(buf + l, n - l, "%s %s (%s)", i ? "," : "", tag, det);
        else if (tag)
            snprintf(buf + l, n - l, "%s %s", i ? "," : "", tag);
    }
}

/* "12.10 ms, 22.1 GFLOP/s, 14.7% of roofline (compute bound)" */
static void add_perf(char *buf, size_t n, double ms, double gflops, double pct,
                     const char *bound)
{
    size_t l = strlen(buf);
    if (ms >= 0) {
        snprintf(buf + l, n - l, ", %.4g ms", ms);
        l = strlen(buf);
    }
    if (gflops >= 0) {
        snprintf(buf + l, n - l, ", %.4g GFLOP/s", gflops);
        l = strlen(buf);
    }
    if (pct >= 0) {
        snprintf(buf + l, n - l, ", %.3g%% of roofline", pct);
        l = strlen(buf);
    }
    if (bound)
        snprintf(buf + l, n - l, " (%s bound)", bound);
}

char *llm_report_line(const json_t *report)
{
    char buf[2048] = "";
    if (!json_is_object(report))
        return strdup("no report");
    const json_t *t = json_object_get(report, "time_ms");
    double ms = json_is_object(t) ? num(t, "median", -1) : num(report, "time_ms", -1);
    add_perf(buf, sizeof buf, ms, num(report, "gflops", -1),
             num(report, "roofline_pct", -1),
             json_string_value(json_object_get(report, "bound")));
    add_diagnosis(buf, sizeof buf, report);
    /* Drop the leading ", ". */
    return strdup(buf[0] == ',' ? buf + 2 : buf);
}

char *llm_iteration_line(const json_t *it)
{
    char buf[2048];
    int iter = (int)num(it, "iter", -1);
    const char *label = json_string_value(json_object_get(it, "label"));
    const char *status = json_string_value(json_object_get(it, "status"));
    if (!status)
        status = "unknown";
    snprintf(buf, sizeof buf, "iter %d%s%s%s: %s", iter, label ? " \"" : "",
             label ? label : "", label ? "\"" : "", status);
    const json_t *report = json_object_get(it, "report");
    if (strcmp(status, "valid") == 0) {
        const json_t *t = json_object_get(report, "time_ms");
        double ms = num(it, "time_ms", -1);
        if (ms < 0 && json_is_object(t))
            ms = num(t, "median", -1);
        double gf = num(it, "gflops", num(report, "gflops", -1));
        double pct = num(it, "roofline_pct", num(report, "roofline_pct", -1));
        add_perf(buf, sizeof buf, ms, gf, pct,
                 json_string_value(json_object_get(report, "bound")));
        double sp = num(it, "speedup", -1);
        size_t l = strlen(buf);
        if (sp > 0 && iter != 0)
            snprintf(buf + l, sizeof buf - l, ", %.3gx the reference", sp);
        add_diagnosis(buf, sizeof buf, report);
    } else {
        const char *e = json_string_value(json_object_get(it, "error"));
        if (e) {
            size_t l = strlen(buf);
            /* The first line is the one that names the problem. */
            size_t k = strcspn(e, "\n");
            if (k > 300)
                k = 300;
            snprintf(buf + l, sizeof buf - l, ": %.*s", (int)k, e);
        }
    }
    return strdup(buf);
}

/* The iteration number below which iterations are summarised: the
 * keep-th newest mapped iteration (everything is kept when fewer). */
static int keep_threshold(const json_t *call_iter, int keep)
{
    int iters[4096], n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)call_iter, k, v) {
        int it = (int)json_integer_value(v);
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= iters[i] == it;
        if (!dup && n < 4096)
            iters[n++] = it;
    }
    if (n <= keep)
        return -1;
    /* Partial selection sort: the keep-th largest. */
    for (int i = 0; i < keep; i++)
        for (int j = i + 1; j < n; j++)
            if (iters[j] > iters[i]) {
                int t = iters[i];
                iters[i] = iters[j];
                iters[j] = t;
            }
    return iters[keep - 1];
}

static json_t *compact_user(const json_t *user, const json_t *elide,
                            const json_t *call_iter, const json_t *history, int old)
{
    json_t *u = json_deep_copy(user);
    json_t *res = json_object_get(u, "results");
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r) {
        const char *id = json_string_value(json_object_get(r, "id"));
        const char *content = json_string_value(json_object_get(r, "content"));
        if (id && json_object_get(elide, id)) {
            int it = (int)json_integer_value(json_object_get(call_iter, id));
            char *line = llm_iteration_line(llm_history_find(history, it));
            char *s = llm_strf("(summarised, older iteration) %s", line ? line : "");
            json_object_set_new(r, "content", json_string(s ? s : ""));
            free(s);
            free(line);
        } else if (old && content && strlen(content) > OLD_ANSWER_CHARS) {
            char *s = llm_strf("%.*s ... [shortened: an older answer]",
                               OLD_ANSWER_CHARS, content);
            json_object_set_new(r, "content", json_string(s ? s : ""));
            free(s);
        }
    }
    const char *fid = json_string_value(json_object_get(u, "fenced_id"));
    if (fid && json_object_get(elide, fid)) {
        int it = (int)json_integer_value(json_object_get(call_iter, fid));
        char *line = llm_iteration_line(llm_history_find(history, it));
        char *s = llm_strf("(summarised, older iteration) the kernel from your "
                           "prose: %s", line ? line : "");
        json_object_set_new(u, "text", json_string(s ? s : ""));
        free(s);
        free(line);
    }
    return u;
}

json_t *llm_history_messages(const llm_provider_t *p, const llm_conv_t *cv,
                             const json_t *history, int keep)
{
    int thr = keep_threshold(cv->call_iter, keep);
    json_t *elide = json_object();
    const char *id;
    json_t *v;
    json_object_foreach(cv->call_iter, id, v) {
        int it = (int)json_integer_value(v);
        if (it < thr) {
            char *ph = llm_strf("[source of iteration %d elided to save context; "
                                "get_best() returns the best kernel's source]", it);
            json_object_set_new(elide, id, json_string(ph ? ph : ""));
            free(ph);
        }
    }
    /* User turns older than the newest 2*keep get their long answers cut. */
    size_t n = json_array_size(cv->records), users = 0;
    for (size_t i = 0; i < n; i++)
        users += json_object_get(json_array_get(cv->records, i), "user") != NULL;
    size_t old_users = users > (size_t)(2 * keep) ? users - (size_t)(2 * keep) : 0;

    json_t *msgs = json_array();
    size_t seen_users = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *rec = json_array_get(cv->records, i);
        const json_t *user = json_object_get(rec, "user");
        if (user) {
            json_t *u = compact_user(user, elide, cv->call_iter, history,
                                     seen_users < old_users);
            seen_users++;
            p->append_user(msgs, u);
            json_decref(u);
            continue;
        }
        const llm_reply_t *r = &cv->replies[i];
        if (!r->message)
            continue;
        json_t *sub = json_object();
        for (int c = 0; c < r->n_calls; c++) {
            json_t *ph = json_object_get(elide, r->calls[c].id);
            if (ph)
                json_object_set(sub, r->calls[c].id, ph);
        }
        char fid[64];
        snprintf(fid, sizeof fid, "%d#fenced",
                 (int)json_integer_value(json_object_get(rec, "turn")));
        json_t *fph = json_object_get(elide, fid);
        if (fph)
            json_object_set(sub, "#fenced", fph);
        json_t *m = json_object_size(sub) ? p->compact(r->message, sub)
                                          : json_deep_copy(r->message);
        json_decref(sub);
        json_array_append_new(msgs, m);
    }
    json_decref(elide);
    return msgs;
}
