/*
 * test_serve_cook.c -- cooking through the server, with a stand-in for the
 * CLI: a shell script that takes the same arguments (`cook TASKFILE --store
 * STORE --events`, `resume ID --store STORE --events`) and prints the
 * same NDJSON events.  Its behaviour is picked by the task's name,
 * "fake:MODE:RUN":
 *
 *   quick  run, two iterations, done
 *   slow   run, one iteration, then waits for the file go-RUN; on SIGTERM
 *          it prints done/stopped (as the CLI does after its candidate)
 *   crash  run, one iteration, a word on stderr, exit 3 (no done)
 *   early  a word on stderr and exit 2 before any event
 *   fails  run, one iteration, done/failed without a reason (it is in the
 *          run's note in the store)
 *   noisy  non-JSON lines and unknown events around a quick cook
 *
 * Checked: the events relayed over SSE and their order, the task file the
 * child gets (canonical, then deleted), one cook per device with queue
 * positions, another device in parallel, the queue limit, stop and cancel,
 * resume, failures reported (and written to the store), shutdown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "http_test_client.h"
#include "serve/serve.h"
#include "store/store.h"

static const char fake_cli[] =
    "#!/bin/sh\n"
    "dir=$(dirname \"$0\")\n"
    "[ \"$3\" = --store ] && [ \"$5\" = --events ] || { echo \"fake: bad arguments: $*\" >&2; exit 64; }\n"
    "echo \"$4\" > \"$dir/seen-store\"\n"
    "if [ \"$1\" = cook ]; then\n"
    "  cp \"$2\" \"$dir/seen-task.json\"; echo \"$2\" > \"$dir/seen-path\"\n"
    "  mode=$(sed -n 's/.*\"name\":\"fake:\\([a-z]*\\):\\([0-9]*\\)\".*/\\1/p' \"$2\")\n"
    "  run=$(sed -n 's/.*\"name\":\"fake:\\([a-z]*\\):\\([0-9]*\\)\".*/\\2/p' \"$2\")\n"
    "elif [ \"$1\" = resume ]; then\n"
    "  run=$2; mode=quick; [ -e \"$dir/slow-resume\" ] && mode=slow\n"
    "else exit 64; fi\n"
    "it() { echo \"{\\\"event\\\":\\\"iteration\\\",\\\"run\\\":$run,\\\"iteration\\\":{\\\"iter\\\":$1,"
    "\\\"label\\\":\\\"v$1 </script><script>x()</script>\\\",\\\"status\\\":\\\"valid\\\","
    "\\\"gflops\\\":$2,\\\"source\\\":\\\"int k$1;\\\"}}\"; }\n"
    "if [ \"$mode\" = early ]; then echo 'fake: cannot read the task' >&2; exit 2; fi\n"
    "trap 'touch \"$dir/terminated-$run\"; echo \"{\\\"event\\\":\\\"done\\\",\\\"run\\\":$run,"
    "\\\"status\\\":\\\"stopped\\\",\\\"best_iter\\\":0}\"; exit 0' TERM\n"
    "[ \"$mode\" = noisy ] && { echo 'hello there'; echo '{not json'; "
    "echo '{\"event\":\"log\",\"run\":'$run',\"message\":\"compiling\"}'; }\n"
    "echo \"{\\\"event\\\":\\\"run\\\",\\\"run\\\":$run}\"\n"
    "it 0 1.5\n"
    "if [ \"$mode\" = crash ]; then echo 'fake: boom, the agent fell over' >&2; exit 3; fi\n"
    "if [ \"$mode\" = fails ]; then echo 'run N in STORE' >&2;"
    " echo \"{\\\"event\\\":\\\"done\\\",\\\"run\\\":$run,\\\"status\\\":\\\"failed\\\"}\"; exit 1; fi\n"
    "if [ \"$mode\" = slow ]; then\n"
    "  n=0; while [ ! -e \"$dir/go-$run\" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done\n"
    "fi\n"
    "it 1 3.0\n"
    "[ \"$mode\" = noisy ] && echo '{\"event\":\"candidate\",\"run\":'$run',\"iter\":2}'\n"
    "echo \"{\\\"event\\\":\\\"done\\\",\\\"run\\\":$run,\\\"status\\\":\\\"done\\\",\\\"best_iter\\\":1}\"\n";

