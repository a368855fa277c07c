/*
 * tokenizer_load.c -- reading tokenizer.json into the tokenizer's tables:
 * vocabulary, merges by rank, added tokens, normalizer and pre-tokenizer.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_private.h"

/* GPT-2's pre-tokenizer regex, used by ByteLevel when use_regex is true. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Printable bytes keep their code point; the others (controls, space,
 * DEL, NBSP, soft hyphen) move to 256 + n in byte order, so that every
 * byte is a visible character in the vocabulary. */
static int printable(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

int tok_byte_to_cp(int byte)
{
    if (printable(byte))
        return byte;
    int n = 0;
    for (int b = 0; b < byte; b++)
        n += !printable(b);
    return 256 + n;
}

int tok_cp_to_byte(int cp)
{
    if (cp < 256)
        return printable(cp) ? cp : -1;
    int n = cp - 256;
    for (int b = 0; b < 256; b++)
        if (!printable(b) && n-- == 0)
            return b;
    return -1;
}

int tok_lookup(const tokenizer_t *t, const char *s, size_t len)
{
    uint64_t v;
    if (!hashtab_get(&t->by_text, hashtab_str(s, len), &v))
        return -1;
    const char *x = t->text[v];
    return strlen(x) == len && memcmp(x, s, len) == 0 ? (int)v : -1;
}

/* Decode one UTF-8 code point at s (n bytes left); its length, 0 if invalid. */
static int utf8_next(const unsigned char *s, size_t n, int *cp)
{
    if (n >= 1 && s[0] < 0x80) { *cp = s[0]; return 1; }
    if (n >= 2 && (s[0] & 0xe0) == 0xc0 && (s[1] & 0xc0) == 0x80) {
        *cp = ((s[0] & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if (n >= 3 && (s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
        *cp = ((s[0] & 0x0f) << 12) | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        return 3;
    }
    return 0;      /* the byte-level alphabet stops at U+0143: 4 bytes never occur */
}

/* The raw bytes a byte-level token stands for; -1 if text is not in the
 * byte-level alphabet (then the token's bytes are its text). */
static int bytelevel_decode(const char *text, char *out, size_t *outlen)
{
    size_t n = strlen(text), k = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        int cp, l = utf8_next(s + i, n - i, &cp);
        int b = l ? tok_cp_to_byte(cp) : -1;
        if (b < 0)
            return -1;
        out[k++] = (char)b;
        i += (size_t)l;
    }
    *outlen = k;
    return 0;
}

/* Record token id: its text, its bytes, and the text -> id entry. */
static int set_token(tokenizer_t *t, int id, const char *text, int bytelevel,
                     const char *path, char *err, size_t errlen)
{
    size_t n = strlen(text);
    if (t->text[id]) {
        if (strcmp(t->text[id], text) == 0)
            return 0;          /* an added token that is also in the vocabulary */
        snprintf(err, errlen, "%s: id %d is both '%s' and '%s'", path, id, t->text[id], text);
        return -1;
    }
    t->text[id] = strdup(text);
    t->bytes[id] = malloc(n + 1);
    if (!t->text[id] || !t->bytes[id]) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!bytelevel || bytelevel_decode(text, t->bytes[id], &t->nbytes[id]) != 0) {
        memcpy(t->bytes[id], text, n);
        t->nbytes[id] = n;
    }
    t->bytes[id][t->nbytes[id]] = '\0';
    uint64_t h = hashtab_str(text, n), old;
    if (hashtab_get(&t->by_text, h, &old)) {
        snprintf(err, errlen, "%s: tokens %d and %d collide in the hash table "
                 "('%s', '%s')", path, (int)old, id, t->text[old], text);
        return -1;
    }
    if (hashtab_put(&t->by_text, h, (uint64_t)id) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int largest_id(json_t *vocab, json_t *added)
{
    int mx = -1;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v)
        if (json_is_integer(v) && json_integer_value(v) > mx)
            mx = (int)json_integer_value(v);
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *id = json_object_get(v, "id");
        if (json_is_integer(id) && json_integer_value(id) > mx)
            mx = (int)json_integer_value(id);
    }
    return mx;
}

static int load_vocab(tokenizer_t *t, json_t *vocab, const char *path, char *err,
                      size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            snprintf(err, errlen, "%s: vocab entry '%s' has no valid id", path, k);
            return -1;
        }
        if (set_token(t, (int)json_integer_value(v), k, 1, path, err, errlen) != 0)
            return -1;
    }
    for (int b = 0; b < 256; b++) {
        int cp = tok_byte_to_cp(b);
        char u[3];
        size_t n = cp < 0x80 ? 1 : 2;    /* code points stay below 0x800 */
        if (n == 1) {
            u[0] = (char)cp;
        } else {
            u[0] = (char)(0xc0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3f));
        }
        t->byte_id[b] = tok_lookup(t, u, n);
        if (t->byte_id[b] < 0) {
            snprintf(err, errlen, "%s: vocab lacks the byte-level token of byte 0x%02x",
                     path, b);
            return -1;
        }
    }
    return 0;
}

