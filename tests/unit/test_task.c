/*
 * test_task.c -- the task spec and the op registry (src/task/): loading from
 * JSON and files, defaults, derived parameters, CLI overrides, canonical JSON
 * round trips, the refusal of every bad input with a message that names the
 * problem, user-defined ops (an RMSNorm described in JSON), tolerances and
 * the attention FLOP/byte model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "emile_test.h"
#include "task/op.h"
#include "task/task.h"
#include "util/fs.h"

#define REF_SRC "/* a reference */\nint emile_kernel(void) { return 0; }\n"

/* ---- helpers ---------------------------------------------------------- */

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("bad JSON in the test itself: %s (line %d): %s", je.text, je.line, text);
    return j;
}

/* task_from_json + task_finalize on text; returns the rc of the first step
 * that failed (0 when both passed) and leaves the message in err. */
static int load_text(task_t *t, const char *text, char *err, size_t n)
{
    json_t *j = parse(text);
    task_init(t);
    err[0] = 0;
    int rc = task_from_json(t, j, NULL, err, n);
    json_decref(j);
    if (rc == 0)
        rc = task_finalize(t, err, n);
    return rc;
}

/* The text must be refused (by from_json or finalize) with every needle in
 * the message. */
static void refused(const char *text, const char *needle1, const char *needle2)
{
    task_t t;
    char err[1024];
    int rc = load_text(&t, text, err, sizeof err);
    task_free(&t);      /* before any failure: a failing test leaks nothing */
    if (rc == 0)
        fail_msg("accepted: %s\n(expected a message with \"%s\")", text, needle1);
    assert_int_equal(rc, -1);
    if (needle1 && !strstr(err, needle1))
        fail_msg("task %s\nmessage \"%s\" lacks \"%s\"", text, err, needle1);
    if (needle2 && !strstr(err, needle2))
        fail_msg("task %s\nmessage \"%s\" lacks \"%s\"", text, err, needle2);
}

static void accepted(const char *text, task_t *t)
{
    char err[1024];
    if (load_text(t, text, err, sizeof err) != 0)
        fail_msg("refused: %s\nmessage: %s", text, err);
}

static double param(const task_t *t, const char *name)
{
    return op_param_get(&t->params, name, NAN);
}

typedef struct {
    char dir[512];
} tmpdir_t;

static void tmp_make(tmpdir_t *d)
{
    assert_int_equal(fs_mkdtemp("emile-test-task-", d->dir, sizeof d->dir), 0);
}

static void tmp_write(const tmpdir_t *d, const char *name, const char *text, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", d->dir, name);
    assert_int_equal(fs_write_file(path, text, strlen(text)), 0);
}

/* The user-defined RMSNorm of the README, in full. */
static const char *RMSNORM_OP =
    "{\"name\": \"rmsnorm\", \"description\": \"y = x / rms(x) * w\","
    " \"params\": {\"rows\": 512, \"cols\": 256, \"eps\": 1e-6},"
    " \"tensors\": [{\"name\": \"x\", \"shape\": [\"rows\", \"cols\"]},"
    "               {\"name\": \"w\", \"shape\": [\"cols\"], \"init_std\": 0.5},"
    "               {\"name\": \"y\", \"shape\": [\"rows\", \"cols\"], \"output\": true}],"
    " \"flops\": \"4*rows*cols\","
    " \"bytes\": \"elem*(2*rows*cols + cols)\","
    " \"tolerance\": {\"f32\": 2e-5, \"bf16\": 0.05},"
    " \"vary\": [\"rows\"]}";

typedef struct {
    char s[8192];
} text_t;

static text_t rmsnorm_task(const char *op_text, const char *extra)
{
    text_t t;
    snprintf(t.s, sizeof t.s, "{\"op\": %s, \"reference_source\": \"int x;\"%s%s}", op_text, extra ? ", " : "",
             extra ? extra : "");
    return t;
}

/* ---- defaults and derived parameters ---------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    task_t t;
    task_init(&t);
    assert_int_equal(t.dtype, EMILE_DTYPE_F32);
    assert_string_equal(t.backend, "cpu");
    assert_string_equal(t.agent, "builtin");
    assert_near(t.target_pct, 50, 0);
    assert_int_equal(t.max_iters, 8);
    assert_near(t.time_limit_s, 60, 0);
    assert_near(t.compile_limit_s, 120, 0);
    assert_near(t.memory_limit_mb, 4096, 0);
    assert_near(t.tolerance, 0, 0);
    assert_null(t.reference_source);
    task_free(&t);

    /* A minimal attention task gets the op's defaults. */
    accepted("{\"op\": \"attention\", \"reference_source\": \"int x;\"}", &t);
    assert_string_equal(t.op.name, "attention");
    assert_true(t.op.builtin);
    assert_near(param(&t, "batch"), 1, 0);
    assert_near(param(&t, "seq"), 512, 0);
    assert_near(param(&t, "q_heads"), 8, 0);
    assert_near(param(&t, "kv_heads"), 2, 0);
    assert_near(param(&t, "head_dim"), 64, 0);
    assert_near(param(&t, "causal"), 1, 0);
    assert_string_equal(t.reference_lang, "c");
    assert_string_equal(t.reference_source, "int x;");
    task_free(&t);
}

