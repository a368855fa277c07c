/*
 * test_rmsnorm_custom.c -- a user-defined op end to end: RMSNorm described
 * in JSON (examples/rmsnorm_cpu.json: tensors x [rows, cols], w [cols],
 * y [rows, cols]; flops 4*rows*cols; vary rows), validated and profiled by
 * the worker exactly like a builtin op.
 *
 *   - the reference and kernels/rmsnorm/cpu/v1_parallel.c are valid, and the
 *     report counts 4*rows*cols FLOPs and the op's byte model;
 *   - the same op defined inline in the test (rows 512, cols 256, eps 1e-6)
 *     behaves the same;
 *   - wrong kernels written here are invalid: one forgets the weight, one
 *     forgets eps (at eps = 0.5, where that matters: at 1e-6 it changes
 *     the output by ~5e-7, inside the f32 tolerance), one skips the last
 *     row (caught by the NaN poison).
 *
 * Run from the repository root with build/emile-runner built (a private
 * copy of it is used).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "agent/agent.h"
#include "emile_test.h"
#include "task/task.h"
#include "util/fs.h"
#include "util/paths.h"
#include "worker/evaluate.h"

#define EXAMPLE "examples/rmsnorm_cpu.json"

static struct {
    worker_ctx_t *w;
    json_t *options;
    json_t *reply;
    char tmp[512];
} G;

/* ---- kernels written here ------------------------------------------------------- */

#define KERNEL_HEAD                                                                       \
    "#include <math.h>\n"                                                                 \
    "#include \"emile.h\"\n"                                                              \
    "EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)\n"                    \
    "{\n"                                                                                 \
    "    const emile_tensor_t *tx = emile_tensor(args, \"x\"), *tw = emile_tensor(args, \"w\");\n" \
    "    const emile_tensor_t *ty = emile_tensor(args, \"y\");\n"                         \
    "    if (!tx || !tw || !ty || tx->dtype != EMILE_DTYPE_F32) return 1;\n"              \
    "    const long rows = (long)tx->shape[0], cols = (long)tx->shape[1];\n"              \
    "    const float eps = (float)emile_param(args, \"eps\", 1e-6);\n"                    \
    "    const float *x = tx->data, *w = tw->data; float *y = ty->data;\n"

/* Correct except for the weight. */
static const char *NO_WEIGHT = KERNEL_HEAD
    "    for (long r = 0; r < rows; r++) {\n"
    "        float ss = 0; for (long c = 0; c < cols; c++) ss += x[r*cols+c] * x[r*cols+c];\n"
    "        float inv = 1.0f / sqrtf(ss / cols + eps);\n"
    "        for (long c = 0; c < cols; c++) y[r*cols+c] = x[r*cols+c] * inv;\n"
    "    }\n"
    "    (void)w; return 0;\n}\n";

/* Correct except for eps. */
static const char *NO_EPS = KERNEL_HEAD
    "    for (long r = 0; r < rows; r++) {\n"
    "        float ss = 0; for (long c = 0; c < cols; c++) ss += x[r*cols+c] * x[r*cols+c];\n"
    "        float inv = 1.0f / sqrtf(ss / cols);\n"
    "        for (long c = 0; c < cols; c++) y[r*cols+c] = x[r*cols+c] * inv * w[c];\n"
    "    }\n"
    "    (void)eps; return 0;\n}\n";

/* Correct, but the last row is never written. */
static const char *SKIPS_LAST_ROW = KERNEL_HEAD
    "    for (long r = 0; r + 1 < rows; r++) {\n"
    "        float ss = 0; for (long c = 0; c < cols; c++) ss += x[r*cols+c] * x[r*cols+c];\n"
    "        float inv = 1.0f / sqrtf(ss / cols + eps);\n"
    "        for (long c = 0; c < cols; c++) y[r*cols+c] = x[r*cols+c] * inv * w[c];\n"
    "    }\n"
    "    return 0;\n}\n";

/* The same as the reference, written here: the control for the above. */
static const char *CONTROL = KERNEL_HEAD
    "    for (long r = 0; r < rows; r++) {\n"
    "        float ss = 0; for (long c = 0; c < cols; c++) ss += x[r*cols+c] * x[r*cols+c];\n"
    "        float inv = 1.0f / sqrtf(ss / cols + eps);\n"
    "        for (long c = 0; c < cols; c++) y[r*cols+c] = x[r*cols+c] * inv * w[c];\n"
    "    }\n"
    "    return 0;\n}\n";

/* ---- helpers ----------------------------------------------------------------------- */

