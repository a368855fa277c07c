/* cook.c -- see cook.h.  The cook itself is src/cook; this file only
 * draws its events: iteration lines and a summary on stdout (on stderr with
 * --events, whose NDJSON has stdout), a live line of the phases in flight
 * redrawn twice a second while that stream is a terminal (quiet otherwise,
 * as make and cargo are), and a table at the end of a menu. */
#include "cook.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cook/cook.h"
#include "report/iteration_line.h"
#include "util/clock.h"

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

#define LIVE_SLOTS 64

typedef struct phase {
    char text[240];            /* "iter 3 compile kernel.c" */
    double since;              /* when it began (0: nothing) */
    int iter;
} phase_t;

typedef struct render {
    const cli_cook_options_t *o;
    FILE *lines;               /* iteration lines and summary */
    int live;                  /* draw the live line */
    int menu;                  /* several runs: lines say which */
    int drawn;                 /* a live line is on the screen */
    pthread_mutex_t mu;
    pthread_t ticker;
    int ticking, closing;
    phase_t global;            /* a phase of no worker (propose, device) */
    phase_t slot[LIVE_SLOTS + 1];
    int failed_runs;
} render_t;

/* ---- the live line ------------------------------------------------------- */

static int columns(FILE *f)
{
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void clear_live_locked(render_t *r)
{
    if (r->drawn) {
        fputs("\r\033[K", r->lines);
        fflush(r->lines);
        r->drawn = 0;
    }
}

static void append(char *buf, size_t n, const phase_t *p, double now)
{
    if (p->since <= 0)
        return;
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "%s%s %.0fs", len ? "  |  " : "  ", p->text, now - p->since);
}

static void draw_live_locked(render_t *r)
{
    if (!r->live)
        return;
    char buf[2048] = "";
    double now = clock_mono_s();
    for (int i = 0; i <= LIVE_SLOTS; i++)
        append(buf, sizeof buf, &r->slot[i], now);
    if (!buf[0])
        append(buf, sizeof buf, &r->global, now);
    if (g_stop && strlen(buf) + 40 < sizeof buf)
        strcat(buf, "  (stopping once these are in)");
    /* Control bytes from a worker or an agent must not drive the terminal. */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    int w = columns(r->lines) - 1;
    if ((int)strlen(buf) > w)
        buf[w] = '\0';
    fputs("\r\033[K", r->lines);
    fputs(buf, r->lines);
    fflush(r->lines);
    r->drawn = buf[0] != '\0';
}

static void *ticker_main(void *arg)
{
    render_t *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->closing) {
        pthread_mutex_unlock(&r->mu);
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&r->mu);
        if (!r->closing)
            draw_live_locked(r);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- lines --------------------------------------------------------------- */

