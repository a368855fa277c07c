/*
 * test_worker_wiring.c -- the compile cache and the device lock as the
 * worker uses them (worker_evaluate, in process):
 *   - a second evaluation of a source reports compile.cached and runs no
 *     compiler (the compiler is a wrapper that fails once told to: a
 *     compile that ran would be a compile error), keeps the first log, and
 *     a new task's reference is found in the cache too; a changed source
 *     does run the compiler; EMILE_COMPILE_CACHE=off builds every time;
 *   - one worker keeps a task's full-size validation and timing sets: a
 *     second evaluation answers only the other five, a new task all again;
 *   - the cache directory is the worker's own, closed to others;
 *   - an evaluation whose device another process holds waits, says so
 *     as a "wait" progress event naming the holder, and times only after
 *     the holder let go (the trace of its windows).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emile_test.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/paths.h"
#include "worker/device_lock.h"
#include "worker/device_turn.h"
#include "worker/evaluate.h"

static struct {
    char tmp[256];
    char cc[600], broken[600], cache[400], locks[400], trace[400];
    json_t *task, *options;
    char *kernel;
    json_t *events;            /* progress events of the last evaluation */
} G;

static void on_progress(const json_t *ev, void *user)
{
    (void)user;
    json_array_append_new(G.events, json_deep_copy(ev));
}

/* One evaluation of source on task by a fresh worker (a fresh worker:
 * nothing of the last one's memory helps it). */
static json_t *evaluate(const json_t *task, const char *source)
{
    char err[512];
    worker_ctx_t *w = worker_ctx_new(err, sizeof err);
    if (!w)
        fail_msg("worker_ctx_new: %s", err);
    json_decref(G.events);
    G.events = json_array();
    worker_ctx_set_progress(w, on_progress, NULL);
    json_t *r = worker_evaluate(w, task, source, G.options);
    worker_ctx_free(w);
    return r;
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const json_t *compile_of(const json_t *r)
{
    return json_object_get(r, "compile");
}

static void expect_valid(const json_t *r, const char *what)
{
    if (strcmp(str_of(r, "status"), "valid") != 0)
        fail_msg("%s: %s: %s (compile log: %.300s)", what, str_of(r, "status"), str_of(r, "error"),
                 str_of(compile_of(r), "log"));
}

static void break_compiler(int broken)
{
    if (broken)
        assert_int_equal(fs_write_file(G.broken, "1\n", 2), 0);
    else
        unlink(G.broken);
}

static void test_second_evaluation_runs_no_compiler(void **state)
{
    (void)state;
    break_compiler(0);
    json_t *first = evaluate(G.task, G.kernel);
    expect_valid(first, "first evaluation");
    assert_true(json_is_false(json_object_get(compile_of(first), "cached")));
    break_compiler(1);
    json_t *second = evaluate(G.task, G.kernel);
    expect_valid(second, "second evaluation, the compiler broken");
    const json_t *c = compile_of(second);
    assert_true(json_is_true(json_object_get(c, "cached")));
    assert_string_equal(str_of(c, "log"), str_of(compile_of(first), "log"));
    assert_string_equal(str_of(c, "command"), str_of(compile_of(first), "command"));
    assert_string_equal(str_of(c, "sandbox"), str_of(compile_of(first), "sandbox"));
    assert_near(json_number_value(json_object_get(c, "built_seconds")),
                json_number_value(json_object_get(compile_of(first), "seconds")), 1e-9);
    /* The same numbers as a build: the object is the one that was built. */
    assert_true(json_number_value(json_object_get(json_object_get(second, "report"), "gflops")) > 0);
    json_decref(first);
    json_decref(second);

    /* Another task (another seed) builds its reference again: found too. */
    json_t *task2 = json_deep_copy(G.task);
    json_object_set_new(task2, "seed", json_integer(99));
    json_t *third = evaluate(task2, G.kernel);
    expect_valid(third, "a new task's reference and the kernel, the compiler broken");
    json_decref(third);
    json_decref(task2);

    /* A source never built runs the compiler: the wrapper's refusal shows
     * (so a hit above was no compile). */
    char *changed = malloc(strlen(G.kernel) + 64);
    sprintf(changed, "%s\n/* another candidate */\n", G.kernel);
    json_t *fourth = evaluate(G.task, changed);
    assert_string_equal(str_of(fourth, "status"), "compile_error");
    assert_contains(str_of(compile_of(fourth), "log"), "the test's compiler refuses");
    json_decref(fourth);

    /* Off: every source is built (and the broken compiler refuses). */
    setenv("EMILE_COMPILE_CACHE", "off", 1);
    json_t *off = evaluate(G.task, G.kernel);
    setenv("EMILE_COMPILE_CACHE", G.cache, 1);
    break_compiler(0);
    /* Its reference is built first, by the refusing compiler. */
    assert_string_equal(str_of(off, "status"), "reference_invalid");
    assert_contains(str_of(off, "error"), "the test's compiler refuses");
    json_decref(off);
    free(changed);
}

/* The "reference" events of the last evaluation that name a set: how
 * many, the last one's n, and the sets, space-separated. */
static int reference_events(int *n, char *names, size_t len)
{
    int count = 0;
    size_t i;
    json_t *ev;
    names[0] = 0;
    json_array_foreach(G.events, i, ev) {
        char set[32] = "";
        if (strcmp(str_of(ev, "phase"), "reference") != 0 || sscanf(str_of(ev, "detail"), "set %31s", set) != 1)
            continue;                  /* the device turn's own events name no set */
        count++;
        *n = (int)json_integer_value(json_object_get(ev, "n"));
        snprintf(names + strlen(names), len - strlen(names), "%s%s", names[0] ? " " : "", set);
    }
    return count;
}

/* One worker keeps a task's full-size validation set and timing sets: its
 * first evaluation answers all eight, the next only the ragged, small and
 * held-back sets (drawn fresh each time), and a new task all eight again. */
static void test_sets_kept_for_the_task(void **state)
{
    (void)state;
    break_compiler(0);
    char err[512], names[256];
    int n = 0;
    worker_ctx_t *w = worker_ctx_new(err, sizeof err);
    if (!w)
        fail_msg("worker_ctx_new: %s", err);
    worker_ctx_set_progress(w, on_progress, NULL);
    json_t *task2 = json_deep_copy(G.task);
    json_object_set_new(json_object_get(task2, "params"), "seq", json_integer(80));
    struct { const json_t *task; int sets; const char *names; } steps[] = {
        {G.task, 8, "task ragged small timing timing2 held-1 held-2 held-3"},
        {G.task, 5, "ragged small held-1 held-2 held-3"},
        {G.task, 5, "ragged small held-1 held-2 held-3"},
        {task2, 8, "task ragged small timing timing2 held-1 held-2 held-3"},
    };
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        json_decref(G.events);
        G.events = json_array();
        json_t *r = worker_evaluate(w, steps[k].task, G.kernel, G.options);
        expect_valid(r, "an evaluation of the kept sets");
        json_decref(r);
        int got = reference_events(&n, names, sizeof names);
        if (got != steps[k].sets || n != steps[k].sets || strcmp(names, steps[k].names) != 0)
            fail_msg("evaluation %zu: %d reference events of n=%d (%s), expected %d (%s)", k + 1, got, n, names,
                     steps[k].sets, steps[k].names);
    }
    json_decref(task2);
    worker_ctx_free(w);
}