typedef struct {
    char dir[256];
    char db[320];
    char fake[320];
    serve_t *srv;
    int port;
    sse_stream_t ev;
} fx_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int start(fx_t *f, const char *emile, int max_queue)
{
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.port = 0;
    cfg.store_path = f->db;
    cfg.emile_path = emile;
    cfg.quiet = 1;
    cfg.max_queue = max_queue;
    cfg.stop_grace_s = 5;
    char err[512];
    if (serve_start(&cfg, &f->srv, err, sizeof err) != 0) {
        fprintf(stderr, "serve_start: %s\n", err);
        return -1;
    }
    f->port = serve_port(f->srv);
    return 0;
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/emile-serve-cook-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/runs.db", f->dir);
    snprintf(f->fake, sizeof f->fake, "%s/fake-emile", f->dir);
    FILE *fp = fopen(f->fake, "w");
    fputs(fake_cli, fp);
    fclose(fp);
    chmod(f->fake, 0755);
    store_t *s;
    if (store_open(f->db, 0, &s) != 0)
        return -1;
    store_close(s);
    f->ev.fd = -1;
    *state = f;
    return start(f, f->fake, 0);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sse_close(&f->ev);
    serve_stop(f->srv);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void subscribe(fx_t *f)
{
    assert_int_equal(sse_open(f->port, "/api/events", &f->ev), 0);
    char type[64], *data;
    assert_int_equal(sse_next(&f->ev, 5000, type, sizeof type, &data), 1);
    assert_string_equal(type, "hello");
    free(data);
}

/* The next event of type `want`, skipping others (e.g. "jobs"); fails
 * after 15 s. */
static json_t *wait_event(fx_t *f, const char *want)
{
    for (;;) {
        char type[64], *data;
        int rc = sse_next(&f->ev, 15000, type, sizeof type, &data);
        if (rc != 1)
            fail_msg("no '%s' event (stream %s)", want, rc == 0 ? "timed out" : "ended");
        if (strcmp(type, want) == 0) {
            json_t *j = json_loads(data, 0, NULL);
            free(data);
            assert_non_null(j);
            return j;
        }
        free(data);
    }
}

static json_int_t jint(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", k);
    return json_integer_value(v);
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (!s)
        fail_msg("\"%s\" is not a string", k);
    return s;
}

/* POST a task named fake:MODE:RUN on backend; the reply, status checked. */
static json_t *cook(fx_t *f, const char *mode, int run, const char *backend, int want_status)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"name\":\"fake:%s:%d\",\"op\":\"attention\",\"params\":{\"batch\":1,\"seq\":16,"
             "\"q_heads\":2,\"kv_heads\":1,\"head_dim\":8,\"causal\":1},\"dtype\":\"f32\","
             "\"backend\":\"%s\",\"reference_source\":\"int ref; /* <script> */\","
             "\"target\":50,\"max_iters\":2,\"agent\":\"builtin\"}", mode, run, backend);
    http_resp_t r;
    assert_int_equal(http_post_json(f->port, "/api/cook", body, &r), 0);
    if (r.status != want_status)
        fprintf(stderr, "POST /api/cook: %d %s\n", r.status, r.body);
    assert_int_equal(r.status, want_status);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    http_resp_free(&r);
    return j;
}

static void touch(fx_t *f, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fclose(fp);
}

static int exists(fx_t *f, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    return access(p, F_OK) == 0;
}

static json_t *get_json(fx_t *f, const char *path, int want_status)
{
    http_resp_t r;
    assert_int_equal(http_get(f->port, path, &r), 0);
    assert_int_equal(r.status, want_status);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    http_resp_free(&r);
    return j;
}

static int post_status(fx_t *f, const char *path, json_t **reply)
{
    http_resp_t r;
    assert_int_equal(http_post_json(f->port, path, NULL, &r), 0);
    int st = r.status;
    if (reply)
        *reply = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
    return st;
}

