/*
 * test_task_py.c -- a task built from a PyTorch problem's description
 * (src/task/task_py.c), without Python: descriptions as the worker's oracle
 * gives them.  A user-defined op takes the problem's tensors, shape
 * expressions, constants, constructor arguments and FLOPs; emile_op matches a
 * builtin op, its parameters read from the shapes and emile_vary mapped onto
 * them; every misfit is refused with a message naming it; the task's JSON
 * round-trips (what the store and the worker read back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "emile_test.h"
#include "task/task.h"
#include "task/task_py.h"

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("bad JSON in the test: %s: %s", je.text, text);
    return j;
}

static void pending(task_t *t, const char *path)
{
    task_init(t);
    t->reference_source = strdup("class Model: pass\n");
    snprintf(t->reference_path, sizeof t->reference_path, "%s", path);
    snprintf(t->reference_lang, sizeof t->reference_lang, "py");
    t->problem_pending = 1;
}

#define FUSED                                                                                           \
    "{\"tensors\":["                                                                                    \
    "{\"name\":\"x\",\"role\":\"input\",\"shape\":[300,48],\"shape_expr\":[\"rows\",\"48\"],\"dtype\":\"f32\"}," \
    "{\"name\":\"bias\",\"role\":\"parameter\",\"shape\":[48],\"shape_expr\":[\"48\"],\"dtype\":\"f32\"},"    \
    "{\"name\":\"idx\",\"role\":\"buffer\",\"shape\":[48],\"shape_expr\":[\"48\"],\"dtype\":\"i64\"},"        \
    "{\"name\":\"out\",\"role\":\"output\",\"shape\":[600],\"shape_expr\":[\"2*rows\"],\"dtype\":\"f32\"}],"  \
    "\"constants\":{\"rows\":300,\"features\":48,\"eps\":1e-5},\"init_args\":{\"features\":48,\"alpha\":0.5}," \
    "\"vary\":[\"rows\"],\"flops\":28800,\"flops_expr\":null,\"bytes_expr\":null,\"emile_op\":null,"          \
    "\"emile_params\":{},\"dtype\":\"f32\"}"

static void user_defined_op(void **state)
{
    (void)state;
    task_t t;
    pending(&t, "/some/dir/23_Fused-Rows.py");
    json_t *d = parse(FUSED);
    char err[1024];
    assert_int_equal(task_from_problem(&t, d, err, sizeof err), 0);
    assert_int_equal(task_finalize(&t, err, sizeof err), 0);
    assert_string_equal(t.op.name, "op_23_Fused_Rows");
    assert_int_equal(t.op.n_tensors, 4);
    assert_string_equal(t.op.tensors[3].shape[0], "2*rows");
    assert_true(t.op.tensors[3].is_output && !t.op.tensors[1].is_output);
    assert_int_equal(op_tensor_dtype(&t.op, 2, t.dtype), EMILE_DTYPE_I64);
    assert_int_equal(op_tensor_dtype(&t.op, 0, t.dtype), EMILE_DTYPE_F32);
    assert_near(op_param_get(&t.params, "alpha", 0), 0.5, 0);
    assert_near(op_param_get(&t.params, "eps", 0), 1e-5, 0);
    assert_near(op_flops(&t.op, &t.params), 28800, 0);
    assert_int_equal(t.op.n_vary, 1);
    assert_string_equal(t.op.vary[0], "rows");
    op_params_t ragged, small;
    op_validation_params(&t.op, &t.params, &ragged, &small);
    assert_near(op_param_get(&ragged, "rows", 0), 260, 0);
    assert_int_equal(op_tensor_numel(&t.op, 3, &ragged), 520);
    assert_string_equal(t.name, "23_Fused-Rows.py (PyTorch)");
    /* What the store keeps reads back as the same task. */
    json_t *j = task_to_json(&t);
    assert_string_equal(json_string_value(json_object_get(j, "reference_lang")), "py");
    task_t back;
    task_init(&back);
    assert_int_equal(task_from_json(&back, j, NULL, err, sizeof err), 0);
    assert_int_equal(task_finalize(&back, err, sizeof err), 0);
    assert_int_equal(back.problem_pending, 0);
    assert_string_equal(back.op.tensors[3].shape[0], "2*rows");
    json_decref(j);
    task_free(&back);
    json_decref(d);
    task_free(&t);
}