static int load_merges(tokenizer_t *t, json_t *merges, const char *path, char *err,
                       size_t errlen)
{
    size_t rank;
    json_t *m;
    char buf[1024];
    json_array_foreach(merges, rank, m) {
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(m)) {             /* "a b" (older files) */
            const char *s = json_string_value(m), *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                snprintf(err, errlen, "%s: merge %zu is not \"a b\"", path, rank);
                return -1;
            }
            a = s; la = (size_t)(sp - s); b = sp + 1; lb = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {   /* ["a", "b"] */
            a = json_string_value(json_array_get(m, 0)); la = strlen(a);
            b = json_string_value(json_array_get(m, 1)); lb = strlen(b);
        } else {
            snprintf(err, errlen, "%s: merge %zu is neither \"a b\" nor [a, b]", path, rank);
            return -1;
        }
        if (la + lb >= sizeof buf) {
            snprintf(err, errlen, "%s: merge %zu is too long", path, rank);
            return -1;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int ia = tok_lookup(t, a, la), ib = tok_lookup(t, b, lb);
        int im = tok_lookup(t, buf, la + lb);
        if (ia < 0 || ib < 0 || im < 0) {
            snprintf(err, errlen, "%s: merge %zu ('%.*s' + '%.*s') names a token not in "
                     "the vocab", path, rank, (int)la, a, (int)lb, b);
            return -1;
        }
        uint64_t key = (uint64_t)ia << 32 | (uint32_t)ib, old;
        if (hashtab_get(&t->merges, key, &old))
            continue;                        /* the first (lowest) rank wins */
        if (hashtab_put(&t->merges, key, (uint64_t)rank << 32 | (uint32_t)im) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int by_length_desc(const void *a, const void *b)
{
    const tok_added_t *x = a, *y = b;
    return (x->len < y->len) - (x->len > y->len);
}

static int load_added(tokenizer_t *t, json_t *added, const char *path, char *err,
                      size_t errlen)
{
    size_t n = json_array_size(added), i;
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_t *a;
    json_array_foreach(added, i, a) {
        json_t *id = json_object_get(a, "id"), *c = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || !json_is_string(c) ||
            json_string_length(c) == 0) {
            snprintf(err, errlen, "%s: added_tokens[%zu] needs an id and a content", path, i);
            return -1;
        }
        const char *flags[] = { "lstrip", "rstrip", "single_word" };
        for (int f = 0; f < 3; f++)
            if (json_is_true(json_object_get(a, flags[f]))) {
                snprintf(err, errlen, "%s: unsupported: added token '%s' with %s", path,
                         json_string_value(c), flags[f]);
                return -1;
            }
        int tid = (int)json_integer_value(id);
        if (set_token(t, tid, json_string_value(c), 0, path, err, errlen) != 0)
            return -1;
        /* an added token's bytes are its text, even when the vocabulary has
         * the same entry in the byte-level alphabet */
        t->added[t->n_added].content = t->text[tid];
        t->added[t->n_added].len = strlen(t->text[tid]);
        t->added[t->n_added].id = tid;
        t->n_added++;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, by_length_desc);
    return 0;
}

static int add_split(tokenizer_t *t, const char *pattern, int literal, const char *path,
                     char *err, size_t errlen)
{
    if (t->n_splits == TOK_MAX_SPLITS) {
        snprintf(err, errlen, "%s: more than %d Split pre-tokenizers", path, TOK_MAX_SPLITS);
        return -1;
    }
    int ec;
    PCRE2_SIZE eo;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
                    (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &ec,
                                   &eo, NULL);
    if (re && !literal) {
        /* the pattern as the file gives it is valid (errors name offsets in
         * it); what runs is the one with the tokenizers library's classes,
         * unless a construct the rewrite does not know made it invalid */
        char *adapted = tok_regex_adapt(pattern);
        pcre2_code *re2 = adapted ? pcre2_compile((PCRE2_SPTR)adapted, PCRE2_ZERO_TERMINATED,
                                                  opts, &ec, &eo, NULL) : NULL;
        free(adapted);
        if (re2) {
            pcre2_code_free(re);
            re = re2;
        }
    }
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "%s: pre-tokenizer regex, offset %zu: %s", path, (size_t)eo,
                 (const char *)msg);
        return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* optional: falls back to the interpreter */
    t->split[t->n_splits++] = re;
    return 0;
}

/* One element of the pre-tokenizer: Split or ByteLevel. */
static int load_pretok_one(tokenizer_t *t, json_t *p, const char *path, char *err,
                           size_t errlen)
{
    const char *type = json_string_value(json_object_get(p, "type"));
    if (type && strcmp(type, "ByteLevel") == 0) {
        t->add_prefix_space = json_is_true(json_object_get(p, "add_prefix_space"));
        json_t *ur = json_object_get(p, "use_regex");
        if (!ur || json_is_true(ur))
            return add_split(t, GPT2_PATTERN, 0, path, err, errlen);
        return 0;
    }
    if (type && strcmp(type, "Split") == 0) {
        json_t *pat = json_object_get(p, "pattern");
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!beh || strcmp(beh, "Isolated") != 0 ||
            json_is_true(json_object_get(p, "invert"))) {
            snprintf(err, errlen, "%s: unsupported: Split with behavior %s%s", path,
                     beh ? beh : "(none)",
                     json_is_true(json_object_get(p, "invert")) ? " inverted" : "");
            return -1;
        }
        json_t *re = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
        if (json_is_string(re))
            return add_split(t, json_string_value(re), 0, path, err, errlen);
        if (json_is_string(lit))
            return add_split(t, json_string_value(lit), 1, path, err, errlen);
        snprintf(err, errlen, "%s: Split without a Regex or String pattern", path);
        return -1;
    }
    snprintf(err, errlen, "%s: unsupported: pre_tokenizer %s", path, type ? type : "(no type)");
    return -1;
}

