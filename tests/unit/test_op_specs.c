/*
 * test_op_specs.c -- the hot ops of a Qwen3 step as tasks Emile can cook:
 * the op specs kernels/<op>/op.json (found by name: "op": "qkv_proj"), the
 * integer inputs drawn from a range (a position, a cache length), and each
 * op validated and profiled by the worker on the cpu at small shapes
 * (examples/qwen3_ops/<op>_cpu.json, shrunk):
 *
 *   - every spec parses, names itself, and its example task loads;
 *   - the reference and the builtin agent's first rung of each op are
 *     valid (kernels/gemv/cpu/v1_parallel.c for the five projections,
 *     kernels/decode_attention/cpu/v1_parallel.c);
 *   - kernels that are wrong in the way these ops invite are invalid
 *     (tests/data/ops/, tests/data/engine/lm_head_off_by_one.c): attention
 *     over the whole cache instead of kv_len, RoPE ignoring the position,
 *     gate and up swapped, an argmax one off (an integer output is exact);
 *   - ranges: parsed, checked, drawn inside their bounds.
 *
 * Run from the repository root with build/emile-runner built.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "agent/builtin/ladder.h"
#include "emile_test.h"
#include "task/task.h"
#include "util/fs.h"
#include "util/paths.h"
#include "worker/evaluate.h"

static const char *const OPS[] = { "decode_attention", "qkv_proj", "o_proj", "gate_up",
                                   "down_proj", "lm_head" };
#define N_OPS (sizeof OPS / sizeof OPS[0])

/* Small enough for a sanitized CI run. */
static const char *const SMALL[N_OPS] = {
    "seq=384", "hidden=256,rope_rows=256", "q_dim=256", "hidden=256,inter=384",
    "hidden=256,inter=384", "hidden=128,vocab=2048",
};

static struct {
    worker_ctx_t *w;
    json_t *options;
    json_t *reply;
    char tmp[512];
} G;

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

/* examples/qwen3_ops/OP_cpu.json with overrides "k=v,...", finalised. */
static json_t *op_task(size_t i, const char *overrides, task_t *t)
{
    char path[256], err[1024];
    snprintf(path, sizeof path, "examples/qwen3_ops/%s_cpu.json", OPS[i]);
    task_init(t);
    if (task_load_file(t, path, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", overrides ? overrides : "");
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = 0;
        if (task_set(t, kv, eq + 1, err, sizeof err) != 0)
            fail_msg("%s: override %s: %s", OPS[i], kv, err);
    }
    t->time_limit_s = 30;
    t->memory_limit_mb = 1024;
    if (task_finalize(t, err, sizeof err) != 0)
        fail_msg("%s: finalize: %s", OPS[i], err);
    return task_to_json(t);
}

/* The held-back run is timed once: on a loaded machine a preemption can
 * make it look like a cache (seen here at load 10 on 2 cores).  These
 * tests are about the numbers, so that verdict alone is retried, twice. */
static json_t *evaluate(const json_t *task, const char *source)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        json_decref(G.reply);
        G.reply = worker_evaluate(G.w, task, source, G.options);
        assert_non_null(G.reply);
        assert_true(json_is_true(json_object_get(G.reply, "ok")));
        const char *e = json_string_value(json_object_get(G.reply, "error"));
        if (!e || !strstr(e, "fast only on inputs it has seen"))
            break;
        print_message("timing noise, again: %s\n", e);
    }
    return G.reply;
}

static json_t *evaluate_file(const json_t *task, const char *path)
{
    char *src = test_read_file(path);
    if (!src)
        fail_msg("cannot read %s", path);
    json_t *r = evaluate(task, src);
    free(src);
    return r;
}

static void assert_valid(const json_t *r, const char *what)
{
    if (strcmp(status_of(r), "valid") != 0)
        fail_msg("%s: %s: %s", what, status_of(r), error_of(r));
    const json_t *rep = json_object_get(r, "report");
    assert_true(json_number_value(json_object_get(rep, "bytes")) > 0);
    assert_true(json_number_value(json_object_get(rep, "gflops")) > 0);
}

