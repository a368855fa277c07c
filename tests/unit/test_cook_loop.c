/*
 * test_cook_loop.c -- src/cook's loop with stand-in workers
 * (tests/support/fake_worker.sh), the real builtin agent and a real store:
 *
 *   - a noisy result, or a new best, is measured again alternating with the
 *     incumbent before it is recorded; its time is the median of its
 *     measurements; a candidate that fails when measured again is not kept
 *     (issue 15 item 4); --confirm 0 turns it off;
 *   - with two workers the builtin agent proposes batches (a climb, then its
 *     rung's sweep) evaluated by both, recorded in order with no gap;
 *   - a worker lost under a candidate: the candidate is tried again
 *     elsewhere; one that loses every worker it meets is an error and the
 *     run goes on;
 *   - a missing API key is refused before any worker starts (item 7);
 *   - resuming a spent run starts no worker and adds nothing;
 *   - a menu of two tasks on one pool: two runs and a table;
 *   - the events: worker, run, progress, iteration, done, in that order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cook/cook.h"
#include "util/fs.h"

typedef struct fixture {
    char dir[512];
    char ref[700], db[700], marker[700];
    char tmpl[1400];
    const char *templates[1];
    store_t *store;
    task_t task, task2;
    json_t *events;
} fixture_t;

static void on_event(void *ctx, cook_event_kind_t kind, const json_t *ev)
{
    fixture_t *f = ctx;
    (void)kind;
    json_array_append_new(f->events, json_deep_copy(ev));
}

static void make_task(fixture_t *f, task_t *t, int max_iters, int seq)
{
    char err[512], v[32];
    task_init(t);
    assert_int_equal(task_set(t, "op", "attention", err, sizeof err), 0);
    snprintf(v, sizeof v, "%d", seq);
    assert_int_equal(task_set(t, "seq", v, err, sizeof err), 0);
    assert_int_equal(task_set(t, "q-heads", "4", err, sizeof err), 0);
    assert_int_equal(task_set(t, "kv-heads", "2", err, sizeof err), 0);
    assert_int_equal(task_set(t, "head-dim", "32", err, sizeof err), 0);
    assert_int_equal(task_set(t, "reference", f->ref, err, sizeof err), 0);
    assert_int_equal(task_set(t, "target", "99", err, sizeof err), 0);
    snprintf(v, sizeof v, "%d", max_iters);
    assert_int_equal(task_set(t, "max-iters", v, err, sizeof err), 0);
    assert_int_equal(task_finalize(t, err, sizeof err), 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_int_equal(fs_mkdtemp("emile-test-cook-", f->dir, sizeof f->dir), 0);
    snprintf(f->ref, sizeof f->ref, "%s/ref.c", f->dir);
    snprintf(f->db, sizeof f->db, "%s/runs.db", f->dir);
    snprintf(f->marker, sizeof f->marker, "%s/started", f->dir);
    assert_int_equal(fs_write_file(f->ref, "ref 100", 7), 0);
    assert_int_equal(store_open(f->db, 0, &f->store), 0);
    f->events = json_array();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    store_close(f->store);
    task_free(&f->task);
    task_free(&f->task2);
    json_decref(f->events);
    fs_rm_rf(f->dir);
    free(f);
    return 0;
}

/* A config whose workers are the fake in mode (touching the marker as
 * each starts). */
static cook_config_t config(fixture_t *f, const char *mode, int workers, int confirm)
{
    snprintf(f->tmpl, sizeof f->tmpl, "touch '%s'; FAKE_DIR='%s' FAKE_MODE=%s exec sh tests/support/fake_worker.sh",
             f->marker, f->dir, mode);
    f->templates[0] = f->tmpl;
    cook_config_t cfg = {.workers = f->templates, .n_workers = 1, .per_worker = workers,
                         .confirm_rounds = confirm, .worker_timeout_s = 60, .start_timeout_s = 30,
                         .on_event = on_event, .event_ctx = f};
    return cfg;
}

/* Cook f->task to its end; the exit status. */
static int cook(fixture_t *f, cook_config_t *cfg)
{
    task_t *tasks[] = {&f->task};
    char err[2048];
    int status;
    cook_t *c = cook_prepare(tasks, 1, cfg, &status, err, sizeof err);
    assert_non_null(c);
    int rc = cook_run_new(c, f->store, err, sizeof err);
    cook_free(c);
    return rc;
}