static void test_scale_derived(void **state)
{
    (void)state;
    task_t t;
    accepted("{\"op\": \"attention\", \"reference_source\": \"x\"}", &t);
    assert_near(param(&t, "scale"), 0.125, 1e-15);
    task_free(&t);
    accepted("{\"op\": \"attention\", \"params\": {\"head_dim\": 128}, \"reference_source\": \"x\"}", &t);
    assert_near(param(&t, "scale"), 1.0 / sqrt(128.0), 1e-15);
    task_free(&t);
    accepted("{\"op\": \"attention\", \"params\": {\"head_dim\": 80}, \"reference_source\": \"x\"}", &t);
    assert_near(param(&t, "scale"), 1.0 / sqrt(80.0), 1e-15);
    task_free(&t);
    /* An explicit scale is kept. */
    accepted("{\"op\": \"attention\", \"params\": {\"scale\": 0.5}, \"reference_source\": \"x\"}", &t);
    assert_near(param(&t, "scale"), 0.5, 0);
    task_free(&t);
}

/* A scale the user gives is never replaced silently: a non-positive one is
 * refused by the op's check ("scale must be positive"), not overwritten by
 * the derived 1/sqrt(head_dim). */
static void test_explicit_bad_scale_refused(void **state)
{
    (void)state;
    refused("{\"op\": \"attention\", \"params\": {\"scale\": -1}, \"reference_source\": \"x\"}",
            "scale must be positive", NULL);
}

/* ---- round trips -------------------------------------------------------- */

static void assert_tasks_equal(const task_t *a, const task_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->op.name, b->op.name);
    assert_int_equal(a->op.builtin, b->op.builtin);
    assert_int_equal(a->op.n_tensors, b->op.n_tensors);
    assert_int_equal(a->params.n, b->params.n);
    for (int i = 0; i < a->params.n; i++)
        assert_near(op_param_get(&b->params, a->params.names[i], NAN), a->params.values[i], 0);
    assert_int_equal(a->dtype, b->dtype);
    assert_string_equal(a->backend, b->backend);
    assert_string_equal(a->reference_source, b->reference_source);
    assert_string_equal(a->reference_lang, b->reference_lang);
    assert_string_equal(a->reference_path, b->reference_path);
    assert_near(a->target_pct, b->target_pct, 0);
    assert_int_equal(a->max_iters, b->max_iters);
    assert_string_equal(a->agent, b->agent);
    assert_true(json_equal(a->agent_config, b->agent_config) || (!a->agent_config && !b->agent_config));
    assert_near(a->tolerance, b->tolerance, 0);
    assert_near(a->time_limit_s, b->time_limit_s, 0);
    assert_near(a->compile_limit_s, b->compile_limit_s, 0);
    assert_near(a->memory_limit_mb, b->memory_limit_mb, 0);
    assert_true(a->seed == b->seed);
}

static void round_trip(const char *text)
{
    task_t a, b;
    accepted(text, &a);
    json_t *ja = task_to_json(&a);
    assert_non_null(ja);
    char err[512];
    task_init(&b);
    if (task_from_json(&b, ja, NULL, err, sizeof err) != 0 || task_finalize(&b, err, sizeof err) != 0)
        fail_msg("the canonical JSON of a task does not load back: %s", err);
    assert_tasks_equal(&a, &b);
    json_t *jb = task_to_json(&b);
    if (!json_equal(ja, jb)) {
        char *sa = json_dumps(ja, JSON_SORT_KEYS), *sb = json_dumps(jb, JSON_SORT_KEYS);
        fail_msg("to_json -> from_json -> to_json differs:\n%s\n%s", sa, sb);
    }
    json_decref(ja);
    json_decref(jb);
    task_free(&a);
    task_free(&b);
}

static void test_round_trip_attention(void **state)
{
    (void)state;
    const char *full =
        "{\"name\": \"qwen3 prefill\", \"op\": \"attention\","
        " \"params\": {\"batch\": 2, \"seq\": 1024, \"q_heads\": 32, \"kv_heads\": 8, \"head_dim\": 128,"
        "              \"causal\": 0},"
        " \"dtype\": \"bf16\", \"backend\": \"cuda\","
        " \"reference_source\": \"__global__ void k() {}\\n/* \\\"quoted\\\" */\\n\","
        " \"reference_lang\": \"cu\", \"reference_path\": \"kernels/attention/cuda/reference.cu\","
        " \"target\": 70.5, \"max_iters\": 12, \"agent\": \"anthropic\","
        " \"agent_config\": {\"model\": \"some-model\", \"temperature\": 0.2},"
        " \"tolerance\": 0.02, \"time_limit_s\": 30, \"compile_limit_s\": 200,"
        " \"memory_limit_mb\": 2048, \"seed\": 42}";
    round_trip(full);

    /* And the fields survived as given. */
    task_t t;
    accepted(full, &t);
    assert_string_equal(t.name, "qwen3 prefill");
    assert_int_equal(t.dtype, EMILE_DTYPE_BF16);
    assert_string_equal(t.backend, "cuda");
    assert_string_equal(t.reference_lang, "cu");
    assert_near(t.target_pct, 70.5, 0);
    assert_int_equal(t.max_iters, 12);
    assert_string_equal(t.agent, "anthropic");
    assert_string_equal(json_string_value(json_object_get(t.agent_config, "model")), "some-model");
    assert_near(t.tolerance, 0.02, 0);
    assert_near(t.time_limit_s, 30, 0);
    assert_near(t.compile_limit_s, 200, 0);
    assert_near(t.memory_limit_mb, 2048, 0);
    assert_true(t.seed == 42);
    assert_near(param(&t, "seq"), 1024, 0);
    assert_near(param(&t, "causal"), 0, 0);
    assert_near(param(&t, "scale"), 1.0 / sqrt(128.0), 1e-15);
    /* The canonical JSON is self-contained: the source inlined, a string op. */
    json_t *j = task_to_json(&t);
    assert_string_equal(json_string_value(json_object_get(j, "op")), "attention");
    assert_string_equal(json_string_value(json_object_get(j, "reference_source")), t.reference_source);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "params"), "seq")), 1024);
    json_decref(j);
    task_free(&t);

    /* The minimal task round-trips too (defaults written out). */
    round_trip("{\"op\": \"attention\", \"reference_source\": \"x\"}");
    /* A large seed (above 2^63) survives. */
    task_t s;
    task_init(&s);
    char err[256];
    assert_int_equal(task_set(&s, "op", "attention", err, sizeof err), 0);
    s.reference_source = strdup("x");
    s.seed = 0xfedcba9876543210ULL;
    assert_int_equal(task_finalize(&s, err, sizeof err), 0);
    json_t *js = task_to_json(&s);
    task_t s2;
    task_init(&s2);
    assert_int_equal(task_from_json(&s2, js, NULL, err, sizeof err), 0);
    assert_true(s2.seed == 0xfedcba9876543210ULL);
    json_decref(js);
    task_free(&s);
    task_free(&s2);
}

