/*
 * test_serve_taste.c -- the Tasting Room's API with a stand-in for
 * `emile taste`: engine detection (`taste --help`), the arguments and
 * kernel files the child gets, the report as the page sees it, refusals
 * (unknown model, token count, no such run, no valid kernel, CUDA kernels)
 * and an engine failure reported as 502; and that neither the watchdog nor
 * the shutdown signals a tasting's pid once that child is reaped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_test_client.h"
#include "serve/serve.h"
#include "store/store.h"

static const char fake_cli[] =
    "#!/bin/sh\n"
    "dir=$(dirname \"$0\")\n"
    "[ \"$1\" = taste ] || exit 64\n"
    "[ \"$2\" = --help ] && { echo 'usage: emile taste (--model DIR | --random SHAPE) [options]'; exit 0; }\n"
    "echo \"$@\" > \"$dir/taste-args\"\n"
    "n=64; kernel=; reference=; store=\n"
    "while [ $# -gt 0 ]; do case \"$1\" in\n"
    "  --kernel) kernel=$2;;\n"
    "  --reference) reference=$2;;\n"
    "  --store) store=$2;;\n"
    "  --max-new) n=$2;;\n"
    "esac; shift; done\n"
    /* as the real CLI does with run ids: the sources from the store */
    "sqlite3 -newline '' \"$store\" \"SELECT source FROM iterations WHERE run_id = $kernel AND iter = "
    "(SELECT best_iter FROM runs WHERE id = $kernel)\" > \"$dir/seen-best.c\"\n"
    "sqlite3 -newline '' \"$store\" \"SELECT json_extract(task, '$.reference_source') FROM runs "
    "WHERE id = $reference\" > \"$dir/seen-ref.c\"\n"
    "[ -e \"$dir/taste-fail\" ] && { echo 'emile taste: cannot compile best.c' >&2; exit 1; }\n"
    "echo 'generated text that is not JSON'\n"
    "echo '{\"prompt_tokens\":32,\"runs\":[{\"role\":\"reference\",\"attention\":\"reference.c\","
    "\"ttft_ms\":12.5,\"decode_tok_s\":40.0,\"tokens\":'$n'},{\"role\":\"kernel\","
    "\"attention\":\"best.c\",\"ttft_ms\":8.0,\"decode_tok_s\":41.5,\"tokens\":'$n'}],"
    "\"agree\":true,\"first_divergence\":-1}'\n";

/* From src/serve/serve_internal.h: end a running tasting's child (what
 * serve_stop does first). */
void serve_taste_stop(serve_t *s);

/* ---- the server's waits and signals, watched ----
 *
 * The server is linked into this binary, so these definitions stand in for
 * libc's waitpid, waitid and kill in its code.  They do what libc does,
 * and while a test tracks: every kill aimed at a pid (or process group)
 * already reaped is counted as stray -- by then the pid may belong to
 * another process.  Armed, the first reap then waits hold_s (past the
 * tasting watchdog's deadline) and asks serve_taste_stop to end the
 * tasting, as a shutdown arriving at that moment would. */
static struct {
    pthread_mutex_t mu;
    int tracking, armed;
    double hold_s;
    serve_t *srv;
    pid_t reaped[64];
    int n_reaped;
    int stray_kills;
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void after_reap(pid_t pid)
{
    pthread_mutex_lock(&watch.mu);
    int armed = watch.armed;
    watch.armed = 0;
    if (watch.tracking && watch.n_reaped < 64)
        watch.reaped[watch.n_reaped++] = pid;
    pthread_mutex_unlock(&watch.mu);
    if (armed) {
        struct timespec ts = {(time_t)watch.hold_s,
                              (long)((watch.hold_s - (double)(time_t)watch.hold_s) * 1e9)};
        while (nanosleep(&ts, &ts) != 0)
            ;
        serve_taste_stop(watch.srv);
    }
}

pid_t waitpid(pid_t pid, int *wstatus, int options)
{
    pid_t r = (pid_t)syscall(SYS_wait4, pid, wstatus, options, NULL);
    if (r > 0)
        after_reap(r);
    return r;
}

int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
    int r = (int)syscall(SYS_waitid, idtype, id, info, options, NULL);
    if (r == 0 && !(options & WNOWAIT) && info->si_pid > 0)
        after_reap(info->si_pid);
    return r;
}

