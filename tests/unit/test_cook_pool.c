/*
 * test_cook_pool.c -- src/cook/pool.c with stand-in workers
 * (tests/support/fake_worker.sh): jobs run at the same time on different
 * workers; a worker that dies, hangs or answers garbage is replaced and its
 * job tried once more on another; a job that loses its worker twice fails
 * with both reasons; pinned jobs stay on their slot; a worker on another
 * device is refused; a pool with no worker that starts says why; worker
 * progress lines are relayed with the job's run, iteration and slot.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cook/pool.h"
#include "util/fs.h"

#define FAKE "sh tests/support/fake_worker.sh"

typedef struct seen {
    pthread_mutex_t mu;
    json_t *events;
} seen_t;

static void on_event(void *ctx, cook_event_kind_t kind, const json_t *ev)
{
    seen_t *s = ctx;
    (void)kind;
    pthread_mutex_lock(&s->mu);
    json_array_append_new(s->events, json_deep_copy(ev));
    pthread_mutex_unlock(&s->mu);
}

/* Events of a kind with field == value (a string). */
static int count_events(seen_t *s, const char *name, const char *field, const char *value)
{
    int n = 0;
    size_t i;
    json_t *ev;
    pthread_mutex_lock(&s->mu);
    json_array_foreach(s->events, i, ev) {
        const char *e = json_string_value(json_object_get(ev, "event"));
        const char *v = field ? json_string_value(json_object_get(ev, field)) : NULL;
        if (e && strcmp(e, name) == 0 && (!field || (v && strcmp(v, value) == 0)))
            n++;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

typedef struct fixture {
    char dir[512];
    char tmpl[2][1024];
    const char *templates[2];
    seen_t seen;
    pool_t *pool;
    json_t *device;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_int_equal(fs_mkdtemp("emile-test-pool-", f->dir, sizeof f->dir), 0);
    pthread_mutex_init(&f->seen.mu, NULL);
    f->seen.events = json_array();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pool_close(f->pool);
    json_decref(f->device);
    json_decref(f->seen.events);
    fs_rm_rf(f->dir);
    free(f);
    return 0;
}

/* Open a pool of per copies of one fake worker (env: extra variables). */
static void open_pool(fixture_t *f, int per, const char *env)
{
    snprintf(f->tmpl[0], sizeof f->tmpl[0], "FAKE_DIR='%s' %s %s", f->dir, env ? env : "", FAKE);
    f->templates[0] = f->tmpl[0];
    pool_options_t o = {.templates = f->templates, .n_templates = 1, .per_template = per,
                        .backend = "cpu", .start_timeout_s = 30, .on_event = on_event, .ctx = &f->seen};
    char err[1024];
    f->pool = pool_open(&o, &f->device, err, sizeof err);
    assert_non_null(f->pool);
    assert_string_equal(json_string_value(json_object_get(f->device, "name")), "fake device");
}

static json_t *request(const char *source)
{
    return json_pack("{sss{}s{ss}}", "cmd", "evaluate", "task", "kernel", "source", source);
}

static void job(pool_job_t *j, json_t *req, int pin, double timeout)
{
    memset(j, 0, sizeof *j);
    j->request = req;
    j->pin = pin;
    j->timeout_s = timeout;
    j->run = 7;
    j->iter = 3;
    j->phase = "evaluate";
    j->slot = -1;
}

static const char *status_of(const pool_job_t *j)
{
    return json_string_value(json_object_get(j->reply, "status"));
}

/* Two jobs that can only pass together: they ran at the same time, on
 * different workers. */
static void test_jobs_run_at_once(void **state)
{
    fixture_t *f = *state;
    open_pool(f, 2, NULL);
    assert_int_equal(pool_size(f->pool), 2);
    assert_int_equal(pool_alive(f->pool), 2);
    json_t *req = request("meet 2");
    pool_job_t j[2];
    job(&j[0], req, -1, 60);
    job(&j[1], req, -1, 60);
    pool_run(f->pool, j, 2, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        assert_non_null(j[i].reply);
        assert_string_equal(status_of(&j[i]), "valid");
        assert_null(j[i].lost);
        pool_job_clear(&j[i]);
    }
    json_decref(req);
    /* Each job said where it went. */
    assert_true(count_events(&f->seen, "progress", "phase", "evaluate") >= 2);
}

/* A worker that dies under a job: replaced, the job tried again on the
 * other worker, and answered. */
static void test_dead_worker_is_replaced(void **state)
{
    fixture_t *f = *state;
    open_pool(f, 2, "FAKE_MODE=dieonce");
    json_t *req = request("int kernel;");
    pool_job_t j;
    job(&j, req, -1, 60);
    pool_run(f->pool, &j, 1, NULL, NULL);
    assert_non_null(j.reply);
    assert_string_equal(status_of(&j), "valid");
    assert_int_equal(json_array_size(j.lost), 1);
    const char *why = json_string_value(json_object_get(json_array_get(j.lost, 0), "error"));
    assert_non_null(strstr(why, "exited with status 4"));
    int first = (int)json_integer_value(json_object_get(json_array_get(j.lost, 0), "worker"));
    assert_int_not_equal(first, j.slot + 1);          /* tried again elsewhere */
    assert_int_equal(count_events(&f->seen, "worker", "state", "lost"), 1);
    pool_job_clear(&j);
    /* The lost worker comes back: every slot up again. */
    for (int i = 0; i < 100 && pool_alive(f->pool) < 2; i++)
        usleep(50000);
    assert_int_equal(pool_alive(f->pool), 2);
    job(&j, req, -1, 60);
    pool_run(f->pool, &j, 1, NULL, NULL);
    assert_string_equal(status_of(&j), "valid");
    pool_job_clear(&j);
    json_decref(req);
}

/* A job that kills every worker it meets fails after two tries, with
 * both reasons; the pool goes on with the next job. */
static void test_twice_lost_job_fails(void **state)
{
    fixture_t *f = *state;
    open_pool(f, 2, NULL);
    json_t *die = request("die"), *ok = request("ok 2.5");
    pool_job_t j[2];
    job(&j[0], die, -1, 60);
    job(&j[1], ok, -1, 60);
    pool_run(f->pool, j, 2, NULL, NULL);
    assert_null(j[0].reply);
    assert_non_null(strstr(j[0].error, "its worker was lost 2 times"));
    assert_non_null(strstr(j[0].error, "exited with status 3"));
    assert_int_equal(json_array_size(j[0].lost), 2);
    assert_non_null(j[1].reply);
    assert_string_equal(status_of(&j[1]), "valid");
    pool_job_clear(&j[0]);
    pool_job_clear(&j[1]);
    json_decref(die);
    json_decref(ok);
}

/* A worker that hangs past the job's timeout, and one that answers
 * garbage: each is stopped, named, replaced. */
static void test_hang_and_garbage(void **state)
{
    fixture_t *f = *state;
    open_pool(f, 1, NULL);
    json_t *hang = request("hang"), *garbage = request("garbage");
    pool_job_t j;
    job(&j, hang, -1, 1);
    pool_run(f->pool, &j, 1, NULL, NULL);
    assert_null(j.reply);
    assert_non_null(strstr(j.error, "gave no answer within 1 s"));
    pool_job_clear(&j);
    job(&j, garbage, -1, 30);
    pool_run(f->pool, &j, 1, NULL, NULL);
    assert_null(j.reply);
    assert_non_null(strstr(j.error, "answered something that is not a reply"));
    assert_non_null(strstr(j.error, "bogus"));
    pool_job_clear(&j);
    /* One worker, lost four times, and replaced each time: still up. */
    assert_int_equal(count_events(&f->seen, "worker", "state", "lost"), 4);
    for (int i = 0; i < 100 && pool_alive(f->pool) < 1; i++)
        usleep(50000);
    assert_int_equal(pool_alive(f->pool), 1);
    json_decref(hang);
    json_decref(garbage);
}

/* Pinned jobs run on their slot only. */
static void test_pinned_jobs_stay(void **state)
{
    fixture_t *f = *state;
    open_pool(f, 3, NULL);
    json_t *req = request("whoami");
    pool_job_t j[6];
    for (int i = 0; i < 6; i++)
        job(&j[i], req, i % 2 ? 2 : 1, 30);
    pool_run(f->pool, j, 6, NULL, NULL);
    json_int_t pid[3] = {0, 0, 0};
    for (int i = 0; i < 6; i++) {
        int slot = i % 2 ? 2 : 1;
        assert_int_equal(j[i].slot, slot);
        json_int_t p = json_integer_value(json_object_get(j[i].reply, "pid"));
        assert_true(p > 0);
        if (!pid[slot])
            pid[slot] = p;
        assert_int_equal(p, pid[slot]);                /* the same worker each time */
        pool_job_clear(&j[i]);
    }
    assert_int_not_equal(pid[1], pid[2]);
    json_decref(req);
}

/* A second template on another device is refused; the first serves. */
static void test_other_device_refused(void **state)
{
    fixture_t *f = *state;
    snprintf(f->tmpl[0], sizeof f->tmpl[0], "FAKE_DIR='%s' %s", f->dir, FAKE);
    snprintf(f->tmpl[1], sizeof f->tmpl[1], "FAKE_DIR='%s' FAKE_DEVICE='another gpu' %s", f->dir, FAKE);
    f->templates[0] = f->tmpl[0];
    f->templates[1] = f->tmpl[1];
    pool_options_t o = {.templates = f->templates, .n_templates = 2, .per_template = 1,
                        .backend = "cpu", .start_timeout_s = 30, .on_event = on_event, .ctx = &f->seen};
    char err[1024];
    f->pool = pool_open(&o, &f->device, err, sizeof err);
    assert_non_null(f->pool);
    assert_int_equal(pool_size(f->pool), 2);
    assert_int_equal(pool_alive(f->pool), 1);
    assert_int_equal(count_events(&f->seen, "worker", "state", "down"), 1);
    size_t i;
    json_t *ev;
    int named = 0;
    json_array_foreach(f->seen.events, i, ev) {
        const char *why = json_string_value(json_object_get(ev, "why"));
        if (why && strstr(why, "another gpu") && strstr(why, "fake device"))
            named = 1;
    }
    assert_true(named);
    json_t *req = request("ok 1");
    pool_job_t j;
    job(&j, req, -1, 30);
    pool_run(f->pool, &j, 1, NULL, NULL);
    assert_int_equal(j.slot, 0);
    pool_job_clear(&j);
    /* A job pinned to the refused slot fails, saying why. */
    job(&j, req, 1, 30);
    pool_run(f->pool, &j, 1, NULL, NULL);
    assert_null(j.reply);
    assert_non_null(strstr(j.error, "worker 2 is down"));
    pool_job_clear(&j);
    json_decref(req);
}

/* No worker starts: no pool, and the worker's own words. */
static void test_no_worker_starts(void **state)
{
    fixture_t *f = *state;
    const char *t[] = {"exit 4"};
    pool_options_t o = {.templates = t, .n_templates = 1, .per_template = 2, .backend = "cpu",
                        .start_timeout_s = 30, .on_event = on_event, .ctx = &f->seen};
    char err[1024];
    json_t *dev = (json_t *)1;
    assert_null(pool_open(&o, &dev, err, sizeof err));
    assert_null(dev);
    assert_non_null(strstr(err, "the worker (exit 4) exited with status 4"));
}

/* {i} in a template is the copy's index. */
static void test_template_index(void **state)
{
    fixture_t *f = *state;
    snprintf(f->tmpl[0], sizeof f->tmpl[0], "FAKE_DIR='%.200s' sh -c 'touch %.200s/copy-{i}; exec %s'",
             f->dir, f->dir, FAKE);
    f->templates[0] = f->tmpl[0];
    pool_options_t o = {.templates = f->templates, .n_templates = 1, .per_template = 3,
                        .backend = "cpu", .start_timeout_s = 30};
    char err[1024];
    f->pool = pool_open(&o, &f->device, err, sizeof err);
    assert_non_null(f->pool);
    for (int i = 0; i < 3; i++) {
        char p[700], word[32];
        snprintf(p, sizeof p, "%s/copy-%d", f->dir, i);
        assert_true(fs_exists(p));
        snprintf(word, sizeof word, "copy-%d;", i);
        assert_non_null(strstr(pool_slot_cmd(f->pool, i), word));
    }
}

/* Local GPU workers: one per GPU of $CUDA_VISIBLE_DEVICES, in turn. */
static void test_local_gpus(void **state)
{
    (void)state;
    char *saved = getenv("CUDA_VISIBLE_DEVICES") ? strdup(getenv("CUDA_VISIBLE_DEVICES")) : NULL;
    setenv("CUDA_VISIBLE_DEVICES", "4,5,GPU-1234", 1);
    const char *want[] = {"4", "5", "GPU-1234", "4", "5"};
    for (int i = 0; i < 5; i++) {
        char dev[64];
        pool_local_device(backend_find("cuda"), i, dev, sizeof dev);
        assert_string_equal(dev, want[i]);
    }
    setenv("CUDA_VISIBLE_DEVICES", "2", 1);
    char dev[64];
    pool_local_device(backend_find("cuda"), 3, dev, sizeof dev);
    assert_string_equal(dev, "2");                      /* one GPU: every worker shares it */
    if (saved) {
        setenv("CUDA_VISIBLE_DEVICES", saved, 1);
        free(saved);
    } else {
        unsetenv("CUDA_VISIBLE_DEVICES");
    }
}

/* A worker's progress line, relayed with our run, iteration and slot; its
 * own fields only, and nothing without a phase. */
static void test_progress_relayed(void **state)
{
    fixture_t *f = *state;
    open_pool(f, 1, NULL);
    json_t *line = json_pack("{sssssisisfsisI}", "event", "progress", "phase", "validate", "k", 2, "n", 3,
                             "elapsed_s", 1.5, "run", 99, "secret", (json_int_t)5);
    json_object_set_new(line, "detail", json_string("set ragged (2 of 3)"));
    pool_worker_progress(f->pool, 0, line);
    json_decref(line);
    line = json_pack("{sssi}", "event", "progress", "phase", 7);
    pool_worker_progress(f->pool, 0, line);           /* no phase in words: dropped */
    json_decref(line);
    pool_worker_progress(f->pool, 5, line);           /* no such slot */
    json_t *got = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(f->seen.events, i, ev)
        if (strcmp(json_string_value(json_object_get(ev, "event")), "progress") == 0)
            got = ev;
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "phase")), "validate");
    assert_string_equal(json_string_value(json_object_get(got, "detail")), "set ragged (2 of 3)");
    assert_int_equal(json_integer_value(json_object_get(got, "k")), 2);
    assert_int_equal(json_integer_value(json_object_get(got, "n")), 3);
    assert_int_equal(json_integer_value(json_object_get(got, "worker")), 1);
    assert_null(json_object_get(got, "run"));       /* idle slot: no run, not the worker's 99 */
    assert_null(json_object_get(got, "secret"));
    assert_int_equal(count_events(&f->seen, "progress", NULL, NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_jobs_run_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_worker_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twice_lost_job_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pinned_jobs_stay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_device_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_worker_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_relayed, setup, teardown),
        cmocka_unit_test(test_local_gpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
