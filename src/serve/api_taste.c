/* api_taste.c -- the Tasting Room's API.  The engine lives in the CLI
 * (`emile taste`); the server asks it once whether it is there (`taste
 * --help`), and runs one tasting at a time as a child:
 *
 *   EMILE taste (--random SHAPE | --model DIR) --reference RUN --kernel RUN
 *               --store STORE --max-new N [--prompt TEXT] --json --quiet
 *
 * so the run's reference and best kernel are read, compiled (a run's
 * source as the sandbox's user) and tasted by the engine's own run loader
 * (src/taste/taste_kernel.c); the server only checks the run first, to
 * answer 404/409/400 itself.  The child's last stdout line is its JSON
 * report. */
#include "serve_internal.h"
#include "cook_child.h"
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TASTE_MAX_TOKENS 1024
#define TASTE_MAX_PROMPT 8192

static const char not_built[] =
    "The inference engine is not built into this emile yet. Once it is, the Tasting Room runs "
    "Qwen3 with the reference kernel and with a run's best kernel side by side.";

/* Random-weight shapes offered when no checkpoint is configured; qwen3-4b
 * is left out (16 GB of random weights is no taste test). */
static const char *const random_shapes[] = {"tiny", "qwen3-0.6b"};

/* 1 when `EMILE taste --help` answers with its usage; asked once. */
static int engine_built(serve_t *s)
{
    pthread_mutex_lock(&s->taste_mu);
    if (s->engine_state == 0) {
        char *argv[] = {s->emile_path, "taste", "--help", NULL};
        cook_child_t c;
        char err[256];
        int found = 0;
        if (cook_child_spawn(&c, argv, NULL, err, sizeof err) == 0) {
            char *line;
            while (cook_child_next_line(&c, &line) == 1) {
                found |= strstr(line, "usage: emile taste") != NULL;
                free(line);
            }
            int ws;
            cook_child_wait(&c, &ws);
            found &= WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
        }
        s->engine_state = found ? 1 : -1;
    }
    int built = s->engine_state == 1;
    pthread_mutex_unlock(&s->taste_mu);
    return built;
}

static json_t *models_json(serve_t *s)
{
    json_t *a = json_array();
    if (s->model_dir) {
        const char *base = strrchr(s->model_dir, '/');
        char name[300];
        snprintf(name, sizeof name, "%s (checkpoint)", base && base[1] ? base + 1 : s->model_dir);
        json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "id", "checkpoint", "name", name,
                                           "prompt_text", 1));
    }
    for (size_t i = 0; i < sizeof random_shapes / sizeof random_shapes[0]; i++) {
        char id[64], name[128];
        snprintf(id, sizeof id, "random:%s", random_shapes[i]);
        snprintf(name, sizeof name, "%s shape, random weights (synthetic prompt)", random_shapes[i]);
        json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "id", id, "name", name,
                                           "prompt_text", 0));
    }
    return a;
}

enum MHD_Result api_taste(request_t *r, int64_t id)
{
    serve_t *s = r->s;
    json_t *o = json_object();
    if (!engine_built(s)) {
        json_object_set_new(o, "engine", json_string("not built"));
        json_object_set_new(o, "available", json_false());
        json_object_set_new(o, "message", json_string(not_built));
        json_object_set_new(o, "models", json_array());
    } else {
        json_object_set_new(o, "engine", json_string("ready"));
        json_object_set_new(o, "available", json_true());
        json_object_set_new(o, "message",
                            json_string("Pick a run's best kernel and a model: the engine "
                                        "generates twice, with the reference attention and with "
                                        "that kernel, on the same prompt and weights."));
        json_object_set_new(o, "models", models_json(s));
    }
    return respond_json(r, 200, o);
}

/* The report's side with role `role`, in the page's words. */
static json_t *side_json(const json_t *report, const char *role)
{
    static const char *const keys[][2] = {{"attention", "label"}, {"ttft_ms", "ttft_ms"},
                                          {"decode_tok_s", "tokens_per_s"}, {"tokens", "tokens"}};
    size_t i;
    json_t *side;
    json_array_foreach(json_object_get(report, "runs"), i, side) {
        const char *ro = json_string_value(json_object_get(side, "role"));
        if (!ro || strcmp(ro, role) != 0)
            continue;
        json_t *o = json_object();
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            json_t *v = json_object_get(side, keys[k][0]);
            json_object_set(o, keys[k][1], v ? v : json_null());
        }
        return o;
    }
    return json_null();
}

/* Kills a tasting's process group once it outlives the server's limit, so
 * a hung engine answers the page with an error instead of holding the
 * request (and the one tasting slot) forever. */
typedef struct watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* on CLOCK_MONOTONIC: a clock change moves nothing */
    int done, fired;
    pid_t pid;
    double secs;
} watchdog_t;

