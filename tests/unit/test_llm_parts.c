/*
 * test_llm_parts.c -- the LLM agents' pure pieces: the SDK retry rule and
 * delay, Retry-After parsing, fenced-code extraction and elision, the
 * iteration line, the price table, config checking and endpoint joining.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/llm/llm.h"

static void test_should_retry(void **state)
{
    (void)state;
    assert_true(llm_http_should_retry(408, ""));
    assert_true(llm_http_should_retry(409, ""));
    assert_true(llm_http_should_retry(429, ""));
    assert_true(llm_http_should_retry(500, ""));
    assert_true(llm_http_should_retry(529, NULL));
    assert_false(llm_http_should_retry(400, ""));
    assert_false(llm_http_should_retry(401, ""));
    assert_false(llm_http_should_retry(403, ""));
    assert_false(llm_http_should_retry(404, ""));
    assert_false(llm_http_should_retry(200, ""));
    /* The header wins both ways. */
    assert_true(llm_http_should_retry(400, "true"));
    assert_false(llm_http_should_retry(529, "false"));
}

static void test_retry_delay(void **state)
{
    (void)state;
    llm_http_conf_t c;
    llm_http_conf_default(&c);
    assert_true(c.max_retries == 2 && c.backoff_base_s == 0.5 && c.backoff_max_s == 8.0);
    /* A hint in (0, 60] is used as it is. */
    assert_true(llm_http_retry_delay(0, 3.0, &c, 0.9) == 3.0);
    assert_true(llm_http_retry_delay(5, 60.0, &c, 0.0) == 60.0);
    /* Beyond 60 s, zero or absent: exponential backoff with jitter. */
    assert_true(llm_http_retry_delay(0, 61.0, &c, 0.0) == 0.5);
    assert_true(llm_http_retry_delay(1, -1, &c, 0.0) == 1.0);
    assert_true(llm_http_retry_delay(2, 0, &c, 0.0) == 2.0);
    assert_true(llm_http_retry_delay(10, -1, &c, 0.0) == 8.0);     /* capped */
    double j = llm_http_retry_delay(1, -1, &c, 0.999);
    assert_true(j > 0.75 && j < 1.0);                               /* 1 - 0.25 U */
}

static void test_parse_retry_after(void **state)
{
    (void)state;
    assert_true(llm_http_parse_retry_after("12") == 12.0);
    assert_true(llm_http_parse_retry_after(" 1.5 ") == 1.5);
    assert_true(llm_http_parse_retry_after("abc") == -1);
    assert_true(llm_http_parse_retry_after("") == -1);
    assert_true(llm_http_parse_retry_after(NULL) == -1);
    /* An HTTP date 30 s from now. */
    char buf[64];
    time_t t = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    double s = llm_http_parse_retry_after(buf);
    assert_true(s > 27 && s <= 31);
}

static void test_fence_extract(void **state)
{
    (void)state;
    char *k = llm_fence_extract("Try this:\n```c\n#include \"emile.h\"\nint emile_kernel"
                                "(void) { return 0; }\n```\nIt should be fast.");
    assert_non_null(k);
    assert_string_equal(k, "#include \"emile.h\"\nint emile_kernel(void) { return 0; }\n");
    free(k);
    /* The last kernel block wins; a snippet without the entry point and a
     * shell block are not kernels. */
    k = llm_fence_extract("```c\nint emile_kernel(){return 1;}\n```\n"
                          "```bash\nemile_kernel\n```\n"
                          "```cuda\n__global__ void f();\nint emile_kernel(){return 2;}\n```\n"
                          "```c\nfloat x = 1;\n```\n");
    assert_non_null(k);
    assert_non_null(strstr(k, "return 2"));
    free(k);
    /* A block cut in the middle (no closing fence) is not a proposal. */
    assert_null(llm_fence_extract("```c\nint emile_kernel(void) {\n  for (;;"));
    assert_null(llm_fence_extract("no code at all"));
    assert_null(llm_fence_extract(NULL));
}

static void test_fence_elide(void **state)
{
    (void)state;
    char *e = llm_fence_elide("before\n```c\nint emile_kernel(){}\n```\nafter\n", "[gone]");
    assert_string_equal(e, "before\n```c\n[gone]\n```\nafter\n");
    free(e);
    e = llm_fence_elide("no fences", "[gone]");
    assert_string_equal(e, "no fences");
    free(e);
}