static void assert_invalid(const json_t *r, const char *what, const char *needle)
{
    if (strcmp(status_of(r), "invalid") != 0)
        fail_msg("%s: expected invalid, got %s (%s)", what, status_of(r), error_of(r));
    assert_contains(error_of(r), needle);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_specs_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_OPS; i++) {
        task_t t;
        json_t *j = op_task(i, NULL, &t);
        assert_string_equal(t.op.name, OPS[i]);
        assert_false(t.op.builtin);
        assert_true(op_flops(&t.op, &t.params) > 0);
        /* the canonical task carries the spec whole (the worker needs no file) */
        assert_true(json_is_object(json_object_get(j, "op")));
        task_t back;
        char err[512];
        task_init(&back);
        if (task_from_json(&back, j, ".", err, sizeof err) != 0)
            fail_msg("%s: round trip: %s", OPS[i], err);
        assert_int_equal(back.op.n_tensors, t.op.n_tensors);
        task_free(&back);
        json_decref(j);
        task_free(&t);
    }
    /* the decode attention's kv_len: an i32 input drawn in [seq - seq/16, seq] */
    task_t t;
    json_t *j = op_task(0, "seq=1024", &t);
    int k = 3;
    assert_string_equal(t.op.tensors[k].name, "kv_len");
    int64_t lo, hi;
    char err[256];
    assert_int_equal(op_tensor_int_range(&t.op, k, &t.params, &lo, &hi, err, sizeof err), 1);
    assert_int_equal(lo, 1024 - 64);
    assert_int_equal(hi, 1024);
    assert_int_equal(op_tensor_int_range(&t.op, 0, &t.params, &lo, &hi, err, sizeof err), 0);
    json_decref(j);
    task_free(&t);

    /* an unknown name is still an unknown op; a name is never a path */
    task_init(&t);
    assert_int_equal(task_set(&t, "op", "no_such_op", err, sizeof err), -1);
    assert_contains(err, "unknown op 'no_such_op'");
    assert_int_equal(task_set(&t, "op", "../qkv_proj", err, sizeof err), -1);
    assert_contains(err, "unknown op");
    task_free(&t);
}

static void test_ranges_checked(void **state)
{
    (void)state;
    const char *bad[] = {
        /* a range on a float tensor, on an output, of the wrong arity */
        "{\"name\":\"r\",\"params\":{\"n\":4},\"tensors\":[{\"name\":\"p\",\"shape\":[1],"
        "\"range\":[0,3]},{\"name\":\"y\",\"shape\":[\"n\"],\"output\":true}],\"flops\":\"n\"}",
        "{\"name\":\"r\",\"params\":{\"n\":4},\"tensors\":[{\"name\":\"x\",\"shape\":[1]},"
        "{\"name\":\"y\",\"shape\":[\"n\"],\"dtype\":\"i32\",\"output\":true,\"range\":[0,3]}],"
        "\"flops\":\"n\"}",
        "{\"name\":\"r\",\"params\":{\"n\":4},\"tensors\":[{\"name\":\"p\",\"shape\":[1],"
        "\"dtype\":\"i32\",\"range\":[0]},{\"name\":\"y\",\"shape\":[\"n\"],\"output\":true}],"
        "\"flops\":\"n\"}",
    };
    op_t op;
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        assert_int_equal(op_from_json(j, &op, err, sizeof err), -1);
        assert_contains(err, "range");
        json_decref(j);
    }
    /* an empty range is an error of the parameters, named */
    json_t *j = json_loads("{\"name\":\"r\",\"params\":{\"n\":4},\"tensors\":[{\"name\":\"p\","
                           "\"shape\":[1],\"dtype\":\"i32\",\"range\":[\"n\",\"n-2\"]},{\"name\":"
                           "\"y\",\"shape\":[\"n\"],\"output\":true}],\"flops\":\"n\"}", 0, NULL);
    assert_int_equal(op_from_json(j, &op, err, sizeof err), 0);
    assert_int_equal(op_check_params(&op, &op.defaults, EMILE_DTYPE_F32, err, sizeof err), -1);
    assert_contains(err, "empty range");
    /* and it survives a copy and the JSON the worker gets */
    op_t cp;
    op_copy(&op, &cp);
    json_t *back = op_to_json(&cp);
    assert_string_equal(json_string_value(json_array_get(json_object_get(
        json_array_get(json_object_get(back, "tensors"), 0), "range"), 1)), "n-2");
    json_decref(back);
    op_free(&cp);
    op_free(&op);
    json_decref(j);
}