static json_t *iterations(fixture_t *f, int64_t run)
{
    json_t *its = NULL;
    assert_int_equal(store_iterations(f->store, run, &its), 0);
    return its;
}

/* The evaluations the fake workers made, in order ("ref" or "cand"). */
static void evaluations(fixture_t *f, char *out, size_t n)
{
    char path[700];
    snprintf(path, sizeof path, "%s/log", f->dir);
    char *log = fs_read_file(path, 1 << 20, NULL);
    out[0] = '\0';
    for (char *save = NULL, *l = log ? strtok_r(log, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%.4s", len ? "," : "", l);
    }
    free(log);
}

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

/* Issue 15 item 4: a noisy 50 ms (truly 10 ms) is measured again beside
 * the reference -- cand, ref, cand, ref -- and recorded at 10 ms. */
static void test_noisy_result_measured_again(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    cook_config_t cfg = config(f, "noisy", 1, -1);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    assert_int_equal(json_array_size(its), 2);
    const json_t *it = json_array_get(its, 1);
    assert_string_equal(json_string_value(json_object_get(it, "status")), "valid");
    assert_true(fabs(num(it, "time_ms") - 10) < 1e-9);
    assert_true(fabs(num(it, "speedup") - 10) < 1e-9);       /* 100 ms / 10 ms */
    assert_true(fabs(num(it, "roofline_pct") - 10) < 1e-9);  /* 2% at 50 ms, scaled */
    const json_t *rm = json_object_get(it, "remeasure");
    assert_string_equal(json_string_value(json_object_get(rm, "why")), "noisy_timing");
    const json_t *s = json_object_get(rm, "samples_ms");
    assert_int_equal(json_array_size(s), 3);
    assert_true(fabs(json_number_value(json_array_get(s, 0)) - 50) < 1e-9);
    assert_true(fabs(json_number_value(json_array_get(s, 1)) - 10) < 1e-9);
    const json_t *inc = json_object_get(rm, "incumbent");
    assert_int_equal(json_integer_value(json_object_get(inc, "iter")), 0);
    assert_int_equal(json_array_size(json_object_get(inc, "samples_ms")), 2);
    assert_true(fabs(num(inc, "median_ms") - 100) < 1e-9);
    char order[256];
    evaluations(f, order, sizeof order);
    assert_string_equal(order, "ref,cand,cand,ref,cand,ref");
    json_t *run = NULL;
    assert_int_equal(store_run_get(f->store, 1, &run), 0);
    assert_int_equal(json_integer_value(json_object_get(run, "best_iter")), 1);
    json_decref(run);
    json_decref(its);
}

/* A new best that is not noisy is confirmed too: 50 ms once, 60 after. */
static void test_new_best_confirmed(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    cook_config_t cfg = config(f, "firstbest", 1, 2);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    const json_t *it = json_array_get(its, 1);
    assert_true(fabs(num(it, "time_ms") - 60) < 1e-9);
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "remeasure"), "why")),
                        "faster than the incumbent");
    json_decref(its);
}

/* Valid once, then wrong: not a kernel to build on. */
static void test_flaky_candidate_not_kept(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    cook_config_t cfg = config(f, "flaky", 1, 2);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    const json_t *it = json_array_get(its, 1);
    assert_string_equal(json_string_value(json_object_get(it, "status")), "invalid");
    assert_non_null(strstr(json_string_value(json_object_get(it, "error")),
                           "valid when first measured, then invalid when measured again: wrong on set ragged"));
    json_t *run = NULL;
    assert_int_equal(store_run_get(f->store, 1, &run), 0);
    assert_int_equal(json_integer_value(json_object_get(run, "best_iter")), 0);
    json_decref(run);
    json_decref(its);
}

/* A re-measure whose outputs were right but whose timing the worker
 * rejected once is one noisy figure: the candidate stays, at the median
 * of its other measurements.  Rejected in most of them, it goes. */