int kill(pid_t pid, int sig)
{
    pid_t p = pid < 0 ? -pid : pid;
    pthread_mutex_lock(&watch.mu);
    for (int i = 0; sig != 0 && p > 0 && i < watch.n_reaped; i++)
        if (watch.reaped[i] == p) {
            watch.stray_kills++;
            fprintf(stderr, "stray kill(%d, %d): %d was reaped already\n", (int)pid, sig, (int)p);
        }
    pthread_mutex_unlock(&watch.mu);
    return (int)syscall(SYS_kill, pid, sig);
}

static const char ref_src[] = "int reference_kernel; /* <script> */\n";
static const char best_src[] = "int best_kernel; /* v2 */\n";

typedef struct {
    char dir[256], db[320], fake[320];
    serve_t *srv;
    int port;
    int64_t run_ok, run_none, run_cu;
} fx_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int64_t add_run(store_t *s, const char *lang, int with_best)
{
    int64_t run;
    json_t *task = json_pack("{s:s, s:s}", "op", "attention", "reference_source", ref_src);
    assert_int_equal(store_run_create(s, task, "cpu", "builtin", NULL, &run), 0);
    json_decref(task);
    json_t *it = json_pack("{s:i, s:s, s:s, s:s}", "iter", 0, "status", "valid", "source", ref_src,
                           "lang", lang);
    assert_int_equal(store_iteration_add(s, run, it), 0);
    json_decref(it);
    it = json_pack("{s:i, s:s, s:s, s:s}", "iter", 1, "status", "valid", "source", best_src,
                   "lang", lang);
    assert_int_equal(store_iteration_add(s, run, it), 0);
    json_decref(it);
    if (with_best)
        assert_int_equal(store_run_set_best(s, run, 1), 0);
    return run;
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/emile-serve-taste-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/runs.db", f->dir);
    snprintf(f->fake, sizeof f->fake, "%s/fake-emile", f->dir);
    FILE *fp = fopen(f->fake, "w");
    fputs(fake_cli, fp);
    fclose(fp);
    chmod(f->fake, 0755);
    store_t *s;
    assert_int_equal(store_open(f->db, 0, &s), 0);
    f->run_ok = add_run(s, "c", 1);
    f->run_none = add_run(s, "c", 0);
    f->run_cu = add_run(s, "cu", 1);
    store_close(s);
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.port = 0;
    cfg.store_path = f->db;
    cfg.emile_path = f->fake;
    cfg.quiet = 1;
    char err[512];
    if (serve_start(&cfg, &f->srv, err, sizeof err) != 0)
        return -1;
    f->port = serve_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static char *slurp(fx_t *f, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "r");
    if (!fp)
        return NULL;
    char *b = calloc(1, 65536);
    size_t n = fread(b, 1, 65535, fp);
    b[n] = 0;
    fclose(fp);
    return b;
}

/* POST /api/taste; the JSON reply, status checked. */
static json_t *taste(fx_t *f, int64_t run, const char *model, int tokens, int want)
{
    char body[512];
    snprintf(body, sizeof body, "{\"run\":%lld,\"model\":\"%s\",\"prompt\":\"hi\",\"tokens\":%d}",
             (long long)run, model, tokens);
    http_resp_t r;
    assert_int_equal(http_post_json(f->port, "/api/taste", body, &r), 0);
    if (r.status != want)
        fprintf(stderr, "POST /api/taste: %d %s\n", r.status, r.body);
    assert_int_equal(r.status, want);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    http_resp_free(&r);
    return j;
}

static void test_engine_ready(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/taste", &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "engine")), "ready");
    assert_true(json_is_true(json_object_get(j, "available")));
    json_t *m0 = json_array_get(json_object_get(j, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(m0, "id")), "random:tiny");
    json_decref(j);
    http_resp_free(&r);
}

