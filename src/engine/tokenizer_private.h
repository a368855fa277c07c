/*
 * tokenizer_private.h -- the tokenizer's state, shared by tokenizer_load.c
 * (parsing tokenizer.json) and tokenizer.c (encode, decode).
 */
#ifndef EMILE_ENGINE_TOKENIZER_PRIVATE_H
#define EMILE_ENGINE_TOKENIZER_PRIVATE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "engine/hashtab.h"
#include "engine/tokenizer.h"

#define TOK_MAX_SPLITS 4

typedef struct tok_added {
    char *content;
    size_t len;
    int id;
} tok_added_t;

struct tokenizer {
    int n_tokens;              /* max id + 1 */
    char **text;               /* [n_tokens] token as written in the file (NUL-terminated) */
    char **bytes;              /* [n_tokens] decoded bytes, NULL for gaps */
    size_t *nbytes;            /* [n_tokens] */
    hashtab_t by_text;         /* hashtab_str(text) -> id */
    hashtab_t merges;          /* (left id << 32 | right id) -> (rank << 32 | merged id) */
    int byte_id[256];          /* id of each byte's byte-level character */
    int ignore_merges;         /* whole piece in the vocabulary: take it as is */
    int nfc;                   /* normalizer NFC */
    int add_prefix_space;      /* ByteLevel add_prefix_space */
    int n_splits;              /* regex splits, applied in order */
    pcre2_code *split[TOK_MAX_SPLITS];
    int n_added;
    tok_added_t *added;        /* sorted longest first (leftmost-longest match) */
};

/* The GPT-2 byte-level alphabet: byte -> Unicode code point, and back
 * (-1 for a code point that is not in the alphabet). */
int tok_byte_to_cp(int byte);
int tok_cp_to_byte(int cp);

/* The pre-tokenizer regex with \p{L}, \p{N} and \s rewritten to the sets
 * of the tokenizers library (Unicode 16.0 letters and digits, the
 * White_Space property), whatever Unicode version PCRE2 knows
 * (tokenizer_regex.c).  Malloc'd; NULL when out of memory. */
char *tok_regex_adapt(const char *pattern);

/* NFC of len bytes of UTF-8 as the tokenizers library computes it (its
 * Unicode tables are older than utf8proc's; tokenizer_nfc.c).  Returns 0
 * and *out (malloc'd, NUL-terminated) with *outlen, or -1 when the bytes
 * are not UTF-8 or memory runs out. */
int tok_nfc(const unsigned char *s, size_t len, unsigned char **out, size_t *outlen);

/* Id of a token given by its exact text, or -1. */
int tok_lookup(const tokenizer_t *t, const char *s, size_t len);

#endif /* EMILE_ENGINE_TOKENIZER_PRIVATE_H */