static void test_timing_rejection_needs_a_majority(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    cook_config_t cfg = config(f, "heldback", 1, 2);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    const json_t *it = json_array_get(its, 1);
    assert_string_equal(json_string_value(json_object_get(it, "status")), "valid");
    assert_true(fabs(num(it, "time_ms") - 45) < 1e-9);       /* median of 50 and 40 */
    const json_t *rej = json_object_get(json_object_get(it, "remeasure"), "rejected");
    assert_int_equal(json_array_size(rej), 1);
    json_decref(its);

    store_close(f->store);
    unlink(f->db);
    char path[700];
    snprintf(path, sizeof path, "%s/log", f->dir);
    unlink(path);
    assert_int_equal(store_open(f->db, 0, &f->store), 0);
    /* Fresh counters: the fake counts evaluations per kernel. */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/count-*", f->dir);
    assert_int_equal(system(cmd), 0);
    cfg = config(f, "heldback2", 1, 2);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    its = iterations(f, 1);
    it = json_array_get(its, 1);
    assert_string_equal(json_string_value(json_object_get(it, "status")), "invalid");
    assert_non_null(strstr(json_string_value(json_object_get(it, "error")),
                           "valid when first measured, then its timing was rejected in 2 of 3 measurements"));
    json_decref(its);
}

/* --confirm 0: the first figure stands, as before. */
static void test_confirm_off(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    cook_config_t cfg = config(f, "noisy", 1, 0);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    const json_t *it = json_array_get(its, 1);
    assert_true(fabs(num(it, "time_ms") - 50) < 1e-9);
    assert_null(json_object_get(it, "remeasure"));
    json_decref(its);
}

/* Two workers: batches of two, the first two climbs (the second above the
 * first), both workers used, iterations 0..4 recorded in order. */
static void test_batches_on_two_workers(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 4, 256);
    cook_config_t cfg = config(f, "noisy", 2, 0);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    assert_int_equal(json_array_size(its), 5);
    int used[3] = {0, 0, 0};
    size_t i;
    json_t *it;
    json_array_foreach(its, i, it) {
        assert_int_equal(json_integer_value(json_object_get(it, "iter")), (json_int_t)i);
        int w = (int)json_integer_value(json_object_get(it, "worker"));
        assert_true(w == 1 || w == 2);
        used[w] = 1;
    }
    assert_true(used[1] && used[2]);
    /* The first batch climbs two rungs, the second above the first. */
    const json_t *p1 = json_object_get(json_array_get(its, 1), "params");
    const json_t *p2 = json_object_get(json_array_get(its, 2), "params");
    const char *r1 = json_string_value(json_object_get(p1, "rung")), *r2 = json_string_value(json_object_get(p2, "rung"));
    assert_non_null(r1);
    assert_non_null(r2);
    assert_true(strcmp(r1, "v1_blocked") == 0 && strcmp(r2, "v2_flash") == 0);
    assert_null(strstr(json_string_value(json_object_get(json_array_get(its, 2), "reason")), "parameter sweep"));
    /* The agent was asked for two candidates at a time. */
    size_t k;
    json_t *ev;
    int asked_two = 0;
    json_array_foreach(f->events, k, ev) {
        const char *d = json_string_value(json_object_get(ev, "detail"));
        if (d && strstr(d, "the agent chooses 2 candidates"))
            asked_two++;
    }
    assert_int_equal(asked_two, 2);
    json_decref(its);
}

/* A worker dies under a candidate: tried again on the other, recorded
 * valid, with the loss said. */
static void test_lost_worker_candidate_tried_again(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    cook_config_t cfg = config(f, "dieonce", 2, 0);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    const json_t *it = json_array_get(its, 1);
    assert_string_equal(json_string_value(json_object_get(it, "status")), "valid");
    const json_t *lost = json_object_get(it, "lost");
    assert_int_equal(json_array_size(lost), 1);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(lost, 0), "error")),
                           "exited with status 4"));
    json_decref(its);
}

/* Candidates that kill every worker: each is an error after two tries,
 * and the run still ends done with the budget spent. */
static void test_run_survives_dying_workers(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 2, 256);
    cook_config_t cfg = config(f, "diealways", 1, 0);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    json_t *its = iterations(f, 1);
    assert_int_equal(json_array_size(its), 3);
    for (size_t i = 1; i < 3; i++) {
        const json_t *it = json_array_get(its, i);
        assert_string_equal(json_string_value(json_object_get(it, "status")), "error");
        assert_non_null(strstr(json_string_value(json_object_get(it, "error")), "its worker was lost 2 times"));
    }
    json_t *run = NULL;
    assert_int_equal(store_run_get(f->store, 1, &run), 0);
    assert_string_equal(json_string_value(json_object_get(run, "status")), "done");
    assert_string_equal(json_string_value(json_object_get(run, "note")), "the iteration budget is spent");
    json_decref(run);
    json_decref(its);
}

/* Item 7: an LLM agent without its key is refused before any worker
 * starts, so before a run exists or the reference is profiled. */
