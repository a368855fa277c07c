/*
 * test_backend_plug.c -- a backend is one file and one registry line: a
 * fake third backend, "fakegpu", defined here (never in the product) and
 * added with backend_register, is taken by every path that used to compare
 * a backend's name, with no edit to them:
 *
 *   - the registry: found by name, listed in backend_names (the messages
 *     of task validation and `emile devices`), a name is registered once;
 *   - task validation: a task on fakegpu finalizes, with the backend's
 *     default language; an unknown backend's message lists fakegpu;
 *   - `emile devices fakegpu` passes the CLI's check (it fails later,
 *     exit 1, only because no worker answers; an unknown name is exit 2);
 *   - the worker's device listing describes it and measures its ceilings
 *     (once: then cached) through its own functions, and lists it as
 *     unavailable with its own reason when it says so;
 *   - the diagnosis gives it the tag set of its device class (a GPU:
 *     spills, memory_bound_below_bandwidth), which the same report on the
 *     cpu backend does not get;
 *   - a local pool splits its devices through its own variable and count;
 *   - the LLM agent's system prompt names it and its device.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/llm/llm.h"
#include "backend/backend.h"
#include "backend/lang.h"
#include "cli/cli.h"
#include "cook/pool.h"
#include "profile/report.h"
#include "task/task.h"
#include "util/fs.h"
#include "worker/evaluate.h"

/* ---- the fake backend ------------------------------------------------- */

static int fake_up = 1;         /* what available() answers */
static int fake_described, fake_measured;

static int fake_available(char *why, size_t n)
{
    if (!fake_up)
        snprintf(why, n, "the fake GPU is switched off");
    return fake_up ? 0 : -1;
}

static int fake_compile_argv(const char *src, const char *out, const char *include_dir, char **argv, int max,
                             char *buf, size_t bufn)
{
    return lang_find("c")->compile_argv(src, out, include_dir, argv, max, buf, bufn);
}

static int fake_describe(json_t **device, char *err, size_t n)
{
    fake_described++;
    *device = json_pack("{ssssss}", "backend", "fakegpu", "name", "Fake GPU 9000", "key", "fakegpu:test");
    return 0;
}

static int fake_measure(const char *workdir, json_t **ceilings, char *err, size_t n)
{
    fake_measured++;
    *ceilings = json_pack("{s{sf}sf}", "peak_gflops", "f32", 1234.5, "bandwidth_gbs", 678.0);
    return 0;
}

static int fake_inspect(const char *so, const char *workdir, json_t **kernels, char *err, size_t n)
{
    *kernels = json_array();
    return 0;
}

static int fake_count(void)
{
    return 3;
}

static const char *const fake_langs[] = {"c", NULL};

static const backend_t backend_fake = {
    .name = "fakegpu",
    .src_ext = ".c",
    .kind = BACKEND_GPU,
    .device_words = "a fake test GPU",
    .runner_device = "cpu",
    .device_memory = 1,
    .visible_devices_env = "EMILE_TEST_FAKE_DEVICES",
    .count_devices = fake_count,
    .torch_device = "cpu",
    .langs = fake_langs,
    .caps = BACKEND_CAP_LAUNCHES,
    .no_counters_why = "the fake GPU has no counters",
    .warmup = 1,
    .timing_budget_s = 0.1,
    .min_reps = 3,
    .max_reps = 5,
    .available = fake_available,
    .compile_argv = fake_compile_argv,
    .describe = fake_describe,
    .measure_ceilings = fake_measure,
    .inspect = fake_inspect,
};

static char cache_dir[256];

static int setup(void **state)
{
    (void)state;
    /* Ceilings are cached under $XDG_CACHE_HOME/emile: a fresh one. */
    snprintf(cache_dir, sizeof cache_dir, "/tmp/emile-test-plug-XXXXXX");
    if (!mkdtemp(cache_dir))
        return -1;
    setenv("XDG_CACHE_HOME", cache_dir, 1);
    return backend_register(&backend_fake);
}

