/*
 * test_engine_taste.c -- the Tasting Room on the tiny shape: the same
 * model with the built-in attention and with a kernel compiled from
 * tests/data/engine, side by side; agreement and divergence reported; the
 * prompt given as a file of ids.  (The cuda device: test_taste_cuda.c;
 * kernels from runs of a store: tests/integration/taste_runs.sh.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/qwen3.h"
#include "taste/taste.h"
#include "taste/taste_prompt.h"
#include "util/fs.h"

/* Run o, returning what it printed (caller frees). */
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

static void test_same_tokens(void **st)
{
    (void)st;
    taste_opts_t o = taste_defaults();
    o.kernel = "tests/data/engine/attn_online.c";   /* compiled by taste_run */
    o.gen.max_new = 12;
    taste_report_t rep;
    char err[512] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    assert_int_equal(rep.n_sides, 2);
    assert_int_equal(rep.n_prompt, 32);
    assert_int_equal(rep.side[0].n, 12);
    assert_int_equal(rep.side[1].n, 12);
    assert_true(rep.agree);
    assert_int_equal(rep.first_divergence, -1);
    assert_string_equal(rep.side[0].label, "builtin");
    assert_string_equal(rep.side[1].label, o.kernel);
    assert_true(rep.side[0].stats.ttft_s > 0 && rep.side[1].stats.decode_tok_s > 0);
    assert_non_null(strstr(out, "same tokens            yes, all 12 tokens"));
    assert_non_null(strstr(out, "TTFT (ms)"));
    free(out);
    taste_report_free(&rep);
}

static void test_divergence(void **st)
{
    (void)st;
    taste_opts_t o = taste_defaults();
    o.model_dir = "tests/data/qwen3-tiny";
    o.kernel = "tests/data/engine/attn_loud.c";
    o.gen.max_new = 8;
    o.prompt_tokens = 20;
    o.json = 1;
    taste_report_t rep;
    char err[512] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    assert_false(rep.agree);
    assert_int_equal(rep.first_divergence, 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_tokens")), 20);
    assert_true(json_is_false(json_object_get(j, "agree")));
    assert_int_equal(json_integer_value(json_object_get(j, "first_divergence")), 0);
    json_t *runs = json_object_get(j, "runs");
    assert_int_equal(json_array_size(runs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(runs, 1), "attention")),
                        o.kernel);
    json_decref(j);
    free(out);
    taste_report_free(&rep);
}

static void test_text_prompt(void **st)
{
    (void)st;
    taste_opts_t o = taste_defaults();
    o.model_dir = "tests/data/qwen3-tiny";
    o.tokenizer = "tests/data/tokenizer/mini.json";
    o.prompt = "hello world";
    o.chat = 0;
    o.gen.max_new = 4;
    taste_report_t rep;
    char err[512] = "";
    char *out = run(&o, &rep, 0, err, sizeof err);
    assert_int_equal(rep.n_prompt, 4);           /* hello, Gwor, l, d */
    assert_int_equal(rep.n_sides, 1);
    assert_non_null(strstr(out, "--- builtin"));
    free(out);
    taste_report_free(&rep);
}

static void test_errors(void **st)
{
    (void)st;
    char err[512] = "";
    taste_report_t rep;
    taste_opts_t o = taste_defaults();
    o.random_shape = "qwen3-7b";        /* bad input: TASTE_BAD_INPUT, exit 2 */
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "unknown shape"));
    o = taste_defaults();
    o.prompt = "hi";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "needs a tokenizer"));
    o = taste_defaults();
    o.kernel = "/nonexistent/kernel.so";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/kernel.so"));
    o = taste_defaults();
    o.kernel = "tests/data/engine/attn_fail.c";      /* a failure, not bad input */
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "returned 7"));
    /* a prompt longer than the context asked for */
    o = taste_defaults();
    o.context = 8;
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "a prompt of 32 tokens does not fit a context of 8"));
    /* bad input named after a kernel that compiles: refused before it is built */
    o = taste_defaults();
    o.reference = "kernels/attention/cpu/reference.c";
    o.kernel = "kernels/attention/cuda/reference.cu";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "is a CUDA C++ kernel"));

    char *help[] = { "taste", "--help" }, *bad[] = { "taste", "--bogus" };
    char *shape[] = { "taste", "--random", "nope", "--quiet" };
    char *nov[] = { "taste", "--max-new" }, *neg[] = { "taste", "--top-p", "2" };
    assert_int_equal(engine_cli_taste(2, help), 0);
    assert_int_equal(engine_cli_taste(2, bad), 2);
    assert_int_equal(engine_cli_taste(2, nov), 2);
    assert_int_equal(engine_cli_taste(3, neg), 2);
    assert_int_equal(engine_cli_taste(4, shape), 2);     /* bad input, not a failure */
    char *missing[] = { "taste", "--kernel", "/nonexistent/k.c" };
    assert_int_equal(engine_cli_taste(3, missing), 2);
    char *broken[] = { "taste", "--kernel", "tests/data/engine/attn_fail.c", "--quiet",
                       "--max-new", "2" };
    assert_int_equal(engine_cli_taste(6, broken), 1);    /* ran, and the kernel failed */
}

