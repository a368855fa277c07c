/*
 * textbuf.c -- growable string and the escapes of the report writers.
 */
#include "textbuf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void textbuf_init(textbuf_t *b)
{
    b->s = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

void textbuf_free(textbuf_t *b)
{
    free(b->s);
    textbuf_init(b);
}

/* Make room for extra more bytes plus the NUL; 0 on success. */
static int reserve(textbuf_t *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (extra > (size_t)-1 / 2 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

char *textbuf_finish(textbuf_t *b)
{
    if (b->failed) {
        textbuf_free(b);
        return NULL;
    }
    if (!b->s && reserve(b, 0) != 0)
        return NULL;
    b->s[b->len] = '\0';
    char *s = b->s;
    textbuf_init(b);
    return s;
}

void textbuf_putn(textbuf_t *b, const char *s, size_t n)
{
    if (!s || reserve(b, n) != 0)
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void textbuf_puts(textbuf_t *b, const char *s)
{
    if (s)
        textbuf_putn(b, s, strlen(s));
}

void textbuf_putc(textbuf_t *b, char c)
{
    textbuf_putn(b, &c, 1);
}

void textbuf_repeat(textbuf_t *b, char c, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memset(b->s + b->len, c, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void textbuf_printf(textbuf_t *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at p (at most avail bytes), or 0
 * when it is not one (stray continuation, overlong form, surrogate, beyond
 * U+10FFFF or cut short). */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    if (p[0] < 0x80)
        return 1;
    size_t len;
    unsigned min, cp;
    if ((p[0] & 0xE0) == 0xC0) { len = 2; cp = p[0] & 0x1F; min = 0x80; }
    else if ((p[0] & 0xF0) == 0xE0) { len = 3; cp = p[0] & 0x0F; min = 0x800; }
    else if ((p[0] & 0xF8) == 0xF0) { len = 4; cp = p[0] & 0x07; min = 0x10000; }
    else return 0;
    if (len > avail)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* The largest length <= n that does not split a UTF-8 sequence of s. */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

void textbuf_xml(textbuf_t *b, const char *s)
{
    if (!s)
        return;
    const unsigned char *p = (const unsigned char *)s;
    size_t avail = strlen(s);
    while (avail > 0) {
        unsigned char c = *p;
        size_t k = 1;
        switch (c) {
        case '&': textbuf_puts(b, "&amp;"); break;
        case '<': textbuf_puts(b, "&lt;"); break;
        case '>': textbuf_puts(b, "&gt;"); break;
        case '"': textbuf_puts(b, "&quot;"); break;
        case '\'': textbuf_puts(b, "&#39;"); break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n') {
                textbuf_putc(b, '?');
            } else if (c == 0x7F) {
                textbuf_putc(b, '?');
            } else {
                k = utf8_seq(p, avail);
                if (k == 0) {
                    textbuf_putc(b, '?');
                    k = 1;
                } else {
                    textbuf_putn(b, (const char *)p, k);
                }
            }
        }
        p += k;
        avail -= k;
    }
}

void textbuf_plain(textbuf_t *b, const char *s)
{
    if (!s)
        return;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\t' || c == '\n' || c == '\r')
            textbuf_putc(b, ' ');
        else if (c < 0x20 || c == 0x7F)
            textbuf_putc(b, '?');
        else
            textbuf_putc(b, (char)c);
    }
}

/* Append n bytes of s with control bytes other than tab as '?'. */
static void put_defanged(textbuf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        textbuf_putc(b, (c < 0x20 && c != '\t') || c == 0x7F ? '?' : (char)c);
    }
}

/* The length of the backtick run at s[i] (< len). */
static size_t tick_run(const char *s, size_t i, size_t len)
{
    size_t k = 0;
    while (i + k < len && s[i + k] == '`')
        k++;
    return k;
}

/* Where the code span opened by the n backticks at s[i] closes (the index
 * of a run of exactly n backticks after it), or 0 when it does not close. */
static size_t span_end(const char *s, size_t i, size_t n, size_t len)
{
    for (size_t j = i + n; j < len;) {
        size_t k = tick_run(s, j, len);
        if (k == n)
            return j;
        j += k ? k : 1;
    }
    return 0;
}

/* One byte of a cell: in a code span everything is literal but the pipe
 * (a GFM table splits on it even there); outside, '<' could open HTML or
 * an autolink and '&' an entity, and '\' could escape what follows. */
static void md_cell_char(textbuf_t *b, char c, char next, int code)
{
    if (c == '|')
        textbuf_puts(b, "\\|");
    else if (code)
        textbuf_putc(b, c);
    else if (c == '\\')
        textbuf_puts(b, "\\\\");
    else if (c == '<')
        textbuf_puts(b, "&lt;");
    else if (c == '&' && (next == 0 || next == '#' || isalnum((unsigned char)next)))
        textbuf_puts(b, "&amp;");
    else
        textbuf_putc(b, c);
}

void textbuf_md_cell(textbuf_t *b, const char *s, size_t max)
{
    if (!s)
        return;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
                       s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    int cut = 0;
    if (max > 0 && len > max) {
        len = utf8_cut(s, max);
        cut = 1;
    }
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = 1;
            continue;
        }
        if (space) {
            textbuf_putc(b, ' ');
            space = 0;
        }
        if (c == '`') {
            /* a code span, whole; a run that does not close is literal */
            size_t n = tick_run(s, i, len), end = span_end(s, i, n, len);
            textbuf_repeat(b, '`', n);
            i += n - 1;
            if (end) {
                for (i++; i < end; i++) {
                    char d = s[i];
                    int blank = d == ' ' || d == '\t' || d == '\n' || d == '\r';
                    if (blank && (i + 1 < end && (s[i + 1] == ' ' || s[i + 1] == '\t' ||
                                                  s[i + 1] == '\n' || s[i + 1] == '\r')))
                        continue;
                    md_cell_char(b, blank ? ' ' : d, 0, 1);
                }
                textbuf_repeat(b, '`', n);
                i = end + n - 1;
            }
            continue;
        }
        md_cell_char(b, c, i + 1 < len ? s[i + 1] : 0, 0);
    }
    if (cut)
        textbuf_puts(b, "...");
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

size_t text_first_line(const char *s, char *out, size_t n, size_t max)
{
    if (!out || n == 0)
        return 0;
    out[0] = '\0';
    if (!s)
        return 0;
    while (is_blank(*s))
        s++;
    size_t len = strcspn(s, "\n");
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    size_t limit = n - 1;
    if (max > 0 && max < limit)
        limit = max;
    int cut = 0;
    if (len > limit) {
        /* Room for "..." inside the limit. */
        len = limit > 3 ? utf8_cut(s, limit - 3) : 0;
        cut = 1;
    }
    memcpy(out, s, len);
    if (cut && len + 3 <= n - 1) {
        memcpy(out + len, "...", 3);
        len += 3;
    }
    out[len] = '\0';
    return len;
}

void textbuf_head(textbuf_t *b, const char *s, int max_lines, size_t max_bytes)
{
    if (!s)
        return;
    while (*s == '\n' || *s == '\r')
        s++;
    int lines = 0;
    size_t used = 0;
    while (*s && lines < max_lines) {
        size_t len = strcspn(s, "\n");
        size_t keep = len;
        if (len > 0 && s[len - 1] == '\r')
            keep--;
        if (max_bytes > 0 && used + keep > max_bytes) {
            keep = utf8_cut(s, max_bytes - used);
            put_defanged(b, s, keep);
            textbuf_puts(b, "\n...\n");
            return;
        }
        put_defanged(b, s, keep);
        textbuf_putc(b, '\n');
        used += keep;
        lines++;
        s += len;
        if (*s == '\n')
            s++;
    }
    /* Trailing blank lines are not worth a "...". */
    while (*s == '\n' || *s == '\r' || *s == ' ' || *s == '\t')
        s++;
    if (*s)
        textbuf_puts(b, "...\n");
}