static int teardown(void **state)
{
    (void)state;
    fs_rm_rf(cache_dir);
    return 0;
}

/* ---- the registry ----------------------------------------------------- */

static void test_registry(void **state)
{
    (void)state;
    assert_ptr_equal(backend_find("fakegpu"), &backend_fake);
    assert_string_equal(backend_default()->name, "cpu");
    assert_non_null(strstr(backend_names(), "cpu, cuda, fakegpu"));
    int n = 0;
    for (const backend_t *const *b = backend_all(); *b; b++)
        n++;
    assert_int_equal(n, 3);
    assert_int_equal(backend_register(&backend_fake), -1);     /* once */
    assert_ptr_equal(lang_for("fakegpu", NULL, NULL, 0), lang_find("c"));
    char why[256] = "";
    assert_null(lang_for("fakegpu", "triton", why, sizeof why));
    assert_non_null(strstr(why, "the fakegpu backend builds c"));
}

/* ---- task validation -------------------------------------------------- */

static void test_task(void **state)
{
    (void)state;
    char err[512] = "";
    task_t t;
    task_init(&t);
    json_t *j = json_pack("{sssssss{si}}", "op", "attention", "backend", "fakegpu", "reference_source",
                          "/* ref */", "params", "seq", 64);
    assert_int_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    if (task_finalize(&t, err, sizeof err) != 0)
        fail_msg("a task on the fake backend is refused: %s", err);
    assert_string_equal(t.backend, "fakegpu");
    assert_string_equal(t.lang, "c");
    json_decref(j);
    task_free(&t);

    task_init(&t);
    j = json_pack("{ssssss}", "op", "attention", "backend", "tpu", "reference_source", "/* ref */");
    assert_int_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    assert_int_not_equal(task_finalize(&t, err, sizeof err), 0);
    assert_non_null(strstr(err, "unknown backend 'tpu' (cpu, cuda, fakegpu)"));
    json_decref(j);
    task_free(&t);
}

/* ---- emile devices NAME ---------------------------------------------- */

static void test_cli_devices(void **state)
{
    (void)state;
    /* No worker answers ("exit 3"): a known backend gets as far as asking
     * one (1); an unknown name is refused before (2). */
    char a0[] = "fakegpu", a1[] = "--worker", a2[] = "exit 3";
    char *known[] = {a0, a1, a2, NULL};
    assert_int_equal(cmd_devices(3, known), 1);
    char b0[] = "tpu";
    char *unknown[] = {b0, a1, a2, NULL};
    assert_int_equal(cmd_devices(3, unknown), 2);
}

/* ---- the worker's device listing -------------------------------------- */

static const json_t *listed(const json_t *reply, const char *key, const char *backend)
{
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(reply, key), i, d)
        if (strcmp(json_string_value(json_object_get(d, "backend")), backend) == 0)
            return d;
    return NULL;
}

static void test_worker_devices(void **state)
{
    (void)state;
    fake_up = 1;
    fake_described = fake_measured = 0;
    json_t *r = worker_devices(NULL, "fakegpu", 0);
    const json_t *d = listed(r, "devices", "fakegpu");
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "Fake GPU 9000");
    const json_t *ce = json_object_get(d, "ceilings");
    assert_float_equal(json_number_value(json_object_get(ce, "bandwidth_gbs")), 678.0, 1e-9);
    assert_float_equal(json_number_value(json_object_get(json_object_get(ce, "peak_gflops"), "f32")), 1234.5, 1e-9);
    assert_int_equal(json_array_size(json_object_get(r, "devices")), 1);   /* the one asked for */
    assert_int_equal(fake_described, 1);
    assert_int_equal(fake_measured, 1);
    json_decref(r);

    /* Cached now: described again, not measured. */
    r = worker_devices(NULL, "fakegpu", 0);
    assert_true(json_is_true(json_object_get(listed(r, "devices", "fakegpu"), "cached")));
    assert_int_equal(fake_measured, 1);
    json_decref(r);

    /* Switched off, it is unavailable with its own reason.  (Not asked
     * with every backend: that would measure the real ones' ceilings.) */
    fake_up = 0;
    r = worker_devices(NULL, "fakegpu", 0);
    const json_t *u = listed(r, "unavailable", "fakegpu");
    assert_non_null(u);
    assert_string_equal(json_string_value(json_object_get(u, "why")), "the fake GPU is switched off");
    assert_null(listed(r, "devices", "fakegpu"));
    json_decref(r);
    fake_up = 1;
}