static const char *status_of(const json_t *r)
{
    const char *s = json_string_value(json_object_get(r, "status"));
    return s ? s : "(none)";
}

static const char *error_of(const json_t *r)
{
    const char *s = json_string_value(json_object_get(r, "error"));
    return s ? s : "";
}

/* Load the example (or the inline definition), apply overrides
 * ("key=value,..."), finalise, and return the canonical JSON. */
static json_t *example_task(const char *overrides, task_t *t)
{
    char err[1024];
    task_init(t);
    if (task_load_file(t, EXAMPLE, err, sizeof err) != 0)
        fail_msg("%s: %s", EXAMPLE, err);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", overrides ? overrides : "");
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = 0;
        if (task_set(t, kv, eq + 1, err, sizeof err) != 0)
            fail_msg("override %s: %s", kv, err);
    }
    t->time_limit_s = 20;
    t->memory_limit_mb = 1024;
    if (task_finalize(t, err, sizeof err) != 0)
        fail_msg("finalize: %s", err);
    return task_to_json(t);
}

static const char *INLINE_TASK =
    "{\"name\": \"inline rmsnorm\","
    " \"op\": {\"name\": \"rmsnorm\","
    "          \"params\": {\"rows\": 512, \"cols\": 256, \"eps\": 1e-6},"
    "          \"tensors\": [{\"name\": \"x\", \"shape\": [\"rows\", \"cols\"]},"
    "                        {\"name\": \"w\", \"shape\": [\"cols\"]},"
    "                        {\"name\": \"y\", \"shape\": [\"rows\", \"cols\"], \"output\": true}],"
    "          \"flops\": \"4*rows*cols\","
    "          \"vary\": [\"rows\"]},"
    " \"dtype\": \"f32\", \"backend\": \"cpu\", \"reference\": \"kernels/rmsnorm/cpu/reference.c\","
    " \"time_limit_s\": 20, \"memory_limit_mb\": 1024}";

static json_t *inline_task(task_t *t)
{
    char err[1024];
    json_t *j = json_loads(INLINE_TASK, 0, NULL);
    assert_non_null(j);
    task_init(t);
    /* base_dir "." resolves the reference from the repository root. */
    if (task_from_json(t, j, ".", err, sizeof err) != 0 || task_finalize(t, err, sizeof err) != 0)
        fail_msg("inline task: %s", err);
    json_decref(j);
    return task_to_json(t);
}

static json_t *evaluate(const json_t *task, const char *source)
{
    json_decref(G.reply);
    G.reply = worker_evaluate(G.w, task, source, G.options);
    assert_non_null(G.reply);
    assert_true(json_is_true(json_object_get(G.reply, "ok")));
    return G.reply;
}

static char *read_kernel(const char *path)
{
    char *s = test_read_file(path);
    if (!s)
        fail_msg("cannot read %s", path);
    return s;
}

static void assert_valid(const json_t *r, const char *what, double rows, double cols)
{
    if (strcmp(status_of(r), "valid") != 0)
        fail_msg("%s: %s: %s", what, status_of(r), error_of(r));
    const json_t *rep = json_object_get(r, "report");
    assert_true(json_is_object(rep));
    assert_near(json_number_value(json_object_get(rep, "flops")), 4 * rows * cols, 0);
    assert_near(json_number_value(json_object_get(rep, "bytes")), 4 * (2 * rows * cols + cols), 0);
    assert_true(json_number_value(json_object_get(rep, "gflops")) > 0);
    /* Three sizes checked plus the repeat: the task's, a ragged and a small
     * number of rows, all with the task's cols. */
    const json_t *checks = json_object_get(json_object_get(r, "validation"), "checks");
    assert_true(json_array_size(checks) >= 4);
    double seen_rows[3] = {0};
    for (size_t i = 0; i < 3; i++) {
        const json_t *c = json_array_get(checks, i);
        assert_true(json_is_true(json_object_get(c, "ok")));
        assert_string_equal(json_string_value(json_object_get(c, "output")), "y");
        const json_t *p = json_object_get(c, "params");
        seen_rows[i] = json_number_value(json_object_get(p, "rows"));
        assert_near(json_number_value(json_object_get(p, "cols")), cols, 0);
    }
    assert_near(seen_rows[0], rows, 0);
    assert_true(seen_rows[1] != rows && seen_rows[1] > 0);      /* ragged */
    assert_true(seen_rows[2] != rows && seen_rows[2] > 0);      /* small */
    /* A user op has no float64 oracle: the reference is the oracle, said so. */
    const json_t *oracle = json_object_get(r, "oracle");
    assert_true(json_is_false(json_object_get(oracle, "checked")));
}