static void test_iteration_line(void **state)
{
    (void)state;
    json_t *it = json_pack("{s:i, s:s, s:s, s:f, s:f, s:f, s:f, s:{s:s, s:[{s:s, s:s}]}}",
                           "iter", 3, "label", "tiled", "status", "valid", "time_ms", 12.1,
                           "gflops", 22.1, "roofline_pct", 14.7, "speedup", 1.8,
                           "report", "bound", "compute", "diagnosis", "tag",
                           "single_threaded", "detail", "parallelism 1.0");
    char *l = llm_iteration_line(it);
    assert_string_equal(l, "iter 3 \"tiled\": valid, 12.1 ms, 22.1 GFLOP/s, 14.7% of "
                           "roofline (compute bound), 1.8x the reference; diagnosis: "
                           "single_threaded (parallelism 1.0)");
    free(l);
    json_decref(it);
    it = json_pack("{s:i, s:s, s:s}", "iter", 4, "status", "compile_error", "error",
                   "k.c:3: error: expected ';'\nk.c:9: error: more");
    l = llm_iteration_line(it);
    assert_string_equal(l, "iter 4: compile_error: k.c:3: error: expected ';'");
    free(l);
    json_decref(it);
}

static void test_prices(void **state)
{
    (void)state;
    double in, out;
    assert_int_equal(llm_price("claude-opus-4-1-20250805", &in, &out), 1);
    assert_true(in == 15.0 && out == 75.0);
    /* The longest prefix wins: opus 4.5 is not opus 4. */
    assert_int_equal(llm_price("claude-opus-4-5", &in, &out), 1);
    assert_true(in == 5.0 && out == 25.0);
    assert_int_equal(llm_price("gpt-4o-mini-2024-07-18", &in, &out), 1);
    assert_true(in == 0.15 && out == 0.60);
    assert_int_equal(llm_price("qwen3-coder:30b", &in, &out), 0);
    assert_true(in == 0 && out == 0);
    llm_conf_t c;
    char err[256];
    json_t *cfg = json_pack("{s:s, s:f, s:f}", "model", "mine", "price_in_per_mtok", 1.0,
                            "price_out_per_mtok", 2.0);
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), 0);
    assert_true(llm_cost_usd(&c, 1000000, 500000) == 2.0);
    json_decref(cfg);
}

static void test_config(void **state)
{
    (void)state;
    llm_conf_t c;
    char err[256];
    assert_int_equal(llm_conf_parse(&llm_provider_anthropic, NULL, &c, err, sizeof err), 0);
    assert_string_equal(c.url, "https://api.anthropic.com/v1/messages");
    assert_string_equal(c.key_env, "ANTHROPIC_API_KEY");
    assert_int_equal(c.max_tokens, 8192);
    json_t *cfg = json_pack("{s:s}", "base_url", "http://proxy:9000/v1/");
    assert_int_equal(llm_conf_parse(&llm_provider_anthropic, cfg, &c, err, sizeof err), 0);
    assert_string_equal(c.url, "http://proxy:9000/v1/messages");
    json_decref(cfg);
    cfg = json_pack("{s:s}", "base_url", "http://127.0.0.1:11434");
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), 0);
    assert_string_equal(c.url, "http://127.0.0.1:11434/v1/chat/completions");
    json_decref(cfg);
    cfg = json_pack("{s:s}", "base_url", "http://gpu1:8000/openai/v1");
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), 0);
    assert_string_equal(c.url, "http://gpu1:8000/openai/v1/chat/completions");
    json_decref(cfg);
    /* Typos, wrong types, keys in files and odd URLs are errors. */
    cfg = json_pack("{s:i}", "max_token", 5);
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_token"));
    json_decref(cfg);
    cfg = json_pack("{s:s}", "max_tokens", "lots");
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), -1);
    json_decref(cfg);
    cfg = json_pack("{s:s}", "api_key", "sk-x");
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "OPENAI_API_KEY"));
    json_decref(cfg);
    cfg = json_pack("{s:s}", "base_url", "ftp://x");
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), -1);
    json_decref(cfg);
    cfg = json_pack("{s:f, s:i, s:f, s:i}", "timeout_s", 30.0, "max_retries", 7,
                    "temperature", 0.0, "token_budget", 2000000);
    assert_int_equal(llm_conf_parse(&llm_provider_anthropic, cfg, &c, err, sizeof err), 0);
    assert_true(c.http.timeout_s == 30.0);
    assert_int_equal(c.http.max_retries, 7);
    assert_int_equal(c.has_temperature, 1);
    assert_true(c.token_budget == 2000000);
    json_decref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_should_retry),
        cmocka_unit_test(test_retry_delay),
        cmocka_unit_test(test_parse_retry_after),
        cmocka_unit_test(test_fence_extract),
        cmocka_unit_test(test_fence_elide),
        cmocka_unit_test(test_iteration_line),
        cmocka_unit_test(test_prices),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