/* The kernels run in the worker's sandbox (taste_engine.h): a kernel that
 * writes a file or starts a process is stopped with the call named, and
 * nothing of what it tried happens; a kernel sees no secret from our
 * environment and, when we are root, is not root. */
static void test_sandbox(void **st)
{
    (void)st;
    char err[1024] = "";
    taste_report_t rep;
    const char *escaped = "/tmp/emile-taste-sandbox-escape";
    const char *spawned = "/tmp/emile-taste-sandbox-spawned";
    unlink(escaped);
    unlink(spawned);

    taste_opts_t o = taste_defaults();
    o.kernel = "tests/data/engine/attn_writes_file.c";
    o.gen.max_new = 3;
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "forbidden system call: openat (for writing)"));
    assert_int_equal(access(escaped, F_OK), -1);

    o.kernel = "tests/data/engine/attn_spawns.c";
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "forbidden system call"));
    assert_int_equal(access(spawned, F_OK), -1);

    setenv("EMILE_TEST_SECRET", "sk-do-not-leak", 1);
    o.kernel = "tests/data/engine/attn_snoops.c";
    char *out = run(&o, &rep, 0, err, sizeof err);
    assert_true(rep.agree);
    assert_int_equal(rep.side[1].n, 3);
    free(out);
    taste_report_free(&rep);

    /* a report forged by the kernel is not believed */
    o.kernel = "tests/data/engine/attn_forges.c";
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "does not fit the tasting"));

    /* the child holds nothing of ours: open a file here first */
    FILE *mine = fopen("tests/data/engine/attn_online.c", "r");
    assert_non_null(mine);
    o.kernel = "tests/data/engine/attn_fds.c";
    out = run(&o, &rep, 0, err, sizeof err);
    fclose(mine);
    assert_true(rep.agree);
    free(out);
    taste_report_free(&rep);

    /* each side in its own child: the candidate is loaded after the
     * reference's side has run (with the tokenizer, sides print headers) */
    taste_opts_t p = taste_defaults();
    p.model_dir = "tests/data/qwen3-tiny";
    p.tokenizer = "tests/data/tokenizer/mini.json";
    p.prompt = "hello world";
    p.chat = 0;
    p.kernel = "tests/data/engine/attn_ctor_says.c";
    p.gen.max_new = 3;
    out = run(&p, &rep, 0, err, sizeof err);
    const char *ref = strstr(out, "--- builtin"), *loaded = strstr(out, "CANDIDATE-LOADED");
    assert_non_null(ref);
    assert_non_null(loaded);
    assert_true(loaded > ref);
    assert_true(rep.agree);
    free(out);
    taste_report_free(&rep);

    /* --no-sandbox: the same kernel in this process sees the secret (and
     * says so with its return code), as the option's help warns */
    o.kernel = "tests/data/engine/attn_snoops.c";
    o.no_sandbox = 1;
    free(run(&o, &rep, -1, err, sizeof err));
    unsetenv("EMILE_TEST_SECRET");
    assert_non_null(strstr(err, "returned 11"));
}