static int load_pipeline(tokenizer_t *t, json_t *root, const char *path, char *err,
                         size_t errlen)
{
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *type = json_string_value(json_object_get(norm, "type"));
        if (!type || strcmp(type, "NFC") != 0) {
            snprintf(err, errlen, "%s: unsupported: normalizer %s", path, type ? type : "?");
            return -1;
        }
        t->nfc = 1;
    }
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (pre && !json_is_null(pre)) {
        const char *type = json_string_value(json_object_get(pre, "type"));
        if (type && strcmp(type, "Sequence") == 0) {
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(pre, "pretokenizers"), i, p)
                if (load_pretok_one(t, p, path, err, errlen) != 0)
                    return -1;
        } else if (load_pretok_one(t, pre, path, err, errlen) != 0) {
            return -1;
        }
    }
    json_t *dec = json_object_get(root, "decoder");
    const char *dtype = json_string_value(json_object_get(dec, "type"));
    if (dec && !json_is_null(dec) && (!dtype || strcmp(dtype, "ByteLevel") != 0)) {
        snprintf(err, errlen, "%s: unsupported: decoder %s", path, dtype ? dtype : "?");
        return -1;
    }
    return 0;
}

static int load_model(tokenizer_t *t, json_t *root, const char *path, char *err,
                      size_t errlen)
{
    json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!type || strcmp(type, "BPE") != 0) {
        snprintf(err, errlen, "%s: unsupported: model type %s (BPE only)", path,
                 type ? type : "(none)");
        return -1;
    }
    json_t *drop = json_object_get(model, "dropout");
    if ((drop && !json_is_null(drop)) || json_is_true(json_object_get(model, "byte_fallback"))) {
        snprintf(err, errlen, "%s: unsupported: BPE dropout or byte_fallback", path);
        return -1;
    }
    const char *affix[] = { "continuing_subword_prefix", "end_of_word_suffix" };
    for (int i = 0; i < 2; i++) {
        const char *s = json_string_value(json_object_get(model, affix[i]));
        if (s && s[0]) {
            snprintf(err, errlen, "%s: unsupported: BPE %s '%s'", path, affix[i], s);
            return -1;
        }
    }
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    if (!json_is_object(vocab) || !json_is_array(merges)) {
        snprintf(err, errlen, "%s: model needs a vocab object and a merges array", path);
        return -1;
    }
    if (added && !json_is_array(added)) {
        snprintf(err, errlen, "%s: added_tokens is not an array", path);
        return -1;
    }
    int mx = largest_id(vocab, added);
    if (mx < 0 || mx >= (1 << 24)) {
        snprintf(err, errlen, "%s: vocab ids out of range", path);
        return -1;
    }
    t->n_tokens = mx + 1;
    t->text = calloc((size_t)t->n_tokens, sizeof *t->text);
    t->bytes = calloc((size_t)t->n_tokens, sizeof *t->bytes);
    t->nbytes = calloc((size_t)t->n_tokens, sizeof *t->nbytes);
    if (!t->text || !t->bytes || !t->nbytes ||
        hashtab_init(&t->by_text, (size_t)t->n_tokens) != 0 ||
        hashtab_init(&t->merges, json_array_size(merges)) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_vocab(t, vocab, path, err, errlen) != 0 ||
        load_added(t, added, path, err, errlen) != 0 ||
        load_merges(t, merges, path, err, errlen) != 0)
        return -1;
    return 0;
}

int tokenizer_load(tokenizer_t **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
        return -1;
    }
    tokenizer_t *t = calloc(1, sizeof *t);
    int rc = t ? 0 : -1;
    if (!t)
        snprintf(err, errlen, "out of memory");
    if (rc == 0)
        rc = load_model(t, root, path, err, errlen);
    if (rc == 0)
        rc = load_pipeline(t, root, path, err, errlen);
    json_decref(root);
    if (rc != 0) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tokenizer_free(tokenizer_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_tokens; i++) {
        free(t->text[i]);
        free(t->bytes[i]);
    }
    free(t->text);
    free(t->bytes);
    free(t->nbytes);
    free(t->added);
    hashtab_free(&t->by_text);
    hashtab_free(&t->merges);
    for (int i = 0; i < t->n_splits; i++)
        pcre2_code_free(t->split[i]);
    free(t);
}
