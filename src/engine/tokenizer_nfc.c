/*
 * tokenizer_nfc.c -- NFC as the tokenizers library computes it.
 *
 * The library's normalizer (the unicode-normalization-alignments crate)
 * carries Unicode tables older than utf8proc's: 108 combining marks added
 * since (Unicode 10.0 to 15.0: U+07FD, U+1AC0..., U+1DF6..., Wancho,
 * Nyiakeng Puachue Hmong, Sogdian ...) are starters to it, so it never
 * reorders them, and it does not compose U+11935 + U+11930 into U+11938
 * (Dives Akuru, 13.0).  Unicode's NFC, which utf8proc follows, gives
 * "U+2DF3 U+1DF9" back as "U+1DF9 U+2DF3"; the library leaves it, and the
 * model was trained on what the library gives.  So the code points below
 * are copied as they are, and utf8proc normalizes the text between them:
 * that is what the library's NFC does with a starter it has no data for.
 * tests/integration/tokenizer_check.sh compares the result with the
 * library's on every code point (test_engine_tokenizer, EMILE_TOKENIZER_CLASSES).
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "engine/tokenizer_private.h"

/* Code points utf8proc (Unicode 15.0) normalizes and the library does not. */
static const int32_t UNKNOWN_TO_LIBRARY[][2] = {
    { 0x7fd, 0x7fd }, { 0x898, 0x89f }, { 0x8ca, 0x8d3 }, { 0x9fe, 0x9fe },
    { 0xc3c, 0xc3c }, { 0xd3b, 0xd3c }, { 0xeba, 0xeba }, { 0x1715, 0x1715 },
    { 0x1abf, 0x1ace }, { 0x1df6, 0x1dfa }, { 0xa82c, 0xa82c }, { 0x10d24, 0x10d27 },
    { 0x10eab, 0x10eac }, { 0x10efd, 0x10eff }, { 0x10f46, 0x10f50 }, { 0x10f82, 0x10f85 },
    { 0x11070, 0x11070 }, { 0x1133b, 0x1133b }, { 0x1145e, 0x1145e }, { 0x11839, 0x1183a },
    { 0x11930, 0x11930 }, { 0x1193d, 0x1193e }, { 0x11943, 0x11943 }, { 0x119e0, 0x119e0 },
    { 0x11a34, 0x11a34 }, { 0x11a47, 0x11a47 }, { 0x11a99, 0x11a99 }, { 0x11d42, 0x11d42 },
    { 0x11d44, 0x11d45 }, { 0x11d97, 0x11d97 }, { 0x11f41, 0x11f42 }, { 0x16ff0, 0x16ff1 },
    { 0x1e08f, 0x1e08f }, { 0x1e130, 0x1e136 }, { 0x1e2ae, 0x1e2ae }, { 0x1e2ec, 0x1e2ef },
    { 0x1e4ec, 0x1e4ef },
};

static int unknown_to_library(int32_t cp)
{
    size_t lo = 0, hi = sizeof UNKNOWN_TO_LIBRARY / sizeof UNKNOWN_TO_LIBRARY[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < UNKNOWN_TO_LIBRARY[mid][0])
            hi = mid;
        else if (cp > UNKNOWN_TO_LIBRARY[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* A growing output. */
typedef struct obuf {
    unsigned char *v;
    size_t n, cap;
} obuf_t;

static int append(obuf_t *b, const unsigned char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = 2 * (b->n + n + 1);
        unsigned char *v = realloc(b->v, cap);
        if (!v)
            return -1;
        b->v = v;
        b->cap = cap;
    }
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = '\0';
    return 0;
}

/* Append the NFC of s[0..n); -1 when it is not UTF-8 or out of memory. */
static int append_nfc(obuf_t *b, const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t r = utf8proc_map(s, (utf8proc_ssize_t)n, &norm,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0)
        return -1;
    int rc = append(b, norm, (size_t)r);
    free(norm);
    return rc;
}

int tok_nfc(const unsigned char *s, size_t len, unsigned char **out, size_t *outlen)
{
    obuf_t b = { 0 };
    size_t span = 0;
    int rc = append(&b, s, 0);
    for (size_t i = 0; i < len && rc == 0;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (l < 1) {
            rc = -1;                          /* not UTF-8 */
            break;
        }
        if (unknown_to_library(cp)) {
            rc = append_nfc(&b, s + span, i - span);
            if (rc == 0)
                rc = append(&b, s + i, (size_t)l);
            span = i + (size_t)l;
        }
        i += (size_t)l;
    }
    if (rc == 0)
        rc = append_nfc(&b, s + span, len - span);
    if (rc != 0) {
        free(b.v);
        return -1;
    }
    *out = b.v;
    *outlen = b.n;
    return 0;
}
