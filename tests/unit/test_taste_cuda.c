/*
 * test_taste_cuda.c -- `emile taste --device cuda` without a GPU: the
 * engine library is replaced (through $EMILE_ENGINE_CUDA) by a fake one
 * built here from C, which implements the qwen3_cuda_* entry points with
 * a known next-token rule, calls the slot's kernel as the real engine does
 * (once per layer at position 0) and counts what it is asked to do.  So
 * the cuda model's dispatch (prefill through forward + device argmax,
 * decode through decode_step, sampling through the logits, the slot's
 * kernel or NULL for the built-in), the warm-up, the report's device keys
 * and the library's lookup are checked for real; only the GPU maths is
 * not (tests/gpu/run_gpu_suite.sh does that on a GPU host).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <math.h>

#include "engine/model.h"
#include "taste/taste.h"
#include "util/fs.h"

/* The fake engine (tests/data/engine/fake_qwen3_cuda.c): next(token, pos)
 * is the rule the test predicts. */
#define FAKE_SRC_PATH "tests/data/engine/fake_qwen3_cuda.c"

static char dir[PATH_MAX], fake_so[PATH_MAX + 32], ok_so[PATH_MAX + 32], fail_so[PATH_MAX + 32];
static char old_so[PATH_MAX + 32], op_ok_so[PATH_MAX + 32], op_fail_so[PATH_MAX + 32];
static void *fake;

static int counter(const char *name)
{
    int *p = dlsym(fake, name);
    assert_non_null(p);
    return *p;
}

static void reset_counters(void)
{
    const char *names[] = { "fake_forwards", "fake_slot_calls", "fake_builtin_prefills",
                            "fake_decodes", "fake_logit_copies", "fake_creates", "fake_random" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        *(int *)dlsym(fake, names[i]) = 0;
}

static int build(const char *src, const char *out, const char *extra)
{
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cc -std=c11 -shared -fPIC -Iinclude -Isrc %s '%s' -o '%s'",
             extra, src, out);
    return system(cmd);
}

static int setup(void **st)
{
    (void)st;
    if (fs_mkdtemp("emile-test-taste-cuda-", dir, sizeof dir) != 0)
        return -1;
    snprintf(fake_so, sizeof fake_so, "%s/libfake-engine.so", dir);
    snprintf(ok_so, sizeof ok_so, "%s/online.so", dir);
    snprintf(fail_so, sizeof fail_so, "%s/fail.so", dir);
    snprintf(old_so, sizeof old_so, "%s/libfake-engine-old.so", dir);
    snprintf(op_ok_so, sizeof op_ok_so, "%s/op_ok.so", dir);
    snprintf(op_fail_so, sizeof op_fail_so, "%s/op_fail.so", dir);
    if (build(FAKE_SRC_PATH, fake_so, "") != 0 ||
        build(FAKE_SRC_PATH, old_so, "-DFAKE_NO_OPS") != 0 ||
        build("tests/data/engine/attn_online.c", ok_so, "-lm") != 0 ||
        build("tests/data/engine/attn_fail.c", fail_so, "") != 0 ||
        build("tests/data/engine/op_ok.c", op_ok_so, "") != 0 ||
        build("tests/data/engine/op_fail.c", op_fail_so, "") != 0)
        return -1;
    setenv("EMILE_ENGINE_CUDA", fake_so, 1);
    /* the same handle taste's loader gets: its counters are these */
    fake = dlopen(fake_so, RTLD_NOW | RTLD_LOCAL);
    return fake ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    unsetenv("EMILE_ENGINE_CUDA");
    fs_rm_rf(dir);
    return 0;
}

static char *run(const taste_opts_t *o, taste_report_t *rep, int expect_rc, char *err,
                 size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    int rc = taste_run(o, out, rep, err, errlen);
    fclose(out);
    if (rc != expect_rc)
        fail_msg("taste_run returned %d (%s)\n%s", rc, err, buf);
    return buf;
}

/* The tokens the fake engine's rule gives after prompt. */
static void expected(const int *prompt, int np, int vocab, int n, int *out)
{
    int tok = (prompt[np - 1] * 31 + (np - 1) * 7 + 3) % vocab;
    for (int i = 0; i < n; i++) {
        out[i] = tok;
        tok = (tok * 31 + (np + i) * 7 + 3) % vocab;
    }
}