static void test_missing_key_refused_first(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 2, 256);
    char err[512];
    assert_int_equal(task_set(&f->task, "agent", "anthropic", err, sizeof err), 0);
    const char *had = getenv("ANTHROPIC_API_KEY");
    char *saved = had ? strdup(had) : NULL;
    unsetenv("ANTHROPIC_API_KEY");
    cook_config_t cfg = config(f, "noisy", 1, 0);
    task_t *tasks[] = {&f->task};
    int status = -1;
    char why[2048];
    cook_t *c = cook_prepare(tasks, 1, &cfg, &status, why, sizeof why);
    if (saved) {
        setenv("ANTHROPIC_API_KEY", saved, 1);
        free(saved);
    }
    assert_null(c);
    assert_int_equal(status, COOK_BAD_INPUT);
    assert_non_null(strstr(why, "ANTHROPIC_API_KEY is not set"));
    assert_false(fs_exists(f->marker));
    json_t *runs = NULL;
    assert_int_equal(store_runs_list(f->store, 0, &runs), 0);
    assert_int_equal(json_array_size(runs), 0);
    json_decref(runs);
}

/* Events: workers up, the run, progress, iterations 0 and 1, done with the
 * best; and resuming the spent run starts no worker and adds nothing. */
static void test_events_and_spent_resume(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    cook_config_t cfg = config(f, "noisy", 1, 0);
    assert_int_equal(cook(f, &cfg), COOK_OK);
    const char *want[] = {"worker", "run", "iteration", "iteration", "done"};
    size_t w = 0, i;
    json_t *ev;
    int run_at = -1;
    json_array_foreach(f->events, i, ev) {
        const char *name = json_string_value(json_object_get(ev, "event"));
        if (strcmp(name, "run") == 0)
            run_at = (int)i;
        if (w < 5 && strcmp(name, want[w]) == 0)
            w++;
        else
            assert_true(strcmp(name, "progress") == 0 || strcmp(name, "worker") == 0);
    }
    assert_int_equal(w, 5);
    assert_true(run_at > 0);
    const json_t *done = json_array_get(f->events, json_array_size(f->events) - 1);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "done");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(done, "best"), "iter")), 1);

    unlink(f->marker);
    json_array_clear(f->events);
    char err[2048];
    assert_int_equal(cook_resume(f->store, 1, -1, &cfg, err, sizeof err), COOK_OK);
    assert_false(fs_exists(f->marker));
    const json_t *run = json_array_get(f->events, 0);
    assert_string_equal(json_string_value(json_object_get(run, "event")), "run");
    assert_int_equal(json_integer_value(json_object_get(run, "resumed_at")), 2);
    assert_int_equal(json_integer_value(json_object_get(run, "max_iters")), 1);
    json_t *its = iterations(f, 1);
    assert_int_equal(json_array_size(its), 2);
    json_decref(its);
}

/* A menu: two shapes on one pool of two workers, two runs, one table. */
static void test_menu_shares_the_pool(void **state)
{
    fixture_t *f = *state;
    make_task(f, &f->task, 1, 256);
    make_task(f, &f->task2, 1, 128);
    cook_config_t cfg = config(f, "noisy", 2, 0);
    task_t *tasks[] = {&f->task, &f->task2};
    char err[2048];
    int status;
    cook_t *c = cook_prepare(tasks, 2, &cfg, &status, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(cook_run_new(c, f->store, err, sizeof err), COOK_OK);
    cook_free(c);
    const json_t *menu = json_array_get(f->events, json_array_size(f->events) - 1);
    assert_string_equal(json_string_value(json_object_get(menu, "event")), "menu");
    const json_t *rows = json_object_get(menu, "runs");
    assert_int_equal(json_array_size(rows), 2);
    for (size_t i = 0; i < 2; i++) {
        const json_t *row = json_array_get(rows, i);
        assert_int_equal(json_integer_value(json_object_get(row, "run")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(row, "status")), "done");
        assert_int_equal(json_integer_value(json_object_get(row, "n_iters")), 2);
        assert_true(num(row, "time_ms") > 0);
    }
    /* Each task got its shape's name. */
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(rows, 0), "name")), "seq=256"));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(rows, 1), "name")), "seq=128"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_noisy_result_measured_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_best_confirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flaky_candidate_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timing_rejection_needs_a_majority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches_on_two_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_worker_candidate_tried_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_survives_dying_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_refused_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_and_spent_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_menu_shares_the_pool, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