static void test_round_trip_custom_op(void **state)
{
    (void)state;
    text_t text = rmsnorm_task(RMSNORM_OP, "\"params\": {\"rows\": 300}");
    round_trip(text.s);
    task_t t;
    accepted(text.s, &t);
    json_t *j = task_to_json(&t);
    json_t *op = json_object_get(j, "op");
    assert_true(json_is_object(op));      /* a user op travels in full */
    assert_string_equal(json_string_value(json_object_get(op, "flops")), "4*rows*cols");
    assert_int_equal(json_array_size(json_object_get(op, "tensors")), 3);
    json_decref(j);
    assert_near(param(&t, "rows"), 300, 0);
    assert_near(param(&t, "cols"), 256, 0);
    task_free(&t);
}

/* ---- files ------------------------------------------------------------- */

static void test_load_file(void **state)
{
    (void)state;
    tmpdir_t d;
    tmp_make(&d);
    char ref[1024], task_path[1024], err[1024];
    tmp_write(&d, "ref.c", REF_SRC, ref, sizeof ref);
    tmp_write(&d, "task.json",
              "{\"op\": \"attention\", \"params\": {\"seq\": 256}, \"reference\": \"ref.c\", \"max_iters\": 3}",
              task_path, sizeof task_path);
    task_t t;
    task_init(&t);
    if (task_load_file(&t, task_path, err, sizeof err) != 0)
        fail_msg("task_load_file: %s", err);
    assert_int_equal(task_finalize(&t, err, sizeof err), 0);
    /* The relative reference is found beside the task file. */
    assert_string_equal(t.reference_source, REF_SRC);
    assert_string_equal(t.reference_path, ref);
    assert_string_equal(t.reference_lang, "c");
    assert_near(param(&t, "seq"), 256, 0);
    assert_int_equal(t.max_iters, 3);
    task_free(&t);

    /* A .cu reference is CUDA. */
    char cu[1024];
    tmp_write(&d, "ref.cu", "__global__ void k() {}\n", cu, sizeof cu);
    tmp_write(&d, "task_cu.json", "{\"op\": \"attention\", \"backend\": \"cuda\", \"reference\": \"ref.cu\"}",
              task_path, sizeof task_path);
    task_init(&t);
    assert_int_equal(task_load_file(&t, task_path, err, sizeof err), 0);
    assert_string_equal(t.reference_lang, "cu");
    task_free(&t);

    /* An absolute reference path is used as is. */
    char text[2048];
    snprintf(text, sizeof text, "{\"op\": \"attention\", \"reference\": \"%s\"}", ref);
    tmp_write(&d, "task_abs.json", text, task_path, sizeof task_path);
    task_init(&t);
    assert_int_equal(task_load_file(&t, task_path, err, sizeof err), 0);
    assert_string_equal(t.reference_source, REF_SRC);
    task_free(&t);

    /* The reference file is missing: the message names it and the task file. */
    tmp_write(&d, "task_noref.json", "{\"op\": \"attention\", \"reference\": \"missing_ref.c\"}", task_path,
              sizeof task_path);
    task_init(&t);
    assert_int_equal(task_load_file(&t, task_path, err, sizeof err), -1);
    assert_contains(err, "cannot read reference");
    assert_contains(err, "missing_ref.c");
    assert_contains(err, "No such file");
    assert_contains(err, task_path);
    task_free(&t);

    /* The task file itself is missing. */
    char nofile[1100];
    snprintf(nofile, sizeof nofile, "%s/nope.json", d.dir);
    task_init(&t);
    assert_int_equal(task_load_file(&t, nofile, err, sizeof err), -1);
    assert_contains(err, "cannot read task file");
    assert_contains(err, "nope.json");
    task_free(&t);

    /* A task file's own errors are prefixed with its path. */
    tmp_write(&d, "task_bad.json", "{\"op\": \"attention\", \"colour\": \"blue\"}", task_path, sizeof task_path);
    task_init(&t);
    assert_int_equal(task_load_file(&t, task_path, err, sizeof err), -1);
    assert_contains(err, task_path);
    assert_contains(err, "unknown task field \"colour\"");
    task_free(&t);

    fs_rm_rf(d.dir);
}

