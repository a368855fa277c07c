/*
 * tokenizer.c -- encoding (added tokens, NFC, regex split, byte-level BPE)
 * and decoding (see tokenizer.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_private.h"

int tokenizer_n_tokens(const tokenizer_t *t)
{
    return t->n_tokens;
}

int tokenizer_token_id(const tokenizer_t *t, const char *text)
{
    return tok_lookup(t, text, strlen(text));
}

const char *tokenizer_token_bytes(const tokenizer_t *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n_tokens || !t->bytes[id])
        return NULL;
    *len = t->nbytes[id];
    return t->bytes[id];
}

char *tokenizer_decode(const tokenizer_t *t, const int *ids, int n, size_t *len)
{
    size_t total = 0, k;
    for (int i = 0; i < n; i++)
        if (tokenizer_token_bytes(t, ids[i], &k))
            total += k;
    char *s = malloc(total + 1), *p = s;
    if (!s)
        return NULL;
    for (int i = 0; i < n; i++) {
        const char *b = tokenizer_token_bytes(t, ids[i], &k);
        if (b) {
            memcpy(p, b, k);
            p += k;
        }
    }
    *p = '\0';
    if (len)
        *len = total;
    return s;
}

/* A growable array of ids. */
typedef struct ids {
    int *v;
    int n, cap;
} ids_t;

static int ids_push(ids_t *a, int id)
{
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 64;
        int *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

/* BPE over one piece: start from one token per byte, then merge the
 * adjacent pair of lowest rank (the leftmost on ties) until none merges. */
static int bpe(const tokenizer_t *t, const unsigned char *s, size_t n, int *sym, ids_t *out)
{
    if (t->ignore_merges) {
        /* the whole piece, spelled in the byte-level alphabet */
        char *u = malloc(2 * n + 1);
        size_t k = 0;
        if (!u)
            return -1;
        for (size_t i = 0; i < n; i++) {
            int cp = tok_byte_to_cp(s[i]);
            if (cp < 0x80) {
                u[k++] = (char)cp;
            } else {
                u[k++] = (char)(0xc0 | (cp >> 6));
                u[k++] = (char)(0x80 | (cp & 0x3f));
            }
        }
        int id = tok_lookup(t, u, k);
        free(u);
        if (id >= 0)
            return ids_push(out, id);
    }
    size_t m = n;
    for (size_t i = 0; i < n; i++)
        sym[i] = t->byte_id[s[i]];
    while (m > 1) {
        uint64_t best = UINT64_MAX, v;
        size_t at = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            uint64_t key = (uint64_t)sym[i] << 32 | (uint32_t)sym[i + 1];
            if (hashtab_get(&t->merges, key, &v) && v < best) {
                best = v;           /* rank in the high half: smaller rank wins */
                at = i;
            }
        }
        if (best == UINT64_MAX)
            break;
        sym[at] = (int)(uint32_t)best;
        memmove(sym + at + 1, sym + at + 2, (m - at - 2) * sizeof *sym);
        m--;
    }
    for (size_t i = 0; i < m; i++)
        if (ids_push(out, sym[i]) != 0)
            return -1;
    return 0;
}

/* A piece of the segment being pre-tokenized: [off, off + len). */
typedef struct span {
    size_t off, len;
} span_t;

typedef struct spans {
    span_t *v;
    size_t n, cap;
} spans_t;

static int spans_push(spans_t *a, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        span_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = (span_t){ off, len };
    return 0;
}

/* Split every span of in by re, "Isolated": matches and the gaps between
 * them all become spans of out, in order.  Each span is its own subject, so
 * lookaheads stop at its end, as in the tokenizers library. */
static int split_spans(const pcre2_code *re, const unsigned char *s, const spans_t *in,
                       spans_t *out)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const unsigned char *subj = s + in->v[i].off;
        size_t len = in->v[i].len, at = 0, gap = 0;
        while (at < len && rc == 0) {
            int m = pcre2_match(re, subj, len, at, 0, md, NULL);
            if (m < 0)
                break;                       /* no more matches (or an error) */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t b = ov[0], e = ov[1];
            rc = spans_push(out, in->v[i].off + gap, b - gap);
            if (rc == 0)
                rc = spans_push(out, in->v[i].off + b, e - b);
            gap = e;
            at = e > b ? e : e + 1;          /* never loop on an empty match */
        }
        if (rc == 0 && gap < len)
            rc = spans_push(out, in->v[i].off + gap, len - gap);
    }
    pcre2_match_data_free(md);
    return rc;
}

/* Encode one segment that holds no added token. */
static int encode_segment(const tokenizer_t *t, const char *text, size_t len, ids_t *out)
{
    if (len == 0)
        return 0;
    unsigned char *norm = NULL;
    const unsigned char *s = (const unsigned char *)text;
    size_t nlen;
    /* invalid UTF-8 (or no memory) makes it fail: then the bytes go on as
     * they are */
    if (t->nfc && tok_nfc(s, len, &norm, &nlen) == 0) {
        s = norm;
        len = nlen;
    }
    unsigned char *buf = NULL;
    if (t->add_prefix_space && s[0] != ' ') {
        buf = malloc(len + 1);
        if (!buf) {
            free(norm);
            return -1;
        }
        buf[0] = ' ';
        memcpy(buf + 1, s, len);
        s = buf;
        len++;
    }
    spans_t a = { 0 }, b = { 0 };
    int rc = spans_push(&a, 0, len);
    for (int i = 0; i < t->n_splits && rc == 0; i++) {
        b.n = 0;
        rc = split_spans(t->split[i], s, &a, &b);
        spans_t tmp = a;
        a = b;
        b = tmp;
    }
    size_t longest = 0;
    for (size_t i = 0; i < a.n; i++)
        if (a.v[i].len > longest)
            longest = a.v[i].len;
    int *sym = malloc((longest ? longest : 1) * sizeof *sym);
    if (!sym)
        rc = -1;
    for (size_t i = 0; i < a.n && rc == 0; i++)
        rc = bpe(t, s + a.v[i].off, a.v[i].len, sym, out);
    free(sym);
    free(a.v);
    free(b.v);
    free(buf);
    free(norm);
    return rc;
}

/* The added token at text[0..len), longest first, or NULL. */
static const tok_added_t *added_at(const tokenizer_t *t, const char *text, size_t len)
{
    for (int i = 0; i < t->n_added; i++) {
        const tok_added_t *a = &t->added[i];
        if (a->len <= len && memcmp(text, a->content, a->len) == 0)
            return a;
    }
    return NULL;
}

int tokenizer_encode(const tokenizer_t *t, const char *text, size_t len, int **ids,
                     char *err, size_t errlen)
{
    *ids = NULL;
    ids_t out = { 0 };
    size_t seg = 0, i = 0;
    int rc = 0;
    /* leftmost, then longest, added token; the text between goes through
     * normalisation, pre-tokenization and BPE */
    while (i < len && rc == 0) {
        const tok_added_t *a = added_at(t, text + i, len - i);
        if (!a) {
            i++;
            continue;
        }
        rc = encode_segment(t, text + seg, i - seg, &out);
        if (rc == 0)
            rc = ids_push(&out, a->id);
        i += a->len;
        seg = i;
    }
    if (rc == 0)
        rc = encode_segment(t, text + seg, len - seg, &out);
    if (rc != 0) {
        free(out.v);
        snprintf(err, errlen, "tokenizer: out of memory");
        return -1;
    }
    *ids = out.v;
    return out.n;
}