static void say(render_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(render_t *r, const char *fmt, ...)
{
    if (r->o->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->lines, fmt, ap);
    va_end(ap);
    fflush(r->lines);
}

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void on_run(render_t *r, const json_t *ev)
{
    long long run = json_integer_value(json_object_get(ev, "run"));
    const char *name = str(ev, "name"), *op = str(ev, "op");
    int max = (int)json_integer_value(json_object_get(ev, "max_iters"));
    json_t *resumed = json_object_get(ev, "resumed_at");
    int workers = (int)json_integer_value(json_object_get(ev, "workers"));
    char who[64] = "";
    if (workers > 1)
        snprintf(who, sizeof who, ", %d workers", workers);
    if (json_is_integer(resumed)) {
        int at = (int)json_integer_value(resumed);
        if (at > max) {
            say(r, "run %lld has no iteration left to cook: iterations 0..%d are recorded and its "
                   "budget is %d (emile resume %lld --max-iters N goes on)\n",
                run, at - 1, max, run);
            return;
        }
        say(r, "resuming run %lld at iteration %d; the budget goes to %d%s\n", run, at, max, who);
    } else {
        /* The name usually begins with the op ("attention b1 ..."). */
        int same = strncmp(name, op, strlen(op)) == 0;
        const char *lang = str(ev, "lang");
        say(r, "run %lld: %s%s%s on %s (%s%s%s), target %.0f%% of roofline, up to %d iterations, agent %s%s\n",
            run, same ? "" : op, same ? "" : " ", name, str(ev, "device"), str(ev, "backend"), *lang ? ", " : "",
            lang, num(ev, "target"), max, str(ev, "agent"), who);
    }
    if (!r->menu) {
        char hdr[512];
        iteration_line_header(hdr, sizeof hdr);
        say(r, "%s\n", hdr);
    }
}

/* The lines under an iteration: the agent's reason, where a compile
 * error's log is, a re-measure, workers lost on the way. */
static void iteration_notes(render_t *r, const json_t *it, long long run)
{
    int iter = (int)json_integer_value(json_object_get(it, "iter"));
    const char *reason = str(it, "reason");
    if (*reason && iter > 0)
        say(r, "      why: %s\n", reason);
    const char *status = str(it, "status");
    if (strcmp(status, "compile_error") == 0 && *str(it, "compile_log"))
        say(r, "      the compiler's log: emile show %lld --iter %d\n", run, iter);
    const json_t *rm = json_object_get(it, "remeasure");
    if (json_is_object(rm)) {
        char s[400] = "";
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(rm, "samples_ms"), i, v) {
            size_t len = strlen(s);
            snprintf(s + len, sizeof s - len, "%s%.4g", i ? ", " : "", json_number_value(v));
        }
        const json_t *inc = json_object_get(rm, "incumbent");
        char incs[300] = "";
        if (json_is_object(inc))
            snprintf(incs, sizeof incs, "; iteration %lld beside it: %.4g ms (recorded %.4g)",
                     (long long)json_integer_value(json_object_get(inc, "iter")), num(inc, "median_ms"),
                     num(inc, "stored_ms"));
        char verdict[64];
        if (strcmp(status, "valid") == 0)
            snprintf(verdict, sizeof verdict, "%.4g ms, the median", num(it, "time_ms"));
        else
            snprintf(verdict, sizeof verdict, "%s", status);
        say(r, "      measured again (%s): %s ms -> %s%s\n", str(rm, "why"), s, verdict, incs);
    }
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(it, "lost"), i, a)
        say(r, "      lost a worker on the way: %s\n", str(a, "error"));
}

static void on_iteration(render_t *r, const json_t *ev)
{
    const json_t *it = json_object_get(ev, "iteration");
    long long run = json_integer_value(json_object_get(ev, "run"));
    int iter = (int)json_integer_value(json_object_get(it, "iter"));
    for (int i = 0; i <= LIVE_SLOTS; i++)
        if (r->slot[i].iter == iter)
            r->slot[i].since = 0;
    char line[1024];
    iteration_line(line, sizeof line, it, NAN);
    if (r->menu)
        say(r, "[run %lld] %s\n", run, line);
    else
        say(r, "%s\n", line);
    iteration_notes(r, it, run);
}

static void on_progress(render_t *r, const json_t *ev)
{
    json_t *w = json_object_get(ev, "worker");
    int slot = json_is_integer(w) ? (int)json_integer_value(w) : -1;
    phase_t *p = slot >= 0 ? &r->slot[slot > LIVE_SLOTS ? LIVE_SLOTS : slot] : &r->global;
    char where[64] = "";
    json_t *iter = json_object_get(ev, "iter");
    if (r->menu && json_is_integer(json_object_get(ev, "run")))
        snprintf(where, sizeof where, "run %lld ", (long long)json_integer_value(json_object_get(ev, "run")));
    if (json_is_integer(iter)) {
        size_t len = strlen(where);
        snprintf(where + len, sizeof where - len, "iter %lld ", (long long)json_integer_value(iter));
    }
    char kn[48] = "";
    if (json_is_integer(json_object_get(ev, "n")))
        snprintf(kn, sizeof kn, " %lld/%lld", (long long)json_integer_value(json_object_get(ev, "k")),
                 (long long)json_integer_value(json_object_get(ev, "n")));
    snprintf(p->text, sizeof p->text, "%s%s%s%s%.80s", where, str(ev, "phase"), kn,
             *str(ev, "detail") ? ": " : "", str(ev, "detail"));
    /* A worker's own phases arrive with their elapsed time. */
    p->since = clock_mono_s() - (json_is_number(json_object_get(ev, "elapsed_s")) ? num(ev, "elapsed_s") : 0);
    p->iter = json_is_integer(iter) ? (int)json_integer_value(iter) : -1;
    if (slot >= 0)
        r->global.since = 0;
    draw_live_locked(r);
}