static void test_malformed_json_line_column(void **state)
{
    (void)state;
    tmpdir_t d;
    tmp_make(&d);
    char path[1024], err[1024];
    /* The trailing comma is on line 3. */
    tmp_write(&d, "broken.json", "{\n  \"op\": \"attention\",\n  \"params\": {\"seq\": 512,}\n}\n", path,
              sizeof path);
    task_t t;
    task_init(&t);
    assert_int_equal(task_load_file(&t, path, err, sizeof err), -1);
    assert_contains(err, "not valid JSON");
    assert_contains(err, "line 3");
    assert_contains(err, "column");
    assert_contains(err, "broken.json");
    task_free(&t);

    /* The same file, when some earlier call left errno at ENOENT (as a failed
     * stat or fopen elsewhere in the CLI would): the message must still be
     * the syntax error with its line, not "cannot read". */
    task_init(&t);
    errno = ENOENT;
    assert_int_equal(task_load_file(&t, path, err, sizeof err), -1);
    assert_contains(err, "line 3");
    task_free(&t);

    fs_rm_rf(d.dir);
}

/* ---- CLI overrides ------------------------------------------------------ */

static void test_cli_overrides(void **state)
{
    (void)state;
    task_t t;
    char err[512];
    task_init(&t);
    /* A size before the op is known is refused with the reason. */
    assert_int_equal(task_set(&t, "seq", "128", err, sizeof err), -1);
    assert_contains(err, "before the op is known");

    assert_int_equal(task_set(&t, "op", "attention", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "seq", "1024", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "heads", "16", err, sizeof err), 0);        /* alias of q_heads */
    assert_int_equal(task_set(&t, "kv-heads", "4", err, sizeof err), 0);      /* dashes */
    assert_int_equal(task_set(&t, "head-dim", "128", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "batch", "3", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "causal", "0", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "dtype", "bf16", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "backend", "cuda", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "agent", "openai", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "model", "qwen", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "base-url", "http://localhost:8000/v1", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "target", "65", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "max-iters", "20", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "tolerance", "0.001", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "time-limit", "15", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "seed", "7", err, sizeof err), 0);
    t.reference_source = strdup("x");
    if (task_finalize(&t, err, sizeof err) != 0)
        fail_msg("finalize after overrides: %s", err);
    assert_near(param(&t, "seq"), 1024, 0);
    assert_near(param(&t, "q_heads"), 16, 0);
    assert_near(param(&t, "kv_heads"), 4, 0);
    assert_near(param(&t, "head_dim"), 128, 0);
    assert_near(param(&t, "batch"), 3, 0);
    assert_near(param(&t, "causal"), 0, 0);
    assert_near(param(&t, "scale"), 1.0 / sqrt(128.0), 1e-15);
    assert_int_equal(t.dtype, EMILE_DTYPE_BF16);
    assert_string_equal(t.backend, "cuda");
    assert_string_equal(t.agent, "openai");
    assert_string_equal(json_string_value(json_object_get(t.agent_config, "model")), "qwen");
    assert_string_equal(json_string_value(json_object_get(t.agent_config, "base_url")), "http://localhost:8000/v1");
    assert_near(t.target_pct, 65, 0);
    assert_int_equal(t.max_iters, 20);
    assert_near(t.tolerance, 0.001, 0);
    assert_near(t.time_limit_s, 15, 0);
    assert_true(t.seed == 7);

    /* Bad values name the flag and the value. */
    assert_int_equal(task_set(&t, "seq", "abc", err, sizeof err), -1);
    assert_contains(err, "--seq needs a number");
    assert_contains(err, "abc");
    assert_int_equal(task_set(&t, "seq", "12x", err, sizeof err), -1);
    assert_contains(err, "12x");
    assert_int_equal(task_set(&t, "seq", "", err, sizeof err), -1);
    assert_contains(err, "needs a number");
    assert_int_equal(task_set(&t, "dtype", "f8", err, sizeof err), -1);
    assert_contains(err, "unknown dtype 'f8'");
    assert_int_equal(task_set(&t, "colour", "3", err, sizeof err), -1);
    assert_contains(err, "op attention has no parameter 'colour'");
    assert_int_equal(task_set(&t, "op", "conv9d", err, sizeof err), -1);
    assert_contains(err, "unknown op 'conv9d'");

    /* Overrides on top of a file, then checked again by finalize. */
    assert_int_equal(task_set(&t, "op", "attention", err, sizeof err), 0);   /* resets to defaults */
    assert_near(param(&t, "seq"), 512, 0);
    assert_int_equal(task_set(&t, "kv-heads", "3", err, sizeof err), 0);
    assert_int_equal(task_finalize(&t, err, sizeof err), -1);
    assert_contains(err, "multiple of kv_heads");
    task_free(&t);

    /* Aliases of dtypes. */
    task_init(&t);
    assert_int_equal(task_set(&t, "dtype", "float16", err, sizeof err), 0);
    assert_int_equal(t.dtype, EMILE_DTYPE_F16);
    assert_int_equal(task_set(&t, "dtype", "bfloat16", err, sizeof err), 0);
    assert_int_equal(t.dtype, EMILE_DTYPE_BF16);
    assert_int_equal(task_set(&t, "dtype", "fp64", err, sizeof err), 0);
    assert_int_equal(t.dtype, EMILE_DTYPE_F64);
    task_free(&t);
}

/* ---- refusals ------------------------------------------------------------- */