static void test_taste_runs_the_engine(void **state)
{
    fx_t *f = *state;
    json_t *j = taste(f, f->run_ok, "random:tiny", 16, 200);
    json_t *ref = json_object_get(j, "reference"), *cand = json_object_get(j, "candidate");
    assert_true(json_number_value(json_object_get(ref, "ttft_ms")) == 12.5);
    assert_true(json_number_value(json_object_get(cand, "tokens_per_s")) == 41.5);
    assert_int_equal(json_integer_value(json_object_get(cand, "tokens")), 16);
    assert_true(json_is_true(json_object_get(j, "agree")));
    assert_int_equal(json_integer_value(json_object_get(j, "best_iter")), 1);
    char want[64];
    snprintf(want, sizeof want, "run %lld's best, iteration 1", (long long)f->run_ok);
    assert_string_equal(json_string_value(json_object_get(cand, "label")), want);
    json_decref(j);

    char *args = slurp(f, "taste-args");
    assert_non_null(args);
    assert_non_null(strstr(args, "taste --random tiny --reference "));
    assert_non_null(strstr(args, "--max-new 16 --json --quiet"));
    assert_null(strstr(args, "--prompt"));          /* random weights: no tokenizer */
    free(args);
    /* the run and store are named; no source passes through files of ours */
    char want_args[512];
    snprintf(want_args, sizeof want_args, "--reference %lld --kernel %lld --store %s",
             (long long)f->run_ok, (long long)f->run_ok, f->db);
    args = slurp(f, "taste-args");
    assert_non_null(strstr(args, want_args));
    free(args);
    char *seen = slurp(f, "seen-best.c");
    assert_string_equal(seen, best_src);
    free(seen);
    seen = slurp(f, "seen-ref.c");
    assert_string_equal(seen, ref_src);
    free(seen);
}

static void test_refusals(void **state)
{
    fx_t *f = *state;
    json_decref(taste(f, f->run_ok, "random:qwen3-4b", 16, 400));
    json_decref(taste(f, f->run_ok, "checkpoint", 16, 400));      /* none configured */
    json_decref(taste(f, f->run_ok, "random:tiny", 0, 400));
    json_decref(taste(f, f->run_ok, "random:tiny", 100000, 400));
    json_decref(taste(f, 999, "random:tiny", 16, 404));
    json_decref(taste(f, f->run_none, "random:tiny", 16, 409));
    json_t *j = taste(f, f->run_cu, "random:tiny", 16, 400);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "C kernels"));
    json_decref(j);
}

static void test_engine_failure(void **state)
{
    fx_t *f = *state;
    char p[512];
    snprintf(p, sizeof p, "%s/taste-fail", f->dir);
    fclose(fopen(p, "w"));
    json_t *j = taste(f, f->run_ok, "random:tiny", 8, 502);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "cannot compile best.c"));
    json_decref(j);
    unlink(p);
    json_decref(taste(f, f->run_ok, "random:tiny", 8, 200));    /* and it recovers */
}

/* Once the tasting's child is reaped its pid is free for the kernel to
 * reuse: a watchdog deadline or a shutdown falling then must signal
 * nothing.  The reap is held past the deadline (see waitpid above). */
static void test_no_signal_after_reap(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.port = 0;
    cfg.store_path = f->db;
    cfg.emile_path = f->fake;
    cfg.quiet = 1;
    cfg.taste_timeout_s = 2.0;
    char err[512];
    assert_int_equal(serve_start(&cfg, &f->srv, err, sizeof err), 0);
    f->port = serve_port(f->srv);
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/taste", &r), 0);   /* the engine probe's child */
    assert_int_equal(r.status, 200);
    http_resp_free(&r);

    pthread_mutex_lock(&watch.mu);
    watch.tracking = watch.armed = 1;
    watch.hold_s = 2.5;
    watch.srv = f->srv;
    watch.n_reaped = watch.stray_kills = 0;
    pthread_mutex_unlock(&watch.mu);
    json_t *j = taste(f, f->run_ok, "random:tiny", 8, 200);    /* it had finished well */
    assert_true(json_is_true(json_object_get(j, "agree")));
    json_decref(j);
    pthread_mutex_lock(&watch.mu);
    int stray = watch.stray_kills;
    watch.tracking = watch.armed = 0;
    watch.n_reaped = 0;
    pthread_mutex_unlock(&watch.mu);
    assert_int_equal(stray, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_engine_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_taste_runs_the_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_signal_after_reap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