static void on_worker(render_t *r, const json_t *ev)
{
    const char *state = str(ev, "state");
    if (strcmp(state, "lost") == 0)
        fprintf(stderr, "emile: worker %lld (%s): %s; starting another\n",
                (long long)json_integer_value(json_object_get(ev, "worker")), str(ev, "cmd"), str(ev, "why"));
    else if (strcmp(state, "down") == 0)
        fprintf(stderr, "emile: worker %lld (%s) is down for this cook: %s\n",
                (long long)json_integer_value(json_object_get(ev, "worker")), str(ev, "cmd"), str(ev, "why"));
}

static void on_done(render_t *r, const json_t *ev)
{
    long long run = json_integer_value(json_object_get(ev, "run"));
    const char *status = str(ev, "status"), *note = str(ev, "note");
    for (int i = 0; i <= LIVE_SLOTS; i++)
        r->slot[i].since = 0;
    r->global.since = 0;
    if (strcmp(status, "failed") == 0) {
        if (r->menu)
            fprintf(stderr, "emile: run %lld: %s\n", run, note);
        else
            fprintf(stderr, "emile: %s\n", note);
        r->failed_runs++;
    }
    if (r->menu) {
        say(r, "[run %lld] %s: %s\n", run, status, note);
        return;
    }
    say(r, "\n%s: %s\n", status, note);
    const json_t *best = json_object_get(ev, "best");
    if (json_is_object(best))
        say(r, "best: iteration %lld (%s): %.4g ms, %.4g GFLOP/s, %.1f%% of roofline, %.2fx the reference\n",
            (long long)json_integer_value(json_object_get(best, "iter")), str(best, "label"), num(best, "time_ms"),
            num(best, "gflops"), num(best, "roofline_pct"), num(best, "speedup"));
    char floors[512];
    if (json_is_object(best) &&
        cli_floors_line(json_object_get(ev, "floors"), num(best, "time_ms"), floors, sizeof floors))
        say(r, "%s\n", floors);
    const json_t *llm = json_object_get(ev, "llm");
    if (json_is_object(llm))
        say(r, "LLM: %lld tokens in, %lld out, estimated cost $%.4f\n",
            (long long)json_integer_value(json_object_get(llm, "tokens_in")),
            (long long)json_integer_value(json_object_get(llm, "tokens_out")), num(llm, "cost_usd"));
    say(r, "run %lld in %s  (emile show %lld; emile export %lld DIR)\n", run,
        r->o->store_path ? r->o->store_path : "the default store", run, run);
}

static void on_menu(render_t *r, const json_t *ev)
{
    say(r, "\n%5s  %-8s  %10s  %9s  %8s  %5s  %s\n", "run", "status", "best ms", "roofline", "speedup",
        "iters", "task");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(ev, "runs"), i, row) {
        char ms[32] = "-", pct[32] = "-", sp[32] = "-";
        if (num(row, "time_ms") > 0) {
            snprintf(ms, sizeof ms, "%.4g", num(row, "time_ms"));
            snprintf(pct, sizeof pct, "%.1f%%", num(row, "roofline_pct"));
            snprintf(sp, sizeof sp, "%.2fx", num(row, "speedup"));
        }
        say(r, "%5lld  %-8s  %10s  %9s  %8s  %5lld  %s\n", (long long)json_integer_value(json_object_get(row, "run")),
            str(row, "status"), ms, pct, sp, (long long)json_integer_value(json_object_get(row, "n_iters")),
            str(row, "name"));
    }
    say(r, "in %s  (emile show RUN; emile export RUN DIR)\n", r->o->store_path ? r->o->store_path : "the default store");
}