static void test_parse_ids(void **st)
{
    (void)st;
    char err[512] = "";
    int *ids = NULL;
    assert_int_equal(taste_parse_ids(" 7 0\n511\t\r\n42 ", "f", 512, &ids, err, sizeof err), 4);
    int want[4] = { 7, 0, 511, 42 };
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    assert_int_equal(taste_parse_ids("1 512", "f", 512, &ids, err, sizeof err), TASTE_BAD_INPUT);
    assert_string_equal(err, "f: id 2, 512, is outside the model's vocabulary (0..511)");
    const char *bad[] = { "1 x", "1 -3", "+4", "12abc", "3.5", "99999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(taste_parse_ids(bad[i], "f", 512, &ids, err, sizeof err),
                         TASTE_BAD_INPUT);
        if (!strstr(err, "is not a token id") && !strstr(err, "outside"))
            fail_msg("'%s': %s", bad[i], err);
    }
    assert_int_equal(taste_parse_ids(" \n\t", "f", 512, &ids, err, sizeof err),
                     TASTE_BAD_INPUT);
    assert_string_equal(err, "f holds no token ids");
}

/* A file holding the synthetic prompt's ids gives the synthetic prompt's
 * generation; ids outside the vocabulary or no file are errors. */
static void test_prompt_ids_file(void **st)
{
    (void)st;
    char dir[4096], path[4200], err[512] = "";
    assert_int_equal(fs_mkdtemp("emile-test-ids-", dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/ids.txt", dir);
    taste_opts_t o = taste_defaults();
    o.gen.max_new = 6;
    o.prompt_tokens = 10;
    o.quiet = 1;
    taste_report_t syn, fromfile;
    free(run(&o, &syn, 0, err, sizeof err));
    char text[512] = "";
    uint64_t key = qwen3_random_key(o.weight_seed, "prompt");
    for (int i = 0; i < 10; i++) {          /* the draw of taste_prompt_ids */
        float u = qwen3_random_uniform(key, (uint64_t)i);
        snprintf(text + strlen(text), sizeof text - strlen(text), "%d%s",
                 (int)((u + 1.0f) * 0.5f * 511.0f), i % 3 == 2 ? "\n" : " ");
    }
    assert_int_equal(fs_write_file(path, text, strlen(text)), 0);
    o.prompt_ids = path;
    o.prompt_tokens = 3;                    /* ignored: the file wins */
    free(run(&o, &fromfile, 0, err, sizeof err));
    assert_int_equal(fromfile.n_prompt, 10);
    assert_int_equal(fromfile.side[0].n, 6);
    assert_memory_equal(fromfile.side[0].tokens, syn.side[0].tokens, 6 * sizeof(int));
    taste_report_free(&syn);
    taste_report_free(&fromfile);

    assert_int_equal(fs_write_file(path, "5 9 512", 7), 0);
    free(run(&o, &fromfile, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "id 3, 512, is outside the model's vocabulary"));
    o.prompt = "hi";
    free(run(&o, &fromfile, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "not both"));
    o.prompt = NULL;
    o.prompt_ids = "/nonexistent/ids.txt";
    free(run(&o, &fromfile, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "cannot read /nonexistent/ids.txt"));
    char *both[] = { "taste", "--prompt", "x", "--prompt-ids", path };
    char *dev[] = { "taste", "--device", "gpu" };
    assert_int_equal(engine_cli_taste(5, both), 2);
    assert_int_equal(engine_cli_taste(3, dev), 2);
    fs_rm_rf(dir);
}

/* A CUDA kernel on the cpu device, and files that are no kernels. */
static void test_kernel_kinds(void **st)
{
    (void)st;
    char err[512] = "";
    taste_report_t rep;
    taste_opts_t o = taste_defaults();
    o.kernel = "kernels/attention/cuda/reference.cu";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "is a CUDA C++ kernel; --device cpu takes C kernels (try --device cuda)"));
    o.kernel = "README.md";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "a kernel is a .c, .cu or .so file, or a run id"));
    o.kernel = "tests/data/engine/no_such_kernel.c";
    free(run(&o, &rep, TASTE_BAD_INPUT, err, sizeof err));
    assert_non_null(strstr(err, "no such kernel file"));
    o.kernel = NULL;
    o.reference = "kernels/attention/cpu/reference.c";   /* compiled, as the reference */
    o.gen.max_new = 3;
    o.quiet = 1;
    char *out = run(&o, &rep, 0, err, sizeof err);
    assert_string_equal(rep.side[0].label, "kernels/attention/cpu/reference.c");
    assert_non_null(strstr(out, "device                 cpu"));
    free(out);
    taste_report_free(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ids),
        cmocka_unit_test(test_prompt_ids_file),
        cmocka_unit_test(test_kernel_kinds),
        cmocka_unit_test(test_same_tokens),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_text_prompt),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_sandbox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