static void test_cache_is_the_workers_own(void **state)
{
    (void)state;
    break_compiler(0);
    json_decref(evaluate(G.task, G.kernel));
    struct stat st;
    assert_int_equal(lstat(G.cache, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_mode & 077, 0);
    /* A cache directory others may write is refused, and the worker
     * builds instead (a kernel there could be anyone's). */
    char open_dir[600];
    snprintf(open_dir, sizeof open_dir, "%s/open-cache", G.tmp);
    assert_int_equal(mkdir(open_dir, 0700), 0);
    assert_int_equal(chmod(open_dir, 0777), 0);
    setenv("EMILE_COMPILE_CACHE", open_dir, 1);
    json_t *r = evaluate(G.task, G.kernel);
    setenv("EMILE_COMPILE_CACHE", G.cache, 1);
    expect_valid(r, "with a cache others may write");
    assert_null(json_object_get(compile_of(r), "cached"));
    json_decref(r);
}

static void test_wait_for_the_device_is_shown_and_timing_follows_the_holder(void **state)
{
    (void)state;
    break_compiler(0);
    json_decref(evaluate(G.task, G.kernel));      /* built once: the wait below is not a compile's */
    unlink(G.trace);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char key[300], err[512];
        json_t *dev = json_pack("{ss}", "backend", "cpu");
        device_turn_key(dev, key, sizeof key);
        device_lock_t l;
        if (device_lock_open(&l, key, G.locks, err, sizeof err) != 0 ||
            device_lock_acquire(&l, DEVICE_LOCK_EXCLUSIVE, 10, err, sizeof err) != 0)
            _exit(1);
        device_lock_describe(&l, "the test's holder: timing a decoy");
        double t = clock_mono_s();
        if (write(p[1], &t, sizeof t) != (ssize_t)sizeof t)
            _exit(1);
        struct timespec ts = {2, 0};
        nanosleep(&ts, NULL);
        t = clock_mono_s();
        device_lock_release(&l);
        if (write(p[1], &t, sizeof t) != (ssize_t)sizeof t)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    double held_at = 0, released_at = 0;
    assert_int_equal(read(p[0], &held_at, sizeof held_at), (ssize_t)sizeof held_at);
    json_t *r = evaluate(G.task, G.kernel);
    assert_int_equal(read(p[0], &released_at, sizeof released_at), (ssize_t)sizeof released_at);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    expect_valid(r, "evaluated after a wait");
    json_decref(r);

    /* The wait was shown, naming the holder. */
    size_t i;
    json_t *ev;
    int waited = 0;
    json_array_foreach(G.events, i, ev) {
        if (strcmp(str_of(ev, "phase"), "wait") == 0) {
            assert_contains(str_of(ev, "detail"), "waiting for the device");
            assert_contains(str_of(ev, "detail"), "the test's holder: timing a decoy");
            waited = 1;
        }
    }
    if (!waited)
        fail_msg("no \"wait\" progress event while another process held the device");

    /* Every window the worker held began after the holder let go. */
    char *trace = test_read_file(G.trace);
    assert_non_null(trace);
    int windows = 0, timing = 0;
    for (char *line = strtok(trace, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *w = json_loads(line, 0, NULL);
        assert_non_null(w);
        double t0 = json_number_value(json_object_get(w, "t0"));
        if (t0 < released_at)
            fail_msg("the worker held the device (%s) from %.3f, before the holder let go at %.3f", line, t0,
                     released_at);
        timing += strcmp(str_of(w, "mode"), "exclusive") == 0;
        windows++;
        json_decref(w);
    }
    free(trace);
    assert_true(windows >= 3);     /* the reference's sets, validation, timing */
    assert_int_equal(timing, 1);
    assert_true(released_at - held_at > 1.5);
}

static int group_setup(void **state)
{
    (void)state;
    /* Traversable by the sandbox's user (as root), listed by nobody. */
    snprintf(G.tmp, sizeof G.tmp, "/tmp/emile-test-wiring-XXXXXX");
    if (!mkdtemp(G.tmp) || chmod(G.tmp, 0711) != 0)
        return -1;
    setenv("TMPDIR", G.tmp, 1);
    char xdg[400];
    snprintf(xdg, sizeof xdg, "%s/xdg", G.tmp);
    setenv("XDG_CACHE_HOME", xdg, 1);
    if (strncmp(emile_cache_dir(), xdg, strlen(xdg)) != 0)
        return -1;
    snprintf(G.cache, sizeof G.cache, "%s/kcache", G.tmp);
    snprintf(G.locks, sizeof G.locks, "%s/locks", G.tmp);
    snprintf(G.trace, sizeof G.trace, "%s/trace.ndjson", G.tmp);
    setenv("EMILE_COMPILE_CACHE", G.cache, 1);
    setenv("EMILE_DEVICE_LOCK_DIR", G.locks, 1);
    setenv("EMILE_DEVICE_LOCK_TRACE", G.trace, 1);
    unsetenv("EMILE_DEVICE_LOCK");
    /* The compiler: a wrapper of cc that refuses once told to (a file in
     * its own tree, which the compile sandbox lets it read). */
    char tc[500], bin[520];
    snprintf(tc, sizeof tc, "%s/tc", G.tmp);
    snprintf(bin, sizeof bin, "%s/bin", tc);
    if (mkdir(tc, 0755) != 0 || mkdir(bin, 0755) != 0)
        return -1;
    snprintf(G.cc, sizeof G.cc, "%s/cc", bin);
    snprintf(G.broken, sizeof G.broken, "%s/broken", tc);
    char script[1400];
    snprintf(script, sizeof script,
             "#!/bin/sh\nif [ -e '%s' ]; then echo 'the test'\"'\"'s compiler refuses' >&2; exit 1; fi\n"
             "exec cc \"$@\"\n",
             G.broken);
    if (fs_write_file(G.cc, script, strlen(script)) != 0 || chmod(G.cc, 0755) != 0)
        return -1;
    setenv("EMILE_CC", G.cc, 1);
    if (test_private_runner(G.tmp) != 0)
        return -1;
    char *ref = test_read_file("kernels/attention/cpu/reference.c");
    G.kernel = test_read_file("kernels/attention/cpu/v2_flash.c");
    if (!ref || !G.kernel)
        return -1;
    G.task = json_pack("{s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:i}", "op",
                       "attention", "params", "batch", 1, "seq", 128, "q_heads", 4, "kv_heads", 2, "head_dim", 32,
                       "causal", 1, "dtype", "f32", "backend", "cpu", "reference_source", ref, "reference_lang",
                       "c", "time_limit_s", 20.0, "memory_limit_mb", 512.0, "compile_limit_s", 60.0, "seed", 1234);
    free(ref);
    G.options = json_pack("{s:i, s:s}", "reps", 5, "source_name", "v2_flash.c");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(G.task);
    json_decref(G.options);
    json_decref(G.events);
    free(G.kernel);
    fs_rm_rf(G.tmp);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_evaluation_runs_no_compiler),
        cmocka_unit_test(test_sets_kept_for_the_task),
        cmocka_unit_test(test_cache_is_the_workers_own),
        cmocka_unit_test(test_wait_for_the_device_is_shown_and_timing_follows_the_holder),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