static void test_cook_relays_events(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    json_t *reply = cook(f, "quick", 42, "cpu", 202);
    assert_int_equal(jint(reply, "job"), 1);
    assert_int_equal(jint(reply, "position"), 0);
    assert_string_equal(jstr(reply, "state"), "starting");
    assert_string_equal(jstr(reply, "backend"), "cpu");
    json_decref(reply);

    json_t *e = wait_event(f, "run");
    assert_int_equal(jint(e, "run"), 42);
    assert_int_equal(jint(e, "job"), 1);
    assert_string_equal(jstr(e, "kind"), "cook");
    json_decref(e);
    for (int i = 0; i < 2; i++) {
        e = wait_event(f, "iteration");
        assert_int_equal(jint(e, "run"), 42);
        json_t *it = json_object_get(e, "iteration");
        assert_int_equal(jint(it, "iter"), i);
        char want[64];
        snprintf(want, sizeof want, "v%d </script><script>x()</script>", i);
        assert_string_equal(jstr(it, "label"), want);     /* relayed untouched, as JSON */
        json_decref(e);
    }
    e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), 42);
    assert_string_equal(jstr(e, "status"), "done");
    assert_int_equal(jint(e, "best_iter"), 1);
    assert_true(json_is_null(json_object_get(e, "error")));
    json_decref(e);

    /* The child got the store and the canonical task, in a file that is
     * gone once it finished. */
    char p[512], line[512] = "";
    snprintf(p, sizeof p, "%s/seen-store", f->dir);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    line[strcspn(line, "\n")] = 0;
    assert_string_equal(line, f->db);
    snprintf(p, sizeof p, "%s/seen-task.json", f->dir);
    json_t *task = json_load_file(p, 0, NULL);
    assert_non_null(task);
    assert_string_equal(jstr(task, "reference_source"), "int ref; /* <script> */");
    assert_string_equal(jstr(task, "name"), "fake:quick:42");
    assert_non_null(json_object_get(json_object_get(task, "params"), "scale"));   /* derived */
    json_decref(task);
    snprintf(p, sizeof p, "%s/seen-path", f->dir);
    fp = fopen(p, "r");
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    line[strcspn(line, "\n")] = 0;
    assert_int_equal(access(line, F_OK), -1);

    json_t *jobs = get_json(f, "/api/jobs", 200);
    json_t *j0 = json_array_get(json_object_get(jobs, "jobs"), 0);
    assert_string_equal(jstr(j0, "state"), "done");
    assert_string_equal(jstr(j0, "status"), "done");
    assert_int_equal(jint(j0, "run"), 42);
    json_decref(jobs);
}

static void test_one_cook_per_device(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    json_t *a = cook(f, "slow", 1, "cpu", 202);
    json_t *b = cook(f, "quick", 2, "cpu", 202);
    json_t *c = cook(f, "quick", 3, "cuda", 202);
    assert_int_equal(jint(a, "position"), 0);
    assert_int_equal(jint(b, "position"), 1);
    assert_string_equal(jstr(b, "state"), "queued");
    assert_int_equal(jint(c, "position"), 0);       /* another device: no wait */
    json_decref(a);
    json_decref(b);
    json_decref(c);

    json_t *jobs = get_json(f, "/api/jobs", 200);
    json_t *list = json_object_get(jobs, "jobs");
    int seen_b = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *j = json_array_get(list, i);
        if (jint(j, "job") == 2) {
            assert_string_equal(jstr(j, "state"), "queued");
            assert_int_equal(jint(j, "position"), 1);
            seen_b = 1;
        }
    }
    assert_true(seen_b);
    json_decref(jobs);

    /* The cuda cook finishes while the cpu one still waits for go-1. */
    json_t *e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), 3);
    json_decref(e);
    touch(f, "go-1");
    e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), 1);
    json_decref(e);
    e = wait_event(f, "run");                       /* only now does B start */
    assert_int_equal(jint(e, "run"), 2);
    json_decref(e);
    e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), 2);
    assert_string_equal(jstr(e, "status"), "done");
    json_decref(e);
}

