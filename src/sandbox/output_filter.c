/* output_filter.c -- see output_filter.h. */
#include "sandbox/output_filter.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int output_secret_name(const char *name, size_t len)
{
    static const char *const words[] = {"KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= len; i++)
            if (strncasecmp(name + i, words[w], wl) == 0)
                return 1;
    }
    return 0;
}

/* text with every secret value replaced (malloc'd, *len updated). */
static char *redact(const char *text, size_t *len)
{
    char *out = malloc(*len + 1);
    if (!out)
        return NULL;
    memcpy(out, text, *len);
    out[*len] = 0;
    size_t n = *len;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || !output_secret_name(*e, (size_t)(eq - *e)))
            continue;
        const char *val = eq + 1;
        size_t vl = strlen(val);
        if (vl < 8)
            continue;
        char tag[160];
        int tl = snprintf(tag, sizeof tag, "[redacted %.*s]", (int)(eq - *e > 120 ? 120 : eq - *e), *e);
        if (tl < 0)
            continue;
        size_t from = 0;
        for (;;) {
            char *hit = memmem(out + from, n - from, val, vl);
            if (!hit)
                break;
            size_t at = (size_t)(hit - out);
            size_t nn = n - vl + (size_t)tl;
            char *grown = nn > n ? realloc(out, nn + 1) : out;
            if (!grown) {
                memset(hit, '*', vl);   /* no memory: blank it in place */
                from = at + vl;
                continue;
            }
            out = grown;
            memmove(out + at + tl, out + at + vl, n - at - vl);
            memcpy(out + at, tag, (size_t)tl);
            n = nn;
            out[n] = 0;
            from = at + (size_t)tl;
        }
    }
    *len = n;
    return out;
}

/* The code point of the shortest-form UTF-8 sequence at p (at most left
 * bytes) and its length, or 0: overlong forms, surrogates and anything
 * above U+10FFFF are not UTF-8 (and jansson refuses them: a reply whose
 * error held one said "error": null). */
static size_t utf8_decode(const unsigned char *p, size_t left, unsigned *cp)
{
    size_t need = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 && p[0] < 0xf0 ? 3 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 : 0;
    if (need == 0 || need > left)
        return 0;
    unsigned v = p[0] & (need == 2 ? 0x1f : need == 3 ? 0x0f : 0x07);
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if ((need == 3 && v < 0x800) || (need == 4 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return need;
}

/* Valid, and still not to be shown as it is: the C1 controls (U+009B
 * starts an escape sequence on terminals that take 8-bit controls, U+0085
 * is a newline), the line and paragraph separators, the marks and
 * overrides that reorder text (a fake "valid" could be spelled backwards),
 * and what shows as nothing: joiners, the soft hyphen, fillers, the
 * byte-order mark, variation selectors and the tag characters (invisible
 * ASCII, a known way to slip words into an LLM's prompt, where these
 * messages go). */
static int hidden_code_point(unsigned v)
{
    return (v >= 0x80 && v <= 0x9f) || v == 0xad || v == 0x061c || v == 0x115f || v == 0x1160 || v == 0x180e ||
           (v >= 0x200b && v <= 0x200f) || (v >= 0x2028 && v <= 0x202e) || (v >= 0x2060 && v <= 0x2069) ||
           v == 0x3164 || (v >= 0xfe00 && v <= 0xfe0f) || v == 0xfeff || v == 0xffa0 || (v >= 0xfff9 && v <= 0xfffb) ||
           (v >= 0xe0000 && v <= 0xe007f) || (v >= 0xe0100 && v <= 0xe01ef);
}

char *output_filter(const char *text, size_t len, size_t cap, int flags)
{
    if (!text)
        text = "";
    size_t n = len;
    char *red = redact(text, &n);
    if (!red)
        return NULL;
    /* Escape into a buffer up to four times the size. */
    char *esc = malloc(4 * n + 1);
    if (!esc) {
        free(red);
        return NULL;
    }
    size_t m = 0;
    const unsigned char *u = (const unsigned char *)red;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        int keep = (c >= 0x20 && c < 0x7f) || ((c == '\n' || c == '\t') && !(flags & OUTPUT_ONE_LINE));
        if (keep) {
            esc[m++] = (char)c;
            i++;
            continue;
        }
        unsigned cp = 0;
        size_t ul = c >= 0x80 ? utf8_decode(u + i, n - i, &cp) : 0;
        if (ul > 0) {
            if (hidden_code_point(cp)) {
                /* 6 bytes for 2 or 3, 10 for 4: within the 4x buffer */
                m += (size_t)(cp > 0xffff ? sprintf(esc + m, "\\U%08X", cp) : sprintf(esc + m, "\\u%04X", cp));
            } else {
                memcpy(esc + m, u + i, ul);
                m += ul;
            }
            i += ul;
            continue;
        }
        if ((flags & OUTPUT_ONE_LINE) && (c == '\n' || c == '\t' || c == '\r')) {
            esc[m++] = ' ';
        } else {
            m += (size_t)sprintf(esc + m, "\\x%02x", c);
        }
        i++;
    }
    esc[m] = 0;
    free(red);
    if (cap == 0 || m <= cap)
        return esc;
    /* Cut on a character boundary, keeping the head or the tail. */
    char *out = malloc(cap + 96);
    if (!out) {
        free(esc);
        return NULL;
    }
    if (flags & OUTPUT_KEEP_TAIL) {
        size_t from = m - cap;
        while (from < m && ((unsigned char)esc[from] & 0xc0) == 0x80)
            from++;
        snprintf(out, cap + 96, "(%zu bytes cut) ...%s", from, esc + from);
    } else {
        size_t to = cap;
        while (to > 0 && ((unsigned char)esc[to] & 0xc0) == 0x80)
            to--;
        memcpy(out, esc, to);
        snprintf(out + to, 96, "\n... (%zu more bytes)", m - to);
    }
    free(esc);
    return out;
}
