/*
 * test_engine_taste.c -- the Tasting Room on the tiny shape: the same
 * model with the built-in attention and with a kernel compiled from
 * tests/data/engine, side by side; agreement and divergence reported.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/taste.h"

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
    o.random_shape = "qwen3-7b";
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "unknown shape"));
    o = taste_defaults();
    o.prompt = "hi";
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "needs a tokenizer"));
    o = taste_defaults();
    o.kernel = "/nonexistent/kernel.so";
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/kernel.so"));
    o = taste_defaults();
    o.kernel = "tests/data/engine/attn_fail.c";
    free(run(&o, &rep, -1, err, sizeof err));
    assert_non_null(strstr(err, "returned 7"));

    char *help[] = { "taste", "--help" }, *bad[] = { "taste", "--bogus" };
    char *shape[] = { "taste", "--random", "nope", "--quiet" };
    char *nov[] = { "taste", "--max-new" }, *neg[] = { "taste", "--top-p", "2" };
    assert_int_equal(engine_cli_taste(2, help), 0);
    assert_int_equal(engine_cli_taste(2, bad), 2);
    assert_int_equal(engine_cli_taste(2, nov), 2);
    assert_int_equal(engine_cli_taste(3, neg), 2);
    assert_int_equal(engine_cli_taste(4, shape), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_tokens),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_text_prompt),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