static void test_stop_running(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    json_decref(cook(f, "slow", 5, "cpu", 202));
    json_decref(wait_event(f, "iteration"));
    json_t *run = get_json(f, "/api/runs", 200);   /* not in the store: the fake writes none */
    json_decref(run);
    json_t *reply;
    assert_int_equal(post_status(f, "/api/runs/5/stop", &reply), 202);
    assert_string_equal(jstr(reply, "state"), "stopping");
    json_decref(reply);
    json_t *e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), 5);
    assert_string_equal(jstr(e, "status"), "stopped");
    json_decref(e);
    assert_true(exists(f, "terminated-5"));           /* it was SIGTERM */
    assert_int_equal(post_status(f, "/api/runs/5/stop", NULL), 409);
}

static void test_cancel_queued(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    json_decref(cook(f, "slow", 6, "cpu", 202));
    json_t *b = cook(f, "quick", 7, "cpu", 202);
    json_int_t job = jint(b, "job");
    json_decref(b);
    char path[64];
    snprintf(path, sizeof path, "/api/jobs/%lld/stop", (long long)job);
    json_t *reply;
    assert_int_equal(post_status(f, path, &reply), 202);
    assert_string_equal(jstr(reply, "state"), "cancelled");
    json_decref(reply);
    json_t *e = wait_event(f, "done");
    assert_int_equal(jint(e, "job"), job);
    assert_string_equal(jstr(e, "status"), "cancelled");
    json_decref(e);
    touch(f, "go-6");
    e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), 6);
    json_decref(e);
    /* the cancelled cook never ran */
    char type[64], *data;
    while (sse_next(&f->ev, 700, type, sizeof type, &data) == 1) {
        assert_string_not_equal(type, "run");
        free(data);
    }
    assert_int_equal(post_status(f, path, NULL), 404);
}

static void test_crash_marks_run_failed(void **state)
{
    fx_t *f = *state;
    store_t *s;
    int64_t run;
    assert_int_equal(store_open(f->db, 0, &s), 0);
    json_t *task = json_pack("{s:s}", "op", "attention");
    assert_int_equal(store_run_create(s, task, "cpu", "builtin", NULL, &run), 0);
    json_decref(task);
    store_close(s);

    subscribe(f);
    json_decref(cook(f, "crash", (int)run, "cpu", 202));
    json_t *e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), run);
    assert_string_equal(jstr(e, "status"), "failed");
    const char *err = jstr(e, "error");
    assert_non_null(strstr(err, "exited with status 3"));
    assert_non_null(strstr(err, "boom, the agent fell over"));
    json_decref(e);

    /* The store no longer says "running". */
    char path[64];
    snprintf(path, sizeof path, "/api/runs/%lld", (long long)run);
    json_t *got = get_json(f, path, 200);
    json_t *r = json_object_get(got, "run");
    assert_string_equal(jstr(r, "status"), "failed");
    assert_non_null(strstr(jstr(r, "note"), "boom"));
    json_decref(got);
}

static void test_failure_reason_from_store(void **state)
{
    fx_t *f = *state;
    store_t *s;
    int64_t run;
    assert_int_equal(store_open(f->db, 0, &s), 0);
    json_t *task = json_pack("{s:s}", "op", "attention");
    assert_int_equal(store_run_create(s, task, "cpu", "builtin", NULL, &run), 0);
    assert_int_equal(store_run_set_status(s, run, "failed", "no ladder for op attention"), 0);
    json_decref(task);
    store_close(s);
    subscribe(f);
    json_decref(cook(f, "fails", (int)run, "cpu", 202));
    json_t *e = wait_event(f, "done");
    assert_string_equal(jstr(e, "status"), "failed");
    assert_string_equal(jstr(e, "error"), "no ladder for op attention");
    json_decref(e);
}

static void test_failure_before_run(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    json_decref(cook(f, "early", 0, "cpu", 202));
    json_t *e = wait_event(f, "done");
    assert_true(json_is_null(json_object_get(e, "run")));
    assert_string_equal(jstr(e, "status"), "failed");
    assert_non_null(strstr(jstr(e, "error"), "cannot read the task"));
    json_decref(e);
}