static void test_greedy_two_sides(void **st)
{
    (void)st;
    reset_counters();
    char ids[PATH_MAX + 32];
    snprintf(ids, sizeof ids, "%s/ids.txt", dir);
    const int prompt[5] = { 17, 4, 300, 99, 1 };
    const char *text = "17 4\n300\t99 1\n";
    assert_int_equal(fs_write_file(ids, text, strlen(text)), 0);
    taste_opts_t o = taste_defaults();
    o.device = "cuda";
    o.prompt_ids = ids;
    o.kernel = ok_so;
    o.gen.max_new = 9;
    o.json = 1;
    o.no_sandbox = 1;          /* the counters are read from this process */
    taste_report_t rep;
    char err[1024] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    int want[9];
    expected(prompt, 5, 512, 9, want);          /* tiny: vocab 512 */
    assert_int_equal(rep.n_sides, 2);
    for (int s = 0; s < 2; s++) {
        assert_int_equal(rep.side[s].n, 9);
        assert_memory_equal(rep.side[s].tokens, want, sizeof want);
    }
    assert_true(rep.agree);
    /* one model for both sides, random weights, one prefill chunk */
    assert_int_equal(counter("fake_creates"), 1);
    assert_int_equal(counter("fake_random"), 1);
    assert_int_equal(*(int *)dlsym(fake, "fake_max_chunk"), 5);
    assert_int_equal(*(int *)dlsym(fake, "fake_max_seq"), 5 + 9 + 1);
    /* per side: one warm-up prefill and the timed one; 8 decode steps;
     * the built-in side passes no kernel, the other one per layer (2) */
    assert_int_equal(counter("fake_forwards"), 4);
    assert_int_equal(counter("fake_builtin_prefills"), 2);
    assert_int_equal(counter("fake_slot_calls"), 2 * 2);
    assert_int_equal(counter("fake_decodes"), 2 * 8);
    assert_int_equal(counter("fake_logit_copies"), 0);   /* greedy: argmax on the device */
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "device")), "cuda");
    assert_string_equal(json_string_value(json_object_get(j, "device_name")), "Fake GPU");
    assert_string_equal(json_string_value(json_object_get(j, "decode_path")), "graph");
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_tokens")), 5);
    assert_true(json_is_true(json_object_get(j, "agree")));
    assert_int_equal(json_integer_value(json_object_get(j, "first_divergence")), -1);
    json_t *r1 = json_array_get(json_object_get(j, "runs"), 1);
    assert_string_equal(json_string_value(json_object_get(r1, "role")), "kernel");
    assert_string_equal(json_string_value(json_object_get(r1, "attention")), ok_so);
    assert_int_equal(json_integer_value(json_object_get(r1, "tokens")), 9);
    json_t *jids = json_object_get(r1, "ids");
    assert_int_equal(json_array_size(jids), 9);
    for (int i = 0; i < 9; i++)
        assert_int_equal(json_integer_value(json_array_get(jids, (size_t)i)), want[i]);
    assert_true(json_real_value(json_object_get(r1, "ttft_ms")) > 0);
    json_decref(j);
    free(out);
    taste_report_free(&rep);
}

static void test_sampling_and_table(void **st)
{
    (void)st;
    reset_counters();
    taste_opts_t o = taste_defaults();
    o.device = "cuda";
    o.prompt_tokens = 6;
    o.gen.max_new = 4;
    o.gen.temperature = 0.7f;          /* the logits go to the host sampler */
    o.warmup = 0;
    o.no_sandbox = 1;                  /* counters, as above */
    taste_report_t rep;
    char err[1024] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    assert_int_equal(rep.n_sides, 1);
    assert_int_equal(rep.side[0].n, 4);
    assert_int_equal(counter("fake_forwards"), 1);
    assert_int_equal(counter("fake_decodes"), 3);
    assert_int_equal(counter("fake_logit_copies"), 4);
    /* the peak of 50 in the logits is all the sampler can pick */
    for (int i = 1; i < 4; i++)
        assert_int_equal(rep.side[0].tokens[i],
                         (rep.side[0].tokens[i - 1] * 31 + (6 + i - 1) * 7 + 3) % 512);
    assert_non_null(strstr(out, "device                 cuda, Fake GPU; decode: graph"));
    free(out);
    taste_report_free(&rep);
}

/* Decode without the graph: the JSON says "stream" and why apart. */
static void test_stream_path(void **st)
{
    (void)st;
    setenv("FAKE_DECODE_PATH", "stream (no graph: capture: operation not permitted (x))", 1);
    taste_opts_t o = taste_defaults();
    o.device = "cuda";
    o.no_sandbox = 1;          /* the sandbox would scrub FAKE_DECODE_PATH */
    o.gen.max_new = 2;
    o.json = 1;
    taste_report_t rep;
    char err[1024] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    unsetenv("FAKE_DECODE_PATH");
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "decode_path")), "stream");
    assert_string_equal(json_string_value(json_object_get(j, "decode_path_note")),
                        "no graph: capture: operation not permitted (x)");
    json_decref(j);
    free(out);
    taste_report_free(&rep);
}