static void test_bad_inputs(void **state)
{
    (void)state;
    refused("[1, 2]", "must be a JSON object", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"colour\": \"blue\"}",
            "unknown task field \"colour\"", NULL);
    refused("{\"op\": \"conv9d\", \"reference_source\": \"x\"}", "unknown op 'conv9d'", "attention");
    refused("{\"reference_source\": \"x\"}", "task has no \"op\"", NULL);
    refused("{\"op\": 5, \"reference_source\": \"x\"}", "\"op\" must be a name or an object", NULL);
    refused("{\"op\": \"attention\"}", "no reference kernel given", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"q_heads\": 6, \"kv_heads\": 4}}",
            "q_heads (6) must be a multiple of kv_heads (4)", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"kv_heads\": 0}}",
            "kv_heads", "positive");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"seq\": 0}}",
            "tensor q dimension 1 (seq) = 0", "positive integer");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"seq\": -5}}",
            "(seq) = -5", "positive integer");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"head_dim\": 64.5}}",
            "(head_dim) = 64.5", "positive integer");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"batch\": -1}}",
            "(batch) = -1", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"causal\": 2}}",
            "causal must be 0 or 1", NULL);
    /* One tensor alone too large (q: 1e9 * 8 * 64 * 4 bytes). */
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"seq\": 1000000000}}",
            "tensor q would need", "too large");
    /* Each tensor fits, together they do not (q and o: 2 x 2.05e11 bytes). */
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"seq\": 100000000}}",
            "more than any device holds", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"seq\": 1e20}}",
            "(seq)", "positive integer");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"seq\": \"long\"}}",
            "parameter \"seq\" must be a number", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"sequence\": 5}}",
            "op attention has no parameter \"sequence\"", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": [1]}",
            "\"params\" must be an object", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"dtype\": \"f8\"}", "unknown dtype", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"dtype\": 32}", "unknown dtype", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"backend\": \"tpu\"}",
            "unknown backend 'tpu'", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"target\": 0}", "target", "(0, 100]");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"target\": 150}", "target", "got 150");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"target\": -5}", "target", "got -5");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"target\": \"high\"}",
            "\"target\" must be a number", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"max_iters\": -1}",
            "max_iters must be between 0 and 10000", "got -1");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"max_iters\": 20000}",
            "max_iters", "got 20000");
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"max_iters\": 2.5}",
            "\"max_iters\" must be an integer", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"time_limit_s\": 0}", "time_limit_s", NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"memory_limit_mb\": 8}", "memory_limit_mb",
            NULL);
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"agent_config\": \"gpt\"}",
            "\"agent_config\" must be an object", NULL);

    /* Edges that are fine. */
    task_t t;
    accepted("{\"op\": \"attention\", \"reference_source\": \"x\", \"max_iters\": 0, \"target\": 100,"
             " \"params\": {\"causal\": false, \"q_heads\": 12, \"kv_heads\": 12}}", &t);
    assert_int_equal(t.max_iters, 0);
    assert_near(param(&t, "causal"), 0, 0);
    task_free(&t);
}

/* A max_iters too large for an int must be refused, not wrapped around
 * into a small valid budget (4294967297 = 2^32 + 1 becomes 1). */
static void test_max_iters_overflow(void **state)
{
    (void)state;
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"max_iters\": 4294967297}", "max_iters", NULL);
}

/* The error message lists f32, f16, bf16 and f64 as the task dtypes; the
 * integer types are element types of tensors, not a dtype to run attention
 * in, and must not be accepted silently (the reference then fails late with
 * "returned 1"). */
static void test_integer_task_dtype_refused(void **state)
{
    (void)state;
    refused("{\"op\": \"attention\", \"reference_source\": \"x\", \"dtype\": \"i32\"}", "dtype", NULL);
}

/* ---- user-defined ops ------------------------------------------------------ */

static void test_custom_rmsnorm(void **state)
{
    (void)state;
    text_t text = rmsnorm_task(RMSNORM_OP, "\"dtype\": \"f32\"");
    task_t t;
    accepted(text.s, &t);
    const op_t *op = &t.op;
    assert_string_equal(op->name, "rmsnorm");
    assert_string_equal(op->description, "y = x / rms(x) * w");
    assert_false(op->builtin);
    assert_null(op->eval_f64);
    assert_int_equal(op->n_tensors, 3);
    assert_string_equal(op->tensors[0].name, "x");
    assert_string_equal(op->tensors[1].name, "w");
    assert_string_equal(op->tensors[2].name, "y");
    assert_false(op->tensors[0].is_output);
    assert_false(op->tensors[1].is_output);
    assert_true(op->tensors[2].is_output);
    assert_int_equal(op->tensors[0].ndim, 2);
    assert_int_equal(op->tensors[1].ndim, 1);
    assert_string_equal(op->tensors[0].shape[1], "cols");
    assert_near(op->tensors[1].init_std, 0.5, 0);
    assert_int_equal(op->tensors[0].dtype, -1);
    assert_int_equal(op->n_vary, 1);
    assert_string_equal(op->vary[0], "rows");
    assert_near(param(&t, "rows"), 512, 0);
    assert_near(param(&t, "cols"), 256, 0);
    assert_near(param(&t, "eps"), 1e-6, 0);

    /* Shapes, FLOPs and bytes at the task's parameters. */
    int64_t shape[EMILE_MAX_DIMS];
    char err[512];
    assert_int_equal(op_tensor_shape(op, 0, &t.params, shape, err, sizeof err), 0);
    assert_int_equal(shape[0], 512);
    assert_int_equal(shape[1], 256);
    assert_int_equal(op_tensor_shape(op, 1, &t.params, shape, err, sizeof err), 0);
    assert_int_equal(shape[0], 256);
    assert_int_equal(op_tensor_numel(op, 0, &t.params), 131072);
    assert_int_equal(op_tensor_numel(op, 1, &t.params), 256);
    assert_int_equal(op_tensor_numel(op, 2, &t.params), 131072);
    assert_near(op_flops(op, &t.params), 4.0 * 512 * 256, 0);
    assert_near(op_bytes(op, &t.params, EMILE_DTYPE_F32), 4.0 * (2 * 512 * 256 + 256), 0);
    assert_near(op_bytes(op, &t.params, EMILE_DTYPE_BF16), 2.0 * (2 * 512 * 256 + 256), 0);
    /* Tolerances: given ones win, the rest are the defaults. */
    assert_near(op_tolerance(op, EMILE_DTYPE_F32), 2e-5, 0);
    assert_near(op_tolerance(op, EMILE_DTYPE_BF16), 0.05, 0);
    assert_near(op_tolerance(op, EMILE_DTYPE_F16), 2e-2, 0);
    /* Parameters of the task override the op's defaults, and the shapes follow. */
    op_params_t p = t.params;
    op_param_set(&p, "rows", 7);
    assert_int_equal(op_tensor_numel(op, 0, &p), 7 * 256);
    assert_near(op_flops(op, &p), 4.0 * 7 * 256, 0);
    task_free(&t);

    /* Without "bytes", every tensor is read or written once at its dtype;
     * a tensor with its own dtype counts at that size. */
    const char *no_bytes =
        "{\"name\": \"scale_rows\", \"params\": {\"rows\": 10, \"cols\": 20},"
        " \"tensors\": [{\"name\": \"x\", \"shape\": [\"rows\", \"cols\"]},"
        "               {\"name\": \"idx\", \"shape\": [\"rows\"], \"dtype\": \"i64\"},"
        "               {\"name\": \"y\", \"shape\": [\"rows\", 4, \"cols/2\"], \"output\": true}],"
        " \"flops\": \"rows*cols\"}";
    text = rmsnorm_task(no_bytes, NULL);
    accepted(text.s, &t);
    assert_int_equal(t.op.tensors[1].dtype, EMILE_DTYPE_I64);
    assert_int_equal(op_tensor_dtype(&t.op, 1, EMILE_DTYPE_F32), EMILE_DTYPE_I64);
    assert_int_equal(op_tensor_dtype(&t.op, 0, EMILE_DTYPE_F16), EMILE_DTYPE_F16);
    assert_int_equal(op_tensor_numel(&t.op, 2, &t.params), 10 * 4 * 10);
    assert_near(op_bytes(&t.op, &t.params, EMILE_DTYPE_F32), 200 * 4 + 10 * 8 + 400 * 4, 0);
    task_free(&t);
}