static void test_noise_is_ignored(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    json_decref(cook(f, "noisy", 11, "cpu", 202));
    json_t *e = wait_event(f, "progress");          /* the unknown "log" event */
    assert_string_equal(jstr(e, "event"), "log");
    assert_string_equal(jstr(e, "message"), "compiling");
    json_decref(e);
    e = wait_event(f, "done");
    assert_string_equal(jstr(e, "status"), "done");
    assert_int_equal(jint(e, "run"), 11);
    json_decref(e);
}

static void test_missing_cli(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    assert_int_equal(start(f, "/nonexistent/emile", 0), 0);
    subscribe(f);
    json_decref(cook(f, "quick", 1, "cpu", 202));
    json_t *e = wait_event(f, "done");
    assert_string_equal(jstr(e, "status"), "failed");
    assert_non_null(strstr(jstr(e, "error"), "cannot start /nonexistent/emile"));
    json_decref(e);
    json_t *h = get_json(f, "/api/health", 200);      /* still serving */
    json_decref(h);
}

static void test_queue_limit(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    assert_int_equal(start(f, f->fake, 1), 0);
    subscribe(f);
    json_decref(cook(f, "slow", 1, "cpu", 202));
    json_decref(cook(f, "quick", 2, "cpu", 202));   /* waits */
    json_t *r = cook(f, "quick", 3, "cpu", 429);
    assert_non_null(strstr(jstr(r, "error"), "wait"));
    json_decref(r);
    json_decref(cook(f, "quick", 4, "cuda", 202));  /* other device, own queue */
    touch(f, "go-1");
}

static void test_resume(void **state)
{
    fx_t *f = *state;
    store_t *s;
    int64_t run;
    assert_int_equal(store_open(f->db, 0, &s), 0);
    json_t *task = json_pack("{s:s}", "op", "attention");
    assert_int_equal(store_run_create(s, task, "cpu", "builtin", NULL, &run), 0);
    assert_int_equal(store_run_set_status(s, run, "stopped", NULL), 0);
    json_decref(task);
    store_close(s);

    subscribe(f);
    touch(f, "slow-resume");
    char path[64];
    snprintf(path, sizeof path, "/api/runs/%lld/resume", (long long)run);
    json_t *reply;
    assert_int_equal(post_status(f, path, &reply), 202);
    assert_int_equal(jint(reply, "run"), run);
    json_decref(reply);
    json_t *e = wait_event(f, "run");
    assert_int_equal(jint(e, "run"), run);
    assert_string_equal(jstr(e, "kind"), "resume");
    json_decref(e);
    assert_int_equal(post_status(f, path, NULL), 409);    /* already cooking */

    /* GET /api/runs/N tells that it is cooking. */
    char rpath[64];
    snprintf(rpath, sizeof rpath, "/api/runs/%lld", (long long)run);
    json_t *got = get_json(f, rpath, 200);
    json_t *job = json_object_get(got, "job");
    assert_string_equal(jstr(job, "state"), "running");
    assert_string_equal(jstr(job, "kind"), "resume");
    json_decref(got);

    char go[32];
    snprintf(go, sizeof go, "go-%lld", (long long)run);
    touch(f, go);
    e = wait_event(f, "done");
    assert_string_equal(jstr(e, "status"), "done");
    json_decref(e);
    assert_int_equal(post_status(f, "/api/runs/999/resume", NULL), 404);
}

static void test_shutdown_stops_cooks(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    json_decref(cook(f, "slow", 9, "cpu", 202));
    json_decref(wait_event(f, "iteration"));
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    serve_stop(f->srv);
    f->srv = NULL;
    gettimeofday(&t1, NULL);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_usec - t0.tv_usec) / 1e6;
    assert_true(dt < 4.9);   /* below the 5 s stop_grace_s: TERM ended it, not the grace (slack for slow CI) */
    assert_true(exists(f, "terminated-9"));
    /* the event stream ended with the server */
    char type[64], *data;
    int rc;
    while ((rc = sse_next(&f->ev, 3000, type, sizeof type, &data)) == 1)
        free(data);
    assert_int_equal(rc, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cook_relays_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_cook_per_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_marks_run_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_reason_from_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_before_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noise_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_stops_cooks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