static void *watchdog_main(void *arg)
{
    watchdog_t *w = arg;
    struct timespec dl = clock_mono_after(w->secs);
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT) {
            if (!w->done) {
                kill(-w->pid, SIGKILL);     /* the child leads its own group */
                w->fired = 1;
            }
            break;
        }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* 0 and a running watchdog for pid, or -1 (then there is none). */
static int watchdog_start(watchdog_t *w, pthread_t *th, pid_t pid, double secs)
{
    memset(w, 0, sizeof *w);
    w->pid = pid;
    w->secs = secs;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(th, NULL, watchdog_main, w) == 0)
        return 0;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return -1;
}

/* Stop the watchdog; 1 when it had fired. */
static int watchdog_finish(watchdog_t *w, pthread_t th)
{
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(th, NULL);
    int fired = w->fired;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return fired;
}

/* Run the child; *report is its last JSON line.  0, or -1 with err. */
static int run_taste(serve_t *s, char **argv, json_t **report, char *err, size_t errlen)
{
    cook_child_t c;
    *report = NULL;
    if (cook_child_spawn(&c, argv, s->quiet ? NULL : "[taste] ", err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&s->taste_mu);
    s->taste_pid = c.pid;
    pthread_mutex_unlock(&s->taste_mu);
    watchdog_t wd;
    pthread_t wd_th;
    int watched = watchdog_start(&wd, &wd_th, c.pid, s->taste_timeout_s) == 0;
    char *line;
    while (cook_child_next_line(&c, &line) == 1) {
        json_t *j = json_loads(line, 0, NULL);
        free(line);
        if (json_is_object(j) && json_object_get(j, "runs")) {
            json_decref(*report);
            *report = j;
        } else {
            json_decref(j);
        }
    }
    /* The child has exited but is not reaped: its pid, and so its group
     * id, still name nothing else.  Stop everything that may signal it
     * (the watchdog, serve_taste_stop) first, then reap it. */
    int ws;
    cook_child_wait_exit(&c, &ws);
    int timed_out = watched && watchdog_finish(&wd, wd_th);
    pthread_mutex_lock(&s->taste_mu);
    s->taste_pid = 0;
    pthread_mutex_unlock(&s->taste_mu);
    cook_child_reap(&c);
    if (*report && WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
        return 0;
    char last[512];
    cook_child_last_error(&c, last, sizeof last);
    if (timed_out)
        snprintf(err, errlen, "the engine was still running after %g s (the server's "
                 "--taste-timeout) and was stopped%s%s", s->taste_timeout_s,
                 last[0] ? "; its last words: " : "", last);
    else
        snprintf(err, errlen, "the engine %s: %s",
                 WIFSIGNALED(ws) ? "was killed" : "failed", last[0] ? last : "no report");
    json_decref(*report);
    *report = NULL;
    return -1;
}

/* Check that run has a best kernel and a reference to taste (C only: the
 * engine here builds C), before a child is spent on it. */
static enum MHD_Result check_run(request_t *r, int64_t run, int *best_iter, int *ok)
{
    serve_t *s = r->s;
    json_t *rj = NULL, *it = NULL;
    char msg[512] = "";
    *ok = 0;
    pthread_mutex_lock(&s->store_mu);
    int rc = store_run_get(s->store, run, &rj);
    json_t *b = json_object_get(rj, "best_iter");
    *best_iter = json_is_integer(b) ? (int)json_integer_value(b) : -1;
    if (rc == 0 && *best_iter >= 0)
        rc = store_iteration_get(s->store, run, *best_iter, &it);
    if (rc != 0)
        snprintf(msg, sizeof msg, "%s", store_errmsg(s->store));
    pthread_mutex_unlock(&s->store_mu);
    enum MHD_Result ret = MHD_YES;
    const char *src = json_string_value(json_object_get(it, "source"));
    const char *lang = json_string_value(json_object_get(it, "lang"));
    const char *rsrc = json_string_value(json_object_get(json_object_get(rj, "task"),
                                                         "reference_source"));
    if (rc != 0)
        ret = respond_error(r, strncmp(msg, "no run ", 7) == 0 ? 404 : 500, "%s", msg);
    else if (*best_iter < 0 || !src)
        ret = respond_error(r, 409, "run %lld has no valid kernel to taste", (long long)run);
    else if (lang && strcmp(lang, "c") != 0)
        ret = respond_error(r, 400, "the Tasting Room builds C kernels; this run's are %s", lang);
    else if (!rsrc)
        ret = respond_error(r, 409, "run %lld has no reference source stored", (long long)run);
    else
        *ok = 1;
    json_decref(rj);
    json_decref(it);
    return ret;
}

enum MHD_Result api_taste_run(request_t *r, int64_t id)
{
    serve_t *s = r->s;
    enum MHD_Result ret;
    if (!engine_built(s))
        return respond_error(r, 501, "%s", not_built);
    json_t *j = request_json_object(r, &ret);
    if (!j)
        return ret;
    json_int_t run = json_integer_value(json_object_get(j, "run"));
    const char *model = json_string_value(json_object_get(j, "model"));
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    json_int_t tokens = json_integer_value(json_object_get(j, "tokens"));
    char shape[32] = "", tok[16];
    int checkpoint = model && strcmp(model, "checkpoint") == 0 && s->model_dir;
    if (model && strncmp(model, "random:", 7) == 0)
        for (size_t i = 0; i < sizeof random_shapes / sizeof random_shapes[0]; i++)
            if (strcmp(model + 7, random_shapes[i]) == 0)
                snprintf(shape, sizeof shape, "%s", random_shapes[i]);
    const char *bad = run <= 0 ? "\"run\" must be a run id"
                    : !checkpoint && !shape[0] ? "\"model\" is not one of /api/taste's models"
                    : tokens < 1 || tokens > TASTE_MAX_TOKENS ? "\"tokens\" must be 1..1024"
                    : prompt && strlen(prompt) > TASTE_MAX_PROMPT ? "\"prompt\" is too long"
                    : NULL;
    if (bad) {
        json_decref(j);
        return respond_error(r, 400, "%s", bad);
    }
    int best_iter, ok;
    ret = check_run(r, run, &best_iter, &ok);
    if (!ok) {
        json_decref(j);
        return ret;
    }
    pthread_mutex_lock(&s->taste_mu);
    int busy = s->tasting;
    s->tasting = 1;
    pthread_mutex_unlock(&s->taste_mu);
    if (busy) {
        json_decref(j);
        return respond_error(r, 409, "a tasting is already running; one at a time");
    }

    char err[1024] = "", run_s[24];
    json_t *report = NULL;
    snprintf(tok, sizeof tok, "%lld", (long long)tokens);
    snprintf(run_s, sizeof run_s, "%lld", (long long)run);
    char *argv[24];
    int n = 0;
    argv[n++] = s->emile_path;
    argv[n++] = "taste";
    argv[n++] = checkpoint ? "--model" : "--random";
    argv[n++] = checkpoint ? s->model_dir : shape;
    argv[n++] = "--reference";
    argv[n++] = run_s;
    argv[n++] = "--kernel";
    argv[n++] = run_s;
    argv[n++] = "--store";
    argv[n++] = s->store_path;
    argv[n++] = "--max-new";
    argv[n++] = tok;
    if (checkpoint && prompt && *prompt) {
        argv[n++] = "--prompt";
        argv[n++] = (char *)prompt;
    }
    argv[n++] = "--json";
    argv[n++] = "--quiet";
    argv[n] = NULL;
    int rc = run_taste(s, argv, &report, err, sizeof err);
    pthread_mutex_lock(&s->taste_mu);
    s->tasting = 0;
    pthread_mutex_unlock(&s->taste_mu);
    if (rc != 0) {
        if (!s->quiet)       /* the page shows it too; the log keeps it */
            fprintf(stderr, "serve: tasting run %lld failed: %s\n", (long long)run, err);
        json_decref(j);
        return respond_error(r, 502, "%s", err);
    }
    json_t *o = json_object();
    json_object_set_new(o, "run", json_integer(run));
    json_object_set_new(o, "best_iter", json_integer(best_iter));
    json_object_set(o, "model", json_object_get(j, "model"));
    json_object_set(o, "prompt_tokens", json_object_get(report, "prompt_tokens"));
    /* The engine names the kernels by their temporary files; say which
     * kernels they are instead. */
    char label[96];
    json_t *side = side_json(report, "reference");
    snprintf(label, sizeof label, "run %lld's reference", (long long)run);
    json_object_set_new(side, "label", json_string(label));
    json_object_set_new(o, "reference", side);
    side = side_json(report, "kernel");
    snprintf(label, sizeof label, "run %lld's best, iteration %d", (long long)run, best_iter);
    json_object_set_new(side, "label", json_string(label));
    json_object_set_new(o, "candidate", side);
    json_object_set(o, "agree", json_object_get(report, "agree"));
    json_object_set(o, "first_divergence", json_object_get(report, "first_divergence"));
    json_decref(report);
    json_decref(j);
    return respond_json(r, 200, o);
}

void serve_taste_stop(serve_t *s)
{
    pthread_mutex_lock(&s->taste_mu);
    if (s->taste_pid > 0)
        kill(-s->taste_pid, SIGKILL);     /* its own process group */
    pthread_mutex_unlock(&s->taste_mu);
}