static void test_references_and_first_rungs_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_OPS; i++) {
        task_t t;
        json_t *task = op_task(i, SMALL[i], &t);
        char *ref = strdup(t.reference_source);
        task_free(&t);
        json_t *r = evaluate(task, ref);
        free(ref);
        char what[128];
        snprintf(what, sizeof what, "%s reference", OPS[i]);
        assert_valid(r, what);
        const char *rung = i == 0 ? "kernels/decode_attention/cpu/v1_parallel.c"
                                  : "kernels/gemv/cpu/v1_parallel.c";
        r = evaluate_file(task, rung);
        snprintf(what, sizeof what, "%s %s", OPS[i], rung);
        assert_valid(r, what);
        json_decref(task);
    }
}

static void test_wrong_kernels_invalid(void **state)
{
    (void)state;
    static const struct { size_t op; const char *file, *why; } wrong[] = {
        { 0, "tests/data/ops/decode_attention_ignores_len.c", "off by" },
        { 1, "tests/data/ops/qkv_proj_ignores_pos.c", "off by" },
        { 3, "tests/data/ops/gate_up_swapped.c", "off by" },
        { 5, "tests/data/engine/lm_head_off_by_one.c", "idx off by" },
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        task_t t;
        json_t *task = op_task(wrong[i].op, SMALL[wrong[i].op], &t);
        task_free(&t);
        json_t *r = evaluate_file(task, wrong[i].file);
        assert_invalid(r, wrong[i].file, wrong[i].why);
        json_decref(task);
    }
}

/* The builtin agent's ladders for every op on both backends load, and each
 * rung renders to a kernel source (the GEMV family's rungs are shared files
 * under kernels/gemv/). */
static void test_ladders_render(void **state)
{
    (void)state;
    const char *backends[] = { "cpu", "cuda" };
    for (size_t i = 0; i < N_OPS; i++)
        for (size_t b = 0; b < 2; b++) {
            ladder_t l;
            char err[512];
            if (ladder_load(&l, OPS[i], backends[b], err, sizeof err) != 0)
                fail_msg("%s/%s: %s", OPS[i], backends[b], err);
            size_t k;
            json_t *rung;
            json_array_foreach(l.rungs, k, rung) {
                json_t *d = ladder_defaults(rung);
                char *src = ladder_render(&l, rung, d, err, sizeof err);
                if (!src)
                    fail_msg("%s/%s rung %zu: %s", OPS[i], backends[b], k, err);
                assert_contains(src, "emile_kernel");
                assert_true(json_object_size(d) > 0);
                free(src);
                json_decref(d);
            }
            assert_true(json_array_size(l.rungs) >= (b == 0 ? 1u : 2u));
            ladder_free(&l);
        }
}

/* ---- setup ------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    snprintf(G.tmp, sizeof G.tmp, "/tmp/emile-test-ops-XXXXXX");
    if (!mkdtemp(G.tmp) || chmod(G.tmp, 0711) != 0)
        return -1;
    setenv("TMPDIR", G.tmp, 1);
    char cache[sizeof G.tmp + 16];
    snprintf(cache, sizeof cache, "%s/cache", G.tmp);
    setenv("XDG_CACHE_HOME", cache, 1);
    if (strncmp(emile_cache_dir(), cache, strlen(cache)) != 0) {
        fprintf(stderr, "the ceilings cache is %s, not under %s\n", emile_cache_dir(), cache);
        return -1;
    }
    if (test_private_runner(G.tmp) != 0)
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
        cmocka_unit_test(test_specs_parse),
        cmocka_unit_test(test_ranges_checked),
        cmocka_unit_test(test_ladders_render),
        cmocka_unit_test(test_references_and_first_rungs_valid),
        cmocka_unit_test(test_wrong_kernels_invalid),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