#define ATTN(qshape, kshape, vary)                                                                           \
    "{\"tensors\":["                                                                                        \
    "{\"name\":\"q\",\"role\":\"input\",\"shape\":" qshape ",\"shape_expr\":[\"1\",\"seq_len\",\"32\",\"128\"],\"dtype\":\"bf16\"}," \
    "{\"name\":\"k\",\"role\":\"input\",\"shape\":" kshape ",\"shape_expr\":[\"1\",\"seq_len\",\"8\",\"128\"],\"dtype\":\"bf16\"},"  \
    "{\"name\":\"v\",\"role\":\"input\",\"shape\":" kshape ",\"shape_expr\":[\"1\",\"seq_len\",\"8\",\"128\"],\"dtype\":\"bf16\"},"  \
    "{\"name\":\"out\",\"role\":\"output\",\"shape\":" qshape ",\"shape_expr\":[\"1\",\"seq_len\",\"32\",\"128\"],\"dtype\":\"bf16\"}]," \
    "\"constants\":{\"seq_len\":2048,\"causal\":0},\"init_args\":{},\"vary\":" vary ","                    \
    "\"flops\":1,\"emile_op\":\"attention\",\"emile_params\":{\"causal\":1},\"dtype\":\"bf16\"}"

static void builtin_match(void **state)
{
    (void)state;
    task_t t;
    pending(&t, "qwen3_attention.py");
    json_t *d = parse(ATTN("[1,2048,32,128]", "[1,2048,8,128]", "[\"seq_len\"]"));
    char err[1024];
    assert_int_equal(task_from_problem(&t, d, err, sizeof err), 0);
    assert_int_equal(task_finalize(&t, err, sizeof err), 0);
    assert_true(t.op.builtin);
    assert_string_equal(t.op.name, "attention");
    assert_int_equal(t.dtype, EMILE_DTYPE_BF16);
    assert_near(op_param_get(&t.params, "seq", 0), 2048, 0);
    assert_near(op_param_get(&t.params, "q_heads", 0), 32, 0);
    assert_near(op_param_get(&t.params, "kv_heads", 0), 8, 0);
    /* emile_params beats a constant of the same name; scale derived. */
    assert_near(op_param_get(&t.params, "causal", -1), 1, 0);
    assert_near(op_param_get(&t.params, "scale", 0), 1 / sqrt(128.0), 1e-15);
    assert_int_equal(t.op.n_vary, 1);
    assert_string_equal(t.op.vary[0], "seq");
    json_t *j = task_to_json(&t);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "vary"), 0)), "seq");
    assert_string_equal(json_string_value(json_object_get(j, "op")), "attention");
    json_decref(j);
    json_decref(d);
    task_free(&t);
}

static void refused(const char *desc, const char *op, const char *needle)
{
    task_t t;
    pending(&t, "p.py");
    if (op)
        snprintf(t.problem_op, sizeof t.problem_op, "%s", op);
    json_t *d = parse(desc);
    char err[1024] = "";
    int rc = task_from_problem(&t, d, err, sizeof err);
    if (rc == 0)
        rc = task_finalize(&t, err, sizeof err);
    assert_int_not_equal(rc, 0);
    assert_contains(err, needle);
    json_decref(d);
    task_free(&t);
}