static void assert_invalid(const json_t *r, const char *what, const char *needle)
{
    if (strcmp(status_of(r), "invalid") != 0)
        fail_msg("%s: expected invalid, got %s (%s)", what, status_of(r), error_of(r));
    assert_true(strlen(error_of(r)) > 0);
    if (needle)
        assert_contains(error_of(r), needle);
    assert_null(json_object_get(r, "report"));
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_example_parses(void **state)
{
    (void)state;
    task_t t;
    json_t *j = example_task(NULL, &t);
    assert_string_equal(t.op.name, "rmsnorm");
    assert_false(t.op.builtin);
    assert_int_equal(t.op.n_tensors, 3);
    assert_true(t.op.tensors[2].is_output);
    assert_near(op_flops(&t.op, &t.params), 4.0 * 4096 * 1024, 0);
    assert_near(op_bytes(&t.op, &t.params, EMILE_DTYPE_F32), 4.0 * (2 * 4096 * 1024 + 1024), 0);
    assert_near(op_tolerance(&t.op, EMILE_DTYPE_F32), 1e-5, 0);
    assert_contains(t.reference_source, "RMSNorm");
    json_decref(j);
    task_free(&t);
}

static void test_example_reference_and_v1_valid(void **state)
{
    (void)state;
    task_t t;
    json_t *task = example_task(NULL, &t);
    char *ref = strdup(t.reference_source);
    task_free(&t);
    json_t *r = evaluate(task, ref);
    free(ref);
    print_message("reference: %s, %.3f ms\n", status_of(r),
                  json_number_value(json_object_get(json_object_get(json_object_get(r, "report"), "time_ms"),
                                                    "median")));
    assert_valid(r, "the reference against itself", 4096, 1024);

    char *v1 = read_kernel("kernels/rmsnorm/cpu/v1_parallel.c");
    r = evaluate(task, v1);
    free(v1);
    print_message("v1_parallel: %s, %.3f ms\n", status_of(r),
                  json_number_value(json_object_get(json_object_get(json_object_get(r, "report"), "time_ms"),
                                                    "median")));
    assert_valid(r, "v1_parallel.c", 4096, 1024);
    json_decref(task);
}

/* The example is a cook to run, not only a reference to profile: it has
 * an iteration budget, and the builtin agent has work for all of it on
 * kernels/rmsnorm/cpu/ (the ladder's v1_parallel, then its parameters).
 * The loop is simulated: each proposal is recorded as a valid, slightly
 * faster, memory-bound iteration, as the profile would tag it. */
static void test_example_budget_has_agent_work(void **state)
{
    (void)state;
    task_t t;
    json_t *tj = example_task(NULL, &t);
    if (t.max_iters < 4)
        fail_msg("%s: max_iters %d: the cook would stop after the reference", EXAMPLE,
                 t.max_iters);
    const agent_ops_t *ops = agent_find("builtin");
    assert_non_null(ops);
    agent_t *a = NULL;
    char err[512] = "";
    if (ops->create(NULL, &t, &a, err, sizeof err) != 0)
        fail_msg("builtin agent for rmsnorm/cpu: %s", err);
    json_t *device = json_pack("{s:s, s:s}", "backend", "cpu", "name", "test cpu");
    json_t *history = json_array();
    json_array_append_new(history, json_pack(
        "{s:i, s:s, s:s, s:{}, s:f, s:f, s:{s:f, s:f, s:[{s:s, s:s}, {s:s, s:s}]}}", "iter", 0,
        "label", "reference", "status", "valid", "params", "time_ms", 20.0, "gflops", 0.8,
        "report", "gflops", 0.8, "roofline_pct", 22.0, "diagnosis", "tag", "single_threaded",
        "detail", "1 of 2 cores", "tag", "scalar_code", "detail", "no vector loads"));
    for (int i = 1; i <= t.max_iters; i++) {
        agent_context_t ctx = {.task = &t, .task_json = tj, .device = device,
                               .history = history, .next_iter = i, .best_iter = i - 1};
        agent_proposal_t prop;
        int rc = ops->propose(a, &ctx, &prop, err, sizeof err);
        if (rc != AGENT_OK)
            fail_msg("iteration %d of %d: the builtin agent has nothing to propose (%d: %s)", i,
                     t.max_iters, rc, err);
        const char *rung = json_string_value(json_object_get(prop.params, "rung"));
        assert_non_null(rung);
        if (i == 1)
            assert_string_equal(rung, "v1_parallel");
        assert_contains(prop.source, "emile_kernel");
        double ms = 8.0 - 0.1 * i;
        json_t *params = json_deep_copy(prop.params);
        json_array_append_new(history, json_pack(
            "{s:i, s:s, s:s, s:o, s:f, s:f, s:{s:f, s:f, s:[{s:s, s:s}]}}", "iter", i, "label",
            prop.label, "status", "valid", "params", params, "time_ms", ms, "gflops", 16.8 / ms,
            "report", "gflops", 16.8 / ms, "roofline_pct", 60.0, "diagnosis", "tag",
            "memory_bound", "detail", "at the copy bandwidth"));
        agent_proposal_free(&prop);
    }
    ops->destroy(a);
    json_decref(history);
    json_decref(device);
    json_decref(tj);
    task_free(&t);
}

static void test_inline_definition(void **state)
{
    (void)state;
    task_t t;
    json_t *task = inline_task(&t);
    assert_near(op_flops(&t.op, &t.params), 4.0 * 512 * 256, 0);
    char *ref = strdup(t.reference_source);
    task_free(&t);
    json_t *r = evaluate(task, ref);
    free(ref);
    assert_valid(r, "reference (inline op)", 512, 256);
    char *v1 = read_kernel("kernels/rmsnorm/cpu/v1_parallel.c");
    r = evaluate(task, v1);
    free(v1);
    assert_valid(r, "v1_parallel.c (inline op)", 512, 256);
    r = evaluate(task, CONTROL);
    assert_valid(r, "the control written here", 512, 256);
    r = evaluate(task, NO_WEIGHT);
    assert_invalid(r, "forgets the weight", "off by");
    json_decref(task);
}

static void test_wrong_kernels_invalid(void **state)
{
    (void)state;
    task_t t;
    json_t *task = example_task(NULL, &t);
    task_free(&t);
    json_t *r = evaluate(task, CONTROL);
    assert_valid(r, "the control written here", 4096, 1024);
    r = evaluate(task, NO_WEIGHT);
    assert_invalid(r, "forgets the weight", "off by");
    r = evaluate(task, SKIPS_LAST_ROW);
    assert_invalid(r, "skips the last row", "NaN/Inf or unwritten");
    json_decref(task);

    /* Forgetting eps only shows when eps matters next to mean(x^2) ~ 1. */
    task = example_task("eps=0.5", &t);
    assert_near(op_param_get(&t.params, "eps", 0), 0.5, 0);
    task_free(&t);
    r = evaluate(task, CONTROL);
    assert_valid(r, "the control at eps 0.5", 4096, 1024);
    r = evaluate(task, NO_EPS);
    assert_invalid(r, "forgets eps", "off by");
    json_decref(task);
}

/* ---- setup ------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (!fs_exists(EXAMPLE)) {
        fprintf(stderr, EXAMPLE " is missing (run from the repository root)\n");
        return -1;
    }
    snprintf(G.tmp, sizeof G.tmp, "/tmp/emile-test-rms-XXXXXX");
    if (!mkdtemp(G.tmp) || chmod(G.tmp, 0711) != 0)
        return -1;
    setenv("TMPDIR", G.tmp, 1);
    /* A private ceilings cache too: worker_evaluate measures the device
     * (backend_device) and reads/writes $XDG_CACHE_HOME/emile, which must
     * not be the user's ~/.cache/emile (a stale or foreign cache there would
     * change what we test, and we must not write to it).  emile_cache_dir()
     * remembers the first answer, so check it is ours before any call. */
    char cache[sizeof G.tmp + 16];
    snprintf(cache, sizeof cache, "%s/cache", G.tmp);
    setenv("XDG_CACHE_HOME", cache, 1);
    if (strncmp(emile_cache_dir(), cache, strlen(cache)) != 0) {
        fprintf(stderr, "the ceilings cache is %s, not under %s\n", emile_cache_dir(), cache);
        return -1;
    }
    if (test_private_runner(G.tmp) != 0)      /* immune to a rebuild of build/ */
        return -1;
    G.options = json_pack("{s:i}", "reps", 5);
    char err[512];
    G.w = worker_ctx_new(err, sizeof err);
    if (!G.w) {
        fprintf(stderr, "worker_ctx_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(G.reply);
    worker_ctx_free(G.w);
    json_decref(G.options);
    fs_rm_rf(G.tmp);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_parses),
        cmocka_unit_test(test_example_reference_and_v1_valid),
        cmocka_unit_test(test_example_budget_has_agent_work),
        cmocka_unit_test(test_inline_definition),
        cmocka_unit_test(test_wrong_kernels_invalid),
    };
    return cmocka_run_group_tests_name("rmsnorm, a user-defined op", tests, group_setup, group_teardown);
}