/* ---- diagnosis --------------------------------------------------------- */

static int has_tag(const json_t *tags, const char *name)
{
    size_t i;
    const json_t *t;
    json_array_foreach(tags, i, t)
        if (strcmp(json_string_value(json_object_get(t, "tag")), name) == 0)
            return 1;
    return 0;
}

static void test_diagnosis(void **state)
{
    (void)state;
    json_t *dev = json_pack("{si}", "cores", 8);
    json_t *r = json_pack("{sssfsssfsfsfs[{sssfsf}]}", "backend", "fakegpu", "roofline_pct", 30.0, "bound", "memory",
                          "intensity", 0.5, "ridge", 10.0, "pct_bandwidth", 30.0, "kernels", "name", "fake_kernel",
                          "local", 64.0, "occupancy", 0.5);
    json_t *tags = profile_diagnose(r, dev, 2 /* EMILE_DTYPE_BF16 */);
    assert_true(has_tag(tags, "spills"));
    assert_true(has_tag(tags, "memory_bound_below_bandwidth"));
    assert_false(has_tag(tags, "memory_bound"));
    json_decref(tags);

    /* The same report on the host backend: the host's tag set. */
    json_object_set_new(r, "backend", json_string(backend_default()->name));
    tags = profile_diagnose(r, dev, 2);
    assert_false(has_tag(tags, "spills"));
    assert_true(has_tag(tags, "memory_bound"));
    assert_false(has_tag(tags, "memory_bound_below_bandwidth"));
    json_decref(tags);
    json_decref(r);
    json_decref(dev);
}

/* ---- a local pool's devices ------------------------------------------- */

static void test_pool_devices(void **state)
{
    (void)state;
    char dev[64];
    unsetenv("EMILE_TEST_FAKE_DEVICES");
    const char *count[] = {"0", "1", "2", "0"};        /* fake_count: 3 */
    for (int i = 0; i < 4; i++) {
        pool_local_device(&backend_fake, i, dev, sizeof dev);
        assert_string_equal(dev, count[i]);
    }
    setenv("EMILE_TEST_FAKE_DEVICES", "7,9", 1);
    const char *listed_ids[] = {"7", "9", "7"};
    for (int i = 0; i < 3; i++) {
        pool_local_device(&backend_fake, i, dev, sizeof dev);
        assert_string_equal(dev, listed_ids[i]);
    }
    unsetenv("EMILE_TEST_FAKE_DEVICES");
}

/* ---- the LLM agent's prompt ------------------------------------------- */

static void test_prompt(void **state)
{
    (void)state;
    char err[512] = "";
    task_t t;
    task_init(&t);
    json_t *j = json_pack("{ssssss}", "op", "attention", "backend", "fakegpu", "reference_source", "/* ref */");
    assert_int_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    assert_int_equal(task_finalize(&t, err, sizeof err), 0);
    agent_context_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.task = &t;
    char *p = llm_system_prompt(&ctx);
    assert_non_null(p);
    assert_non_null(strstr(p, "Backend fakegpu (kernels run on a fake test GPU)"));
    free(p);
    json_decref(j);
    task_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_task),
        cmocka_unit_test(test_cli_devices),
        cmocka_unit_test(test_worker_devices),
        cmocka_unit_test(test_diagnosis),
        cmocka_unit_test(test_pool_devices),
        cmocka_unit_test(test_prompt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