static void test_custom_op_refusals(void **state)
{
    (void)state;
    struct {
        const char *op, *needle1, *needle2;
    } cases[] = {
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"x\", \"shape\": [\"n\"]}],"
         " \"flops\": \"n\"}",
         "no tensor is marked \"output\"", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"x\", \"shape\": [\"n\"]},"
         " {\"name\": \"x\", \"shape\": [\"n\"], \"output\": true}], \"flops\": \"n\"}",
         "duplicate tensor name", ": x"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"my x\", \"shape\": [\"n\"]},"
         " {\"name\": \"y\", \"shape\": [\"n\"], \"output\": true}], \"flops\": \"n\"}",
         "identifier", "my x"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"1x\", \"shape\": [\"n\"]},"
         " {\"name\": \"y\", \"shape\": [\"n\"], \"output\": true}], \"flops\": \"n\"}",
         "identifier", "1x"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"shape\": [\"n\"]},"
         " {\"name\": \"y\", \"shape\": [\"n\"], \"output\": true}], \"flops\": \"n\"}",
         "needs a \"name\"", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"], \"output\": true},"
         " {\"name\": \"x\", \"shape\": [\"n\"]}], \"flops\": \"n\"}",
         "list inputs before outputs", ": x"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"x\", \"shape\": [\"n\"]},"
         " {\"name\": \"y\", \"shape\": [\"n\"], \"output\": true}]}",
         "missing \"flops\"", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [], \"flops\": \"n\"}",
         "\"tensors\" must be a non-empty array", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"flops\": \"n\"}", "\"tensors\" must be a non-empty array",
         NULL},
        {"{\"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"], \"output\": true}],"
         " \"flops\": \"n\"}",
         "missing or too long \"name\"", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [], \"output\": true}],"
         " \"flops\": \"n\"}",
         "\"shape\" must be an array of 1-8", ": y"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [1,2,3,4,5,6,7,8,9],"
         " \"output\": true}], \"flops\": \"n\"}",
         "\"shape\" must be an array of 1-8", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\", true],"
         " \"output\": true}], \"flops\": \"n\"}",
         "shape entries must be strings or integers", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"dtype\": \"f7\", \"output\": true}], \"flops\": \"n\"}",
         "unknown tensor dtype", "f7"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"output\": true}], \"flops\": \"n\", \"tolerance\": {\"f33\": 0.1}}",
         "tolerance must map dtype names to positive numbers", "f33"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"output\": true}], \"flops\": \"n\", \"tolerance\": {\"f32\": -1}}",
         "positive numbers", NULL},
        {"{\"name\": \"r\", \"params\": {\"my n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"output\": true}], \"flops\": \"n\"}",
         "parameter names must be identifiers", "my n"},
        {"{\"name\": \"r\", \"params\": {\"n\": \"four\"}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"output\": true}], \"flops\": \"n\"}",
         "parameter is not a number", ": n"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"output\": true}], \"flops\": \"n\", \"vary\": [1]}",
         "\"vary\" must list", NULL},
        /* Caught when the shapes and FLOPs are evaluated (task_finalize). */
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"m\"],"
         " \"output\": true}], \"flops\": \"n\"}",
         "unknown parameter 'm'", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n-4\"],"
         " \"output\": true}], \"flops\": \"n\"}",
         "tensor y dimension 0 (n-4) = 0", "positive integer"},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"output\": true}], \"flops\": \"n*k\"}",
         "unknown parameter 'k'", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n\"],"
         " \"output\": true}], \"flops\": \"0-n\"}",
         "flops expression gives -4", NULL},
        {"{\"name\": \"r\", \"params\": {\"n\": 4}, \"tensors\": [{\"name\": \"y\", \"shape\": [\"n/0\"],"
         " \"output\": true}], \"flops\": \"n\"}",
         "division by zero", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        text_t text = rmsnorm_task(cases[i].op, NULL);
        refused(text.s, cases[i].needle1, cases[i].needle2);
        if (strstr(cases[i].needle1, "unknown parameter") == NULL && strstr(cases[i].needle1, "dimension") == NULL &&
            strstr(cases[i].needle1, "flops expression") == NULL && strstr(cases[i].needle1, "division") == NULL) {
            /* Definition errors come from op_from_json and say so. */
            task_t t;
            char err[512];
            json_t *j = parse(text.s);
            task_init(&t);
            assert_int_equal(task_from_json(&t, j, NULL, err, sizeof err), -1);
            assert_contains(err, "op definition");
            json_decref(j);
            task_free(&t);
        }
    }
    /* A task parameter the user op does not declare. */
    text_t text = rmsnorm_task(RMSNORM_OP, "\"params\": {\"colz\": 3}");
    refused(text.s, "op rmsnorm has no parameter \"colz\"", NULL);
}