static void misfits(void **state)
{
    (void)state;
    /* Heads that disagree between q and o cannot be one op. */
    refused("{\"tensors\":["
            "{\"name\":\"q\",\"role\":\"input\",\"shape\":[1,64,4,16],\"shape_expr\":[\"1\",\"64\",\"4\",\"16\"],\"dtype\":\"f32\"},"
            "{\"name\":\"k\",\"role\":\"input\",\"shape\":[1,64,2,16],\"shape_expr\":[\"1\",\"64\",\"2\",\"16\"],\"dtype\":\"f32\"},"
            "{\"name\":\"v\",\"role\":\"input\",\"shape\":[1,64,2,16],\"shape_expr\":[\"1\",\"64\",\"2\",\"16\"],\"dtype\":\"f32\"},"
            "{\"name\":\"o\",\"role\":\"output\",\"shape\":[1,64,8,16],\"shape_expr\":[\"1\",\"64\",\"8\",\"16\"],\"dtype\":\"f32\"}],"
            "\"constants\":{},\"init_args\":{},\"vary\":[],\"flops\":1,\"emile_op\":\"attention\",\"dtype\":\"f32\"}",
            NULL, "disagree on attention's parameter q_heads: 4, then 8");
    refused(FUSED, "softmax", "op softmax takes 2 tensors (inputs, then outputs); the problem has 4");
    refused(FUSED, "gemm", "emile_op names 'gemm', which is not a builtin op (attention, softmax, rmsnorm)");
    refused(ATTN("[1,2048,32,128]", "[1,2048,8,128]", "[\"batch\"]"), NULL,
            "emile_vary's 'batch' is no dimension of op attention");
    refused("{\"tensors\":["
            "{\"name\":\"x\",\"role\":\"input\",\"shape\":[4,8],\"shape_expr\":[\"4\",\"8\"],\"dtype\":\"f32\"},"
            "{\"name\":\"y\",\"role\":\"output\",\"shape\":[4,8],\"shape_expr\":[\"4\",\"8\"],\"dtype\":\"f32\"}],"
            "\"constants\":{},\"init_args\":{},\"vary\":[],\"flops\":1,\"emile_op\":\"softmax\","
            "\"emile_params\":{\"temperature\":2},\"dtype\":\"f32\"}",
            NULL, "emile_params names 'temperature', which op softmax does not have");
    refused("{\"tensors\":[{\"name\":\"i\",\"role\":\"input\",\"shape\":[4],\"shape_expr\":[\"4\"],\"dtype\":\"i64\"},"
            "{\"name\":\"out\",\"role\":\"output\",\"shape\":[4],\"shape_expr\":[\"4\"],\"dtype\":\"i64\"}],"
            "\"constants\":{},\"init_args\":{},\"vary\":[],\"flops\":1,\"dtype\":\"i64\"}",
            NULL, "the problem's tensors are i64: give --dtype");
}

static void pending_task_json(void **state)
{
    (void)state;
    char err[1024];
    task_t t;
    task_init(&t);
    json_t *j = parse("{\"reference\": \"tests/data/pytorch/fused_rows.py\", \"op\": \"softmax\","
                      "\"constants\": {\"rows\": 64}, \"compile_floor\": false, \"dtype\": \"bf16\"}");
    assert_int_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    assert_true(t.problem_pending);
    assert_string_equal(t.problem_op, "softmax");
    assert_true(t.no_compile_floor && t.dtype_set && t.dtype == EMILE_DTYPE_BF16);
    assert_int_not_equal(task_finalize(&t, err, sizeof err), 0);
    assert_contains(err, "has not been described by a worker yet");
    json_t *req = task_problem_request(&t);
    assert_string_equal(json_string_value(json_object_get(req, "cmd")), "describe_problem");
    assert_string_equal(json_string_value(json_object_get(req, "op")), "softmax");
    assert_string_equal(json_string_value(json_object_get(req, "dtype")), "bf16");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(req, "constants"), "rows")), 64);
    assert_contains(json_string_value(json_object_get(req, "source")), "class Model");
    json_decref(req);
    json_decref(j);
    task_free(&t);
    /* A PyTorch problem's sizes are not task params, and its op is its own. */
    task_init(&t);
    j = parse("{\"reference\": \"x.py\", \"params\": {\"rows\": 4}}");
    assert_int_not_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    assert_contains(err, "sizes are its module-level constants");
    json_decref(j);
    task_free(&t);
    task_init(&t);
    j = parse("{\"reference\": \"x.py\", \"op\": {\"name\": \"mine\"}}");
    assert_int_not_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    assert_contains(err, "\"op\" may only name a builtin op");
    json_decref(j);
    task_free(&t);
    task_init(&t);
    assert_int_not_equal(task_set(&t, "const", "rows", err, sizeof err), 0);
    assert_contains(err, "--const wants NAME=NUMBER");
    assert_int_equal(task_set(&t, "const", "rows=12", err, sizeof err), 0);
    assert_int_equal(json_integer_value(json_object_get(t.constants, "rows")), 12);
    task_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(user_defined_op),
        cmocka_unit_test(builtin_match),
        cmocka_unit_test(misfits),
        cmocka_unit_test(pending_task_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