static void on_event(void *ctx, cook_event_kind_t kind, const json_t *ev)
{
    render_t *r = ctx;
    if (r->o->events) {
        char *s = json_dumps(ev, JSON_COMPACT);
        if (s) {
            printf("%s\n", s);
            free(s);
        }
    }
    /* SIGPIPE is ignored while the pool runs (pool.h): a reader that went
     * away (| head) shows as a failed write, and the cook stops as on ^C. */
    if ((fflush(stdout) != 0 || ferror(stdout)) && errno == EPIPE)
        g_stop = 1;
    pthread_mutex_lock(&r->mu);
    if (kind != COOK_EVENT_PROGRESS)
        clear_live_locked(r);
    /* The cook's own phase (device, propose) ends with what follows it. */
    if (kind == COOK_EVENT_RUN || kind == COOK_EVENT_ITERATION)
        r->global.since = 0;
    switch (kind) {
    case COOK_EVENT_RUN: on_run(r, ev); break;
    case COOK_EVENT_PROGRESS: on_progress(r, ev); break;
    case COOK_EVENT_ITERATION: on_iteration(r, ev); break;
    case COOK_EVENT_WORKER: on_worker(r, ev); break;
    case COOK_EVENT_DONE: on_done(r, ev); break;
    case COOK_EVENT_MENU: on_menu(r, ev); break;
    default: break;
    }
    if (kind != COOK_EVENT_PROGRESS && kind != COOK_EVENT_DONE && kind != COOK_EVENT_MENU)
        draw_live_locked(r);
    pthread_mutex_unlock(&r->mu);
}

/* ---- the commands ----------------------------------------------------------- */

static void render_init(render_t *r, const cli_cook_options_t *o, int menu)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->menu = menu;
    r->lines = o->events ? stderr : stdout;
    r->live = !o->quiet && isatty(fileno(r->lines));
    for (int i = 0; i <= LIVE_SLOTS; i++)
        r->slot[i].iter = -1;
    pthread_mutex_init(&r->mu, NULL);
    if (r->live)
        r->ticking = pthread_create(&r->ticker, NULL, ticker_main, r) == 0;
}

static void render_end(render_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->closing = 1;
    clear_live_locked(r);
    pthread_mutex_unlock(&r->mu);
    if (r->ticking)
        pthread_join(r->ticker, NULL);
    pthread_mutex_destroy(&r->mu);
}

static cook_config_t config_of(const cli_cook_options_t *o, render_t *r)
{
    cook_config_t cfg = {.workers = o->workers, .n_workers = o->n_workers, .per_worker = o->per_worker,
                         .confirm_rounds = o->confirm_rounds, .worker_timeout_s = o->worker_timeout_s,
                         .on_event = on_event, .event_ctx = r, .stop = &g_stop};
    return cfg;
}

static void catch_stops(void)
{
    g_stop = 0;
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
}

int cli_cook_start(task_t *const *tasks, int n, const cli_cook_options_t *o)
{
    render_t r;
    render_init(&r, o, n > 1);
    catch_stops();
    cook_config_t cfg = config_of(o, &r);
    char err[4096];
    int status;
    cook_t *c = cook_prepare(tasks, n, &cfg, &status, err, sizeof err);
    if (!c) {
        render_end(&r);
        fprintf(stderr, "emile: %s\n", err);
        return status;
    }
    /* Only now, with nothing left to refuse, is the store made. */
    store_t *s = NULL;
    int open_rc = cli_store_open(o->store_path, CLI_STORE_WRITE, &s);
    if (open_rc != 0) {
        cook_free(c);
        render_end(&r);
        return open_rc;                /* 2: the folder named does not exist */
    }
    int rc = cook_run_new(c, s, err, sizeof err);
    /* A run's failure was said as it ended; a failure before any run was not. */
    if (rc != COOK_OK && r.failed_runs == 0)
        fprintf(stderr, "emile: %s\n", err);
    cook_free(c);
    store_close(s);
    render_end(&r);
    return rc;
}

int cli_cook_resume(int64_t run, int max_iters, const cli_cook_options_t *o)
{
    /* A run to resume lives in a store that exists: none is created. */
    store_t *s = NULL;
    int open_rc = cli_store_open(o->store_path, CLI_STORE_READ, &s);
    if (open_rc != 0)
        return open_rc;
    render_t r;
    render_init(&r, o, 0);
    catch_stops();
    cook_config_t cfg = config_of(o, &r);
    char err[4096];
    int rc = cook_resume(s, run, max_iters, &cfg, err, sizeof err);
    if (rc != COOK_OK && r.failed_runs == 0)
        fprintf(stderr, "emile: %s\n", err);
    store_close(s);
    render_end(&r);
    return rc;
}
