/*
 * tokenizer_regex.c -- the pre-tokenizer's regex, rewritten so that PCRE2
 * classifies characters as the tokenizers library (Oniguruma) does.
 *
 * Two differences change where pieces are cut, and so the ids:
 *   - Unicode version.  The tokenizers library knows Unicode 16.0; Debian
 *     12's PCRE2 (10.42) knows Unicode 14.0, so 9,272 letters (CJK
 *     Extensions H and I, Egyptian Hieroglyphs Extended-A, Kawi, Garay,
 *     Todhri ...) and 120 digits added since are not \p{L} or \p{N} to it.
 *     Qwen3's regex then cuts "x𐗏's" as "x", "𐗏'", "s" instead of "x𐗏",
 *     "'s".  \p{L} and \p{N} gain those code points here (harmless where
 *     PCRE2 knows them already).
 *   - \s.  PCRE2's \s (with UCP) also matches U+180E MONGOLIAN VOWEL
 *     SEPARATOR, which stopped being a space in Unicode 6.3; Oniguruma's \s
 *     is the White_Space property.  \s is spelled out as that property.
 * The tokenizers library checked the result (tests/integration/
 * tokenizer_check.sh compares the three classes over every code point).
 * Not rewritten: \S inside a character class (PCRE2's meaning stays: only
 * U+180E differs), negations such as \P{L} and \p{^L}, and subcategories
 * such as \p{Lu}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_private.h"

/* Unicode 15.0-16.0 additions to the general categories L and N. */
static const char LETTERS_SINCE_14[] =
    "\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}\\x{105c0}-\\x{105f3}"
    "\\x{10d4a}-\\x{10d65}\\x{10d6f}-\\x{10d85}\\x{10ec2}-\\x{10ec4}"
    "\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}\\x{1138b}\\x{1138e}"
    "\\x{11390}-\\x{113b5}\\x{113b7}\\x{113d1}\\x{113d3}\\x{11bc0}-\\x{11be0}"
    "\\x{11f02}\\x{11f04}-\\x{11f10}\\x{11f12}-\\x{11f33}\\x{1342f}"
    "\\x{13441}-\\x{13446}\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}"
    "\\x{16d40}-\\x{16d6c}\\x{18cff}\\x{1b132}\\x{1b155}\\x{1df25}-\\x{1df2a}"
    "\\x{1e030}-\\x{1e06d}\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}\\x{1e5f0}"
    "\\x{2b739}\\x{2ebf0}-\\x{2ee5d}\\x{31350}-\\x{323af}";
static const char NUMBERS_SINCE_14[] =
    "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}"
    "\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}"
    "\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}"
    "\\x{1e5f1}-\\x{1e5fa}";
/* The White_Space property (stable since Unicode 6.3). */
static const char WHITE_SPACE[] =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
    "\\x{202f}\\x{205f}\\x{3000}";

/* A growing string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf_t;

static void put(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void puts_(sbuf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A set of characters: its members a and c, written into the class being
 * read, or as a class of their own opened by open ("[" or "[^"). */
static void put_set(sbuf_t *b, int in_class, const char *open, const char *a, const char *c)
{
    if (!in_class)
        puts_(b, open);
    puts_(b, a);
    puts_(b, c);
    if (!in_class)
        puts_(b, "]");
}

/* Rewrites \p{L}, \pL, \p{N}, \pN, \s (and \S outside a class) of pattern.
 * Returns the new pattern (malloc'd) or NULL when out of memory. */
char *tok_regex_adapt(const char *pattern)
{
    sbuf_t b = { 0 };
    put(&b, "", 0);
    int in_class = 0;
    size_t n = strlen(pattern);
    for (size_t i = 0; i < n;) {
        const char *p = pattern + i;
        if (p[0] == '\\' && i + 1 < n) {
            int l = strncmp(p, "\\p{L}", 5) == 0 || strncmp(p, "\\pL", 3) == 0;
            int d = strncmp(p, "\\p{N}", 5) == 0 || strncmp(p, "\\pN", 3) == 0;
            if (l || d) {
                put_set(&b, in_class, "[", l ? "\\p{L}" : "\\p{N}",
                        l ? LETTERS_SINCE_14 : NUMBERS_SINCE_14);
                i += p[2] == '{' ? 5 : 3;
            } else if (p[1] == 's') {
                put_set(&b, in_class, "[", WHITE_SPACE, "");
                i += 2;
            } else if (p[1] == 'S' && !in_class) {
                put_set(&b, 0, "[^", WHITE_SPACE, "");
                i += 2;
            } else if (p[1] == 'Q') {
                /* quoted until \E: nothing inside is a class or an escape */
                const char *e = strstr(p + 2, "\\E");
                size_t len = e ? (size_t)(e - p) + 2 : n - i;
                put(&b, p, len);
                i += len;
            } else {
                put(&b, p, 2);                  /* any other escape, as it is */
                i += 2;
            }
        } else if (!in_class && p[0] == '[') {
            /* a class opens; a ']' first in it (after an optional '^') is a
             * member, not its end */
            size_t k = 1 + (p[1] == '^');
            k += p[k] == ']';
            put(&b, p, k);
            i += k;
            in_class = 1;
        } else if (in_class && p[0] == '[' && p[1] == ':') {
            /* a POSIX class inside a class: copied up to its ":]" */
            const char *e = strstr(p + 2, ":]");
            size_t len = e ? (size_t)(e - p) + 2 : 1;
            put(&b, p, len);
            i += len;
        } else {
            if (in_class && p[0] == ']')
                in_class = 0;
            put(&b, p, 1);
            i++;
        }
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
