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
 *   noisy  non-JSON lines, an unknown event, a progress event and a
 *          worker event around a quick cook
 *
 * Checked: the events relayed over SSE and their order, the task file the
 * child gets (canonical, then deleted), one cook per device with queue
 * positions, another device in parallel, the queue limit, stop and cancel,
 * resume, failures reported (and written to the store), shutdown; the
 * agent_config a page may not send (a variable to read the key from, a
 * credential, a base_url the server was not started with); a job's outcome
 * published only with its end; and no signal aimed at a child's pid once
 * that child is reaped (the pid may be another process's by then).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
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
    "echo '{\"event\":\"log\",\"run\":'$run',\"message\":\"compiling\"}'; "
    "echo '{\"event\":\"progress\",\"run\":'$run',\"phase\":\"compile\",\"detail\":\"kernel.c\","
    "\"iter\":1,\"worker\":2,\"elapsed_s\":0.5}'; "
    "echo '{\"event\":\"worker\",\"run\":'$run',\"worker\":2,\"state\":\"lost\",\"cmd\":\"srun x\","
    "\"why\":\"killed by signal 9\"}'; }\n"
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

/* ---- the server's waits and signals, watched ----
 *
 * The server is linked into this binary, so these definitions stand in for
 * libc's waitpid, waitid and kill in its code.  They do what libc does,
 * and while a test tracks: every kill aimed at a pid (or process group)
 * already reaped is counted as stray -- by then the pid may belong to
 * another process -- and, armed, the first reap holds its thread right
 * after the child is gone until the test has looked at that moment. */
static struct {
    pthread_mutex_t mu;
    int tracking, armed;
    pid_t reaped[64];
    int n_reaped;
    int stray_kills;
    sem_t in_window, leave_window;
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int sem_wait_s(sem_t *sem, int secs)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += secs;
    while (sem_timedwait(sem, &dl) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

static void after_reap(pid_t pid)
{
    pthread_mutex_lock(&watch.mu);
    int armed = watch.armed;
    watch.armed = 0;
    if (watch.tracking && watch.n_reaped < 64)
        watch.reaped[watch.n_reaped++] = pid;
    pthread_mutex_unlock(&watch.mu);
    if (armed) {
        sem_post(&watch.in_window);
        sem_wait_s(&watch.leave_window, 20);
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

/* Start tracking; arm: hold the next reap (see above). */
static void watch_start(int arm)
{
    sem_init(&watch.in_window, 0, 0);
    sem_init(&watch.leave_window, 0, 0);
    pthread_mutex_lock(&watch.mu);
    watch.tracking = 1;
    watch.armed = arm;
    watch.n_reaped = watch.stray_kills = 0;
    pthread_mutex_unlock(&watch.mu);
}

/* Stop tracking; the stray kills seen. */
static int watch_end(void)
{
    pthread_mutex_lock(&watch.mu);
    int n = watch.stray_kills;
    watch.tracking = watch.armed = 0;
    watch.n_reaped = watch.stray_kills = 0;
    pthread_mutex_unlock(&watch.mu);
    sem_post(&watch.leave_window);       /* never leave a lane held */
    return n;
}

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

static int start_with(fx_t *f, const char *emile, int max_queue, const char *const *llm_urls,
                      size_t n_llm_urls)
{
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.llm_base_urls = llm_urls;
    cfg.n_llm_base_urls = n_llm_urls;
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

static int start(fx_t *f, const char *emile, int max_queue)
{
    return start_with(f, emile, max_queue, NULL, 0);
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
    /* The unknown "log" event is not relayed; the progress event is, with
     * the job's id; the worker event comes as a phase in words. */
    json_t *e = wait_event(f, "progress");
    assert_string_equal(jstr(e, "phase"), "compile");
    assert_string_equal(jstr(e, "detail"), "kernel.c");
    assert_int_equal(jint(e, "iter"), 1);
    assert_int_equal(jint(e, "worker"), 2);
    assert_int_equal(jint(e, "run"), 11);
    assert_true(jint(e, "job") > 0);
    assert_null(json_object_get(e, "message"));
    json_decref(e);
    e = wait_event(f, "progress");
    assert_string_equal(jstr(e, "phase"), "worker");
    assert_string_equal(jstr(e, "detail"), "worker 2 lost: killed by signal 9");
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

/* POST a quick fake cook with agent "openai" and this agent_config (JSON
 * text); the status, and the error's text in err when it is not 202. */
static int cook_with_config(fx_t *f, int run, const char *agent_config, char *err, size_t n)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"name\":\"fake:quick:%d\",\"op\":\"attention\",\"params\":{\"batch\":1,"
             "\"seq\":16,\"q_heads\":2,\"kv_heads\":1,\"head_dim\":8,\"causal\":1},"
             "\"dtype\":\"f32\",\"backend\":\"cpu\",\"reference_source\":\"int ref;\","
             "\"target\":50,\"max_iters\":2,\"agent\":\"openai\",\"agent_config\":%s}",
             run, agent_config);
    http_resp_t r;
    assert_int_equal(http_post_json(f->port, "/api/cook", body, &r), 0);
    int st = r.status;
    err[0] = 0;
    if (st != 202) {
        json_t *j = json_loads(r.body, 0, NULL);
        snprintf(err, n, "%s", json_string_value(json_object_get(j, "error")) ?
                 json_string_value(json_object_get(j, "error")) : "");
        json_decref(j);
    }
    http_resp_free(&r);
    return st;
}

/* The finding: with no token on loopback, any page could make the server
 * send any of its environment variables, as the API key, to any host. */
static void test_agent_config_cannot_redirect_keys(void **state)
{
    fx_t *f = *state;
    char err[1024];
    assert_int_equal(cook_with_config(f, 30, "{\"base_url\":\"http://evil\","
                                      "\"api_key_env\":\"AWS_SECRET_ACCESS_KEY\"}",
                                      err, sizeof err), 400);
    assert_int_equal(cook_with_config(f, 30, "{\"api_key_env\":\"AWS_SECRET_ACCESS_KEY\"}",
                                      err, sizeof err), 400);
    assert_non_null(strstr(err, "\"api_key_env\""));
    assert_int_equal(cook_with_config(f, 30, "{\"API_KEY_ENV\":\"HOME\"}", err, sizeof err), 400);
    assert_non_null(strstr(err, "\"API_KEY_ENV\""));
    assert_int_equal(cook_with_config(f, 30, "{\"base_url\":\"http://evil\"}", err, sizeof err),
                     400);
    assert_non_null(strstr(err, "\"base_url\""));
    assert_non_null(strstr(err, "--llm-base-url"));
    assert_int_equal(cook_with_config(f, 30, "{\"model\":\"m\",\"client_secret\":\"s\"}", err,
                                      sizeof err), 400);
    assert_non_null(strstr(err, "\"client_secret\""));
    assert_int_equal(cook_with_config(f, 30, "{\"Authorization\":\"Bearer x\"}", err,
                                      sizeof err), 400);
    assert_non_null(strstr(err, "\"Authorization\""));
    json_t *jobs = get_json(f, "/api/jobs", 200);        /* nothing was queued */
    assert_int_equal(json_array_size(json_object_get(jobs, "jobs")), 0);
    json_decref(jobs);
    /* What a page may set still goes through. */
    subscribe(f);
    assert_int_equal(cook_with_config(f, 31, "{\"model\":\"m\",\"max_tokens\":100,"
                                      "\"token_budget\":1000,\"base_url\":null}",
                                      err, sizeof err), 202);
    json_t *e = wait_event(f, "done");
    assert_string_equal(jstr(e, "status"), "done");
    json_decref(e);
}

/* Started with --llm-base-url, the page may use exactly those URLs. */
static void test_llm_base_url_allow_list(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    static const char *const urls[] = {"http://127.0.0.1:8000/v1", "https://llm.example/v1"};
    assert_int_equal(start_with(f, f->fake, 0, urls, 2), 0);
    char err[1024];
    subscribe(f);
    assert_int_equal(cook_with_config(f, 32, "{\"base_url\":\"https://llm.example/v1\"}", err,
                                      sizeof err), 202);
    json_t *e = wait_event(f, "done");
    assert_string_equal(jstr(e, "status"), "done");
    json_decref(e);
    char p[512];
    snprintf(p, sizeof p, "%s/seen-task.json", f->dir);
    json_t *task = json_load_file(p, 0, NULL);
    assert_non_null(task);
    assert_string_equal(jstr(json_object_get(task, "agent_config"), "base_url"),
                        "https://llm.example/v1");
    json_decref(task);
    assert_int_equal(cook_with_config(f, 33, "{\"base_url\":\"https://llm.example/v1/\"}", err,
                                      sizeof err), 400);
    assert_non_null(strstr(err, "\"agent_config.base_url\""));
    assert_non_null(strstr(err, "http://127.0.0.1:8000/v1"));
    assert_int_equal(cook_with_config(f, 33, "{\"base_url\":\"http://evil\"}", err, sizeof err),
                     400);
    assert_int_equal(cook_with_config(f, 33, "{\"base_url\":7}", err, sizeof err), 400);
    /* The allow-list says where keys may go, never which variable. */
    assert_int_equal(cook_with_config(f, 33, "{\"base_url\":\"http://127.0.0.1:8000/v1\","
                                      "\"api_key_env\":\"HOME\"}", err, sizeof err), 400);
    assert_non_null(strstr(err, "\"api_key_env\""));

    /* A URL that is not http(s) is refused at start. */
    serve_stop(f->srv);
    f->srv = NULL;
    static const char *const bad[] = {"file:///etc/passwd"};
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.port = 0;
    cfg.store_path = f->db;
    cfg.emile_path = f->fake;
    cfg.quiet = 1;
    cfg.llm_base_urls = bad;
    cfg.n_llm_base_urls = 1;
    serve_t *srv = NULL;
    assert_int_not_equal(serve_start(&cfg, &srv, err, sizeof err), 0);
    assert_null(srv);
    assert_non_null(strstr(err, "--llm-base-url"));
}

/* A job's status and error are published with its end (state "done"),
 * never while the lane is still finishing it.  The window is held open:
 * the store is write-locked here, so the lane, marking the crashed cook's
 * run failed, waits on it (up to its 5 s busy timeout). */
static void test_outcome_published_with_the_end(void **state)
{
    fx_t *f = *state;
    store_t *s;
    int64_t run;
    assert_int_equal(store_open(f->db, 0, &s), 0);
    json_t *task = json_pack("{s:s}", "op", "attention");
    assert_int_equal(store_run_create(s, task, "cpu", "builtin", NULL, &run), 0);
    json_decref(task);
    store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    subscribe(f);
    json_decref(cook(f, "crash", (int)run, "cpu", 202));
    json_decref(wait_event(f, "iteration"));
    int early = 0, polls = 0;
    for (; polls < 60; polls++) {                 /* ~1.5 s */
        json_t *jobs = get_json(f, "/api/jobs", 200);
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(jobs, "jobs"), i, j) {
            const char *st = json_string_value(json_object_get(j, "state"));
            if (jint(j, "run") == run && st && strcmp(st, "done") != 0 &&
                (!json_is_null(json_object_get(j, "status")) ||
                 !json_is_null(json_object_get(j, "error"))))
                early++;
        }
        json_decref(jobs);
        struct timespec ts = {0, 25 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    if (early)
        fprintf(stderr, "%d of %d polls saw a running job with its outcome\n", early, polls);
    assert_int_equal(early, 0);
    json_t *e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), run);
    assert_string_equal(jstr(e, "status"), "failed");
    assert_non_null(strstr(jstr(e, "error"), "exited with status 3"));
    json_decref(e);
    char path[64];
    snprintf(path, sizeof path, "/api/runs/%lld", (long long)run);
    json_t *got = get_json(f, path, 200);
    assert_string_equal(jstr(json_object_get(got, "run"), "status"), "failed");
    json_decref(got);
}

/* A stop that arrives once the child is reaped must not signal its pid:
 * the kernel may have given it to another process.  The first reap is
 * held (see waitpid above) while the page asks to stop the run. */
static void test_no_signal_after_reap(void **state)
{
    fx_t *f = *state;
    subscribe(f);
    watch_start(1);
    json_decref(cook(f, "quick", 21, "cpu", 202));
    assert_int_equal(sem_wait_s(&watch.in_window, 15), 0);
    json_t *reply;
    assert_int_equal(post_status(f, "/api/runs/21/stop", &reply), 202);   /* not done yet */
    json_decref(reply);
    sem_post(&watch.leave_window);
    json_t *e = wait_event(f, "done");
    assert_int_equal(jint(e, "run"), 21);
    assert_string_equal(jstr(e, "status"), "done");      /* it had finished */
    json_decref(e);
    assert_int_equal(watch_end(), 0);
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
        cmocka_unit_test_setup_teardown(test_agent_config_cannot_redirect_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_llm_base_url_allow_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcome_published_with_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_signal_after_reap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