/* An op's byte model is checked like its FLOP model: an expression that
 * cannot be evaluated is refused when the task is finalised, instead of
 * silently giving 0 bytes (and an infinite arithmetic intensity) later. */
static void test_custom_op_bad_bytes_refused(void **state)
{
    (void)state;
    const char *op =
        "{\"name\": \"r\", \"params\": {\"rows\": 4, \"cols\": 8}, \"tensors\": [{\"name\": \"x\","
        " \"shape\": [\"rows\", \"cols\"]}, {\"name\": \"y\", \"shape\": [\"rows\", \"cols\"], \"output\": true}],"
        " \"flops\": \"rows*cols\", \"bytes\": \"elem*rowz*cols\"}";
    text_t text = rmsnorm_task(op, NULL);
    refused(text.s, "rowz", NULL);
}

/* "vary" names the parameters validation shrinks to a ragged size; a name
 * that is not a parameter of the op (a typo) silently disables the ragged
 * check and must be refused. */
static void test_custom_op_bad_vary_refused(void **state)
{
    (void)state;
    const char *op =
        "{\"name\": \"r\", \"params\": {\"rows\": 4, \"cols\": 8}, \"tensors\": [{\"name\": \"x\","
        " \"shape\": [\"rows\", \"cols\"]}, {\"name\": \"y\", \"shape\": [\"rows\", \"cols\"], \"output\": true}],"
        " \"flops\": \"rows*cols\", \"vary\": [\"row\"]}";
    text_t text = rmsnorm_task(op, NULL);
    refused(text.s, "row", NULL);
}

/* ---- tolerances and the attention model ------------------------------------ */

static void test_tolerance_defaults(void **state)
{
    (void)state;
    const op_t *att = op_find_builtin("attention");
    assert_non_null(att);
    assert_null(op_find_builtin("gemm"));
    assert_non_null(op_find_builtin("rmsnorm"));
    assert_non_null(op_find_builtin("softmax"));
    assert_near(op_tolerance(att, EMILE_DTYPE_F32), 1e-4, 0);
    assert_near(op_tolerance(att, EMILE_DTYPE_F16), 2e-2, 0);
    assert_near(op_tolerance(att, EMILE_DTYPE_BF16), 6.25e-2, 0);
    assert_near(op_tolerance(att, EMILE_DTYPE_F64), 1e-9, 0);
    assert_near(op_tolerance(att, EMILE_DTYPE_I32), 0, 0);
    assert_near(op_tolerance(att, -1), 0, 0);
    assert_near(op_tolerance(att, 6), 0, 0);
    /* Looser dtypes have looser bounds. */
    assert_true(op_tolerance(att, EMILE_DTYPE_F64) < op_tolerance(att, EMILE_DTYPE_F32));
    assert_true(op_tolerance(att, EMILE_DTYPE_F32) < op_tolerance(att, EMILE_DTYPE_F16));
    assert_true(op_tolerance(att, EMILE_DTYPE_F16) < op_tolerance(att, EMILE_DTYPE_BF16));

    const op_t **list;
    int n;
    op_list_builtin(&list, &n);
    assert_true(n >= 1);
    int found = 0;
    for (int i = 0; i < n; i++)
        found |= list[i] == att;
    assert_true(found);
}