static void test_errors(void **st)
{
    (void)st;
    taste_report_t rep;
    char err[2048] = "";
    taste_opts_t o = taste_defaults();
    o.device = "cuda";
    o.kernel = fail_so;                 /* returns 7: the error says so */
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "returned 7 in layer 0"));

    o = taste_defaults();
    o.device = "cuda";
    o.kernel = "tests/data/engine/attn_online.c";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "is a C kernel; --device cuda takes CUDA C++ kernels"));

    setenv("FAKE_CREATE_FAILS", "1", 1);
    o = taste_defaults();
    o.device = "cuda";
    o.no_sandbox = 1;          /* the sandbox would scrub FAKE_CREATE_FAILS */
    free(run(&o, &rep, -1, err, sizeof err));
    unsetenv("FAKE_CREATE_FAILS");
    /* here there is no driver: the backend's probe names it; on a GPU host
     * the engine's own words stand */
    if (access("/dev/nvidiactl", F_OK) != 0)
        assert_non_null(strstr(err, "--device cuda: no NVIDIA driver"));
    else
        assert_non_null(strstr(err, "fake: no device"));

    o = taste_defaults();
    o.device = "tpu";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "unknown device 'tpu'"));
}

/* The default: the engine runs in the sandboxed child.  The tokens, the
 * labels and a kernel's error come back through the report pipe; the
 * child sees only the allow-listed environment (FAKE_CREATE_FAILS does not
 * reach the fake library, which would otherwise refuse to create); and it
 * runs as nobody when we are root. */
static void test_sandboxed_child(void **st)
{
    (void)st;
    reset_counters();
    setenv("FAKE_CREATE_FAILS", "1", 1);
    taste_opts_t o = taste_defaults();
    o.device = "cuda";
    o.prompt_tokens = 7;
    o.kernel = ok_so;
    o.gen.max_new = 5;
    o.json = 1;
    taste_report_t rep;
    char err[1024] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    unsetenv("FAKE_CREATE_FAILS");
    assert_int_equal(rep.n_sides, 2);
    assert_true(rep.agree);
    for (int s = 0; s < 2; s++)
        assert_int_equal(rep.side[s].n, 5);
    for (int i = 1; i < 5; i++)
        assert_int_equal(rep.side[1].tokens[i],
                         (rep.side[1].tokens[i - 1] * 31 + (7 + i - 1) * 7 + 3) % 512);
    assert_string_equal(rep.side[1].label, ok_so);
    assert_string_equal(rep.device_name, "Fake GPU");
    assert_true(rep.side[1].stats.ttft_s > 0);
    /* the work happened in the child, not here */
    assert_int_equal(counter("fake_creates"), 0);
    assert_int_equal(counter("fake_forwards"), 0);
    free(out);
    taste_report_free(&rep);

    o.kernel = fail_so;                /* a kernel's error, through the report */
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "returned 7 in layer 0"));
}

static void test_library_lookup(void **st)
{
    (void)st;
    char path[PATH_MAX], err[1024] = "", cwd[PATH_MAX];
    assert_int_equal(engine_cuda_library(path, sizeof path, err, sizeof err), 0);
    assert_string_equal(path, fake_so);                     /* $EMILE_ENGINE_CUDA */
    setenv("EMILE_ENGINE_CUDA", "/nonexistent/libx.so", 1);
    assert_int_equal(engine_cuda_library(path, sizeof path, err, sizeof err), -1);
    assert_non_null(strstr(err, "EMILE_ENGINE_CUDA=/nonexistent/libx.so: no such file"));
    taste_opts_t o = taste_defaults();
    o.device = "cuda";
    taste_report_t rep;
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "EMILE_ENGINE_CUDA=/nonexistent/libx.so"));
    /* unset, from a directory without build/: not found (this binary's
     * directory, build/test, has none either), and the message says how */
    unsetenv("EMILE_ENGINE_CUDA");
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    int rc = engine_cuda_library(path, sizeof path, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "make build/libemile-engine-cuda.so"));
    /* from the repository, build/ is looked at */
    if (access("build/libemile-engine-cuda.so", R_OK) == 0) {
        assert_int_equal(engine_cuda_library(path, sizeof path, err, sizeof err), 0);
        assert_string_equal(path, "build/libemile-engine-cuda.so");
    }
    setenv("EMILE_ENGINE_CUDA", fake_so, 1);
}