static void test_attention_model(void **state)
{
    (void)state;
    task_t t;
    accepted("{\"op\": \"attention\", \"reference_source\": \"x\", \"params\": {\"batch\": 1, \"seq\": 512,"
             " \"q_heads\": 8, \"kv_heads\": 2, \"head_dim\": 64, \"causal\": 1}}", &t);
    /* 4*B*Hq*S*S*D / 2 (causal) = 4*8*512*512*64/2 */
    assert_near(op_flops(&t.op, &t.params), 268435456.0, 0);
    /* q, k, v read and o written once: elem*B*S*D*(2*Hq + 2*Hkv) */
    assert_near(op_bytes(&t.op, &t.params, EMILE_DTYPE_F32), 4.0 * 512 * 64 * 20, 0);
    assert_near(op_bytes(&t.op, &t.params, EMILE_DTYPE_F32), 2621440.0, 0);
    assert_near(op_bytes(&t.op, &t.params, EMILE_DTYPE_BF16), 1310720.0, 0);
    assert_near(op_bytes(&t.op, &t.params, EMILE_DTYPE_F64), 5242880.0, 0);
    /* The byte model equals the sum of the tensors' sizes for attention. */
    double sum = 0;
    for (int k = 0; k < t.op.n_tensors; k++)
        sum += 4.0 * (double)op_tensor_numel(&t.op, k, &t.params);
    assert_near(sum, 2621440.0, 0);
    /* Tensor shapes. */
    int64_t shape[EMILE_MAX_DIMS];
    char err[256];
    assert_int_equal(op_tensor_shape(&t.op, 1, &t.params, shape, err, sizeof err), 0);
    assert_int_equal(shape[0], 1);
    assert_int_equal(shape[1], 512);
    assert_int_equal(shape[2], 2);
    assert_int_equal(shape[3], 64);
    assert_int_equal(op_tensor_numel(&t.op, 0, &t.params), 512 * 8 * 64);
    assert_int_equal(op_tensor_numel(&t.op, 1, &t.params), 512 * 2 * 64);
    assert_true(t.op.tensors[3].is_output);
    assert_false(t.op.tensors[0].is_output);
    /* Not causal: twice the FLOPs, the same bytes. */
    op_params_t p = t.params;
    op_param_set(&p, "causal", 0);
    assert_near(op_flops(&t.op, &p), 536870912.0, 0);
    assert_near(op_bytes(&t.op, &p, EMILE_DTYPE_F32), 2621440.0, 0);
    /* Batch 2, S 1024: 4x the causal FLOPs per batch... */
    op_param_set(&p, "causal", 1);
    op_param_set(&p, "batch", 2);
    op_param_set(&p, "seq", 1024);
    assert_near(op_flops(&t.op, &p), 268435456.0 * 2 * 4, 0);
    assert_near(op_bytes(&t.op, &p, EMILE_DTYPE_F32), 2621440.0 * 4, 0);
    task_free(&t);

    /* The float64 oracle of attention is present; the op JSON describes it. */
    const op_t *att = op_find_builtin("attention");
    assert_non_null(att->eval_f64);
    json_t *j = op_to_json(att);
    assert_string_equal(json_string_value(json_object_get(j, "flops")),
                        "4*batch*q_heads*seq*seq*head_dim / (causal ? 2 : 1)");
    assert_int_equal(json_array_size(json_object_get(j, "tensors")), 4);
    assert_true(json_is_true(json_object_get(j, "builtin")));
    json_decref(j);
}

/* The float64 oracle on a tiny case computed by hand: one query, two keys,
 * D = 1, not causal.  s = scale*q*k = (0.5*1*2, 0.5*1*0) = (1, 0); p =
 * softmax = (e/(e+1), 1/(e+1)); o = p . v with v = (3, -1). */
static void test_attention_oracle_by_hand(void **state)
{
    (void)state;
    const op_t *att = op_find_builtin("attention");
    op_params_t p = att->defaults;
    op_param_set(&p, "batch", 1);
    op_param_set(&p, "seq", 2);
    op_param_set(&p, "q_heads", 1);
    op_param_set(&p, "kv_heads", 1);
    op_param_set(&p, "head_dim", 1);
    op_param_set(&p, "causal", 0);
    op_param_set(&p, "scale", 0.5);
    double q[2] = {1, 1}, k[2] = {2, 0}, v[2] = {3, -1}, o[2] = {NAN, NAN};
    double *bufs[4] = {q, k, v, o};
    assert_int_equal(att->eval_f64(att, &p, bufs), 0);
    double e = exp(1.0);
    assert_near(o[0], (3 * e - 1) / (e + 1), 1e-14);
    assert_near(o[1], (3 * e - 1) / (e + 1), 1e-14);
    /* Causal: the first query sees only the first key. */
    op_param_set(&p, "causal", 1);
    assert_int_equal(att->eval_f64(att, &p, bufs), 0);
    assert_near(o[0], 3, 1e-14);
    assert_near(o[1], (3 * e - 1) / (e + 1), 1e-14);
}

static void test_dtype_names(void **state)
{
    (void)state;
    assert_string_equal(dtype_name(EMILE_DTYPE_F32), "f32");
    assert_string_equal(dtype_name(EMILE_DTYPE_BF16), "bf16");
    assert_string_equal(dtype_name(EMILE_DTYPE_F16), "f16");
    assert_string_equal(dtype_name(EMILE_DTYPE_F64), "f64");
    assert_string_equal(dtype_name(42), "?");
    assert_int_equal(dtype_from_name("f32"), EMILE_DTYPE_F32);
    assert_int_equal(dtype_from_name("fp32"), EMILE_DTYPE_F32);
    assert_int_equal(dtype_from_name("half"), EMILE_DTYPE_F16);
    assert_int_equal(dtype_from_name("F32"), -1);
    assert_int_equal(dtype_from_name(""), -1);
    assert_int_equal(dtype_from_name(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_scale_derived),
        cmocka_unit_test(test_explicit_bad_scale_refused),
        cmocka_unit_test(test_round_trip_attention),
        cmocka_unit_test(test_round_trip_custom_op),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_malformed_json_line_column),
        cmocka_unit_test(test_cli_overrides),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_max_iters_overflow),
        cmocka_unit_test(test_integer_task_dtype_refused),
        cmocka_unit_test(test_custom_rmsnorm),
        cmocka_unit_test(test_custom_op_refusals),
        cmocka_unit_test(test_custom_op_bad_bytes_refused),
        cmocka_unit_test(test_custom_op_bad_vary_refused),
        cmocka_unit_test(test_tolerance_defaults),
        cmocka_unit_test(test_attention_model),
        cmocka_unit_test(test_attention_oracle_by_hand),
        cmocka_unit_test(test_dtype_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