/* --kernel OP=K on cuda: the decode slots go to the library (set_ops, once
 * per side), its decode steps call them, the labels and the breakdown come
 * back; a failing op kernel is named; an engine library without op slots is
 * refused with a message. */
static void test_op_slots(void **st)
{
    (void)st;
    reset_counters();
    int *calls = dlsym(fake, "fake_op_calls");
    assert_non_null(calls);
    memset(calls, 0, ENGINE_OP_COUNT * sizeof *calls);
    *(int *)dlsym(fake, "fake_set_ops") = 0;
    taste_opts_t o = taste_defaults();
    o.device = "cuda";
    o.prompt_tokens = 5;
    o.gen.max_new = 6;
    o.op_kernel[ENGINE_OP_DECODE_ATTENTION] = op_ok_so;
    o.op_kernel[ENGINE_OP_LM_HEAD] = op_ok_so;
    o.breakdown = 1;
    o.json = 1;
    o.no_sandbox = 1;                  /* the counters are read from this process */
    taste_report_t rep;
    char err[1024] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    assert_int_equal(rep.n_sides, 2);
    assert_true(rep.agree);
    /* the kernel side: one warm-up prefill, the timed generation (5 decode
     * steps) and the breakdown's (5 more); 2 layers */
    assert_int_equal(calls[ENGINE_OP_DECODE_ATTENTION], 2 * 10);
    assert_int_equal(calls[ENGINE_OP_LM_HEAD], 10);
    assert_int_equal(calls[ENGINE_OP_QKV_PROJ], 0);
    /* the slots change twice (in for the kernel side, out for the next
     * reference... the reference side runs first with none) */
    assert_int_equal(*(int *)dlsym(fake, "fake_set_ops"), 1);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    json_t *r0 = json_array_get(json_object_get(j, "runs"), 0);
    json_t *r1 = json_array_get(json_object_get(j, "runs"), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r1, "ops"),
                                                          "decode_attention")), op_ok_so);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r1, "ops"),
                                                          "qkv_proj")), "builtin");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r0, "ops"),
                                                          "lm_head")), "builtin");
    /* the fake's breakdown: 10 ms a decode step, 1 ms an op, 4 ms other;
     * a prefill of 5 tokens in 5 ms, attention 2 */
    json_t *dec = json_object_get(json_object_get(r1, "breakdown"), "decode");
    assert_int_equal(json_integer_value(json_object_get(dec, "calls")), 5);
    assert_true(fabs(json_real_value(json_object_get(dec, "step_ms")) - 10) < 1e-9);
    json_t *ops = json_object_get(dec, "ops");
    assert_true(fabs(json_real_value(json_object_get(json_object_get(ops, "lm_head"), "ms")) - 1) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(json_object_get(ops, "other"), "ms")) - 4) < 1e-9);
    assert_null(json_object_get(ops, "attention"));
    json_t *pre = json_object_get(json_object_get(r0, "breakdown"), "prefill");
    assert_int_equal(json_integer_value(json_object_get(pre, "tokens")), 5);
    assert_true(fabs(json_real_value(json_object_get(json_object_get(json_object_get(pre, "ops"),
                                                                     "attention"), "share")) - 0.4) < 1e-9);
    json_decref(j);
    free(out);
    taste_report_free(&rep);

    /* a failing op kernel, named (in the sandboxed child, by default) */
    o = taste_defaults();
    o.device = "cuda";
    o.gen.max_new = 3;
    o.op_kernel[ENGINE_OP_QKV_PROJ] = op_fail_so;
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "qkv_proj kernel returned 9 in layer 0"));

    /* an engine library of before the op slots */
    setenv("EMILE_ENGINE_CUDA", old_so, 1);
    o = taste_defaults();
    o.device = "cuda";
    o.no_sandbox = 1;
    o.op_kernel[ENGINE_OP_GATE_UP] = op_ok_so;
    free(run(&o, &rep, -1, err, sizeof err));
    setenv("EMILE_ENGINE_CUDA", fake_so, 1);
    assert_non_null(strstr(err, "has no op slots"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_two_sides),
        cmocka_unit_test(test_sampling_and_table),
        cmocka_unit_test(test_stream_path),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_sandboxed_child),
        cmocka_unit_test(test_library_lookup),
        cmocka_unit_test(test_op_slots),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
