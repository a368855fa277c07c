/*
 * fence.c -- code fenced in prose.  Models sometimes answer with the kernel
 * in a ``` block instead of calling profile_kernel; the agent takes the
 * block as the proposal (and says so) rather than losing the turn.  Old
 * turns' blocks are elided to keep the context small.
 */
#include "llm.h"

#include "backend/lang.h"

#include <stdlib.h>
#include <string.h>

typedef struct fence {
    const char *open;        /* start of the ``` line */
    const char *body;        /* first character after the opening line */
    const char *body_end;    /* start of the closing ``` line */
    const char *end;         /* first character after the closing line */
    char lang[16];
} fence_t;

/* Does a line start with ``` (after up to 3 spaces)?  Returns the position
 * after the backticks, or NULL. */
static const char *ticks(const char *line)
{
    int sp = 0;
    while (*line == ' ' && sp < 3) {
        line++;
        sp++;
    }
    return strncmp(line, "```", 3) == 0 ? line + 3 : NULL;
}

static const char *next_line(const char *p)
{
    const char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p + strlen(p);
}

/* The next closed fence at or after p; 0 when there is none. */
static int next_fence(const char *p, fence_t *f)
{
    for (const char *line = p; *line; line = next_line(line)) {
        const char *t = ticks(line);
        if (!t)
            continue;
        memset(f, 0, sizeof *f);
        f->open = line;
        size_t k = 0;
        while (*t == '`')
            t++;
        while (*t == ' ')
            t++;
        while (*t && *t != '\n' && *t != ' ' && k + 1 < sizeof f->lang)
            f->lang[k++] = *t++;
        f->body = next_line(line);
        for (const char *q = f->body; *q; q = next_line(q)) {
            const char *c = ticks(q);
            if (c) {
                while (*c == '`')
                    c++;
                while (*c == ' ' || *c == '\r')
                    c++;
                if (*c == '\n' || *c == '\0') {
                    f->body_end = q;
                    f->end = next_line(q);
                    return 1;
                }
            }
        }
        return 0;   /* unclosed: a reply cut in the middle of its code */
    }
    return 0;
}

/* An info string a kernel's fence may carry: none, or a language's fence
 * or one of its aliases (src/backend/lang.h). */
static int code_lang(const char *l)
{
    if (!*l)
        return 1;
    for (const lang_t *const *lg = lang_all(); *lg; lg++) {
        if (strcmp(l, (*lg)->fence) == 0 || strcmp(l, (*lg)->name) == 0)
            return 1;
        for (const char *const *a = (*lg)->fence_aliases; a && *a; a++)
            if (strcmp(l, *a) == 0)
                return 1;
    }
    return 0;
}

/* Whether a fenced body is a complete kernel in some language. */
static int is_complete_kernel(const char *body)
{
    for (const lang_t *const *lg = lang_all(); body && *lg; lg++)
        if (strstr(body, (*lg)->entry_marker))
            return 1;
    return 0;
}

char *llm_fence_extract(const char *text)
{
    if (!text)
        return NULL;
    fence_t f, best;
    int found = 0;
    for (const char *p = text; next_fence(p, &f); p = f.end) {
        size_t n = (size_t)(f.body_end - f.body);
        /* A kernel defines the entry point; a snippet does not. */
        char *body = strndup(f.body, n);
        int is_kernel = is_complete_kernel(body);
        free(body);
        if (is_kernel && code_lang(f.lang)) {
            best = f;
            found = 1;
        }
    }
    if (!found)
        return NULL;
    return strndup(best.body, (size_t)(best.body_end - best.body));
}

char *llm_fence_elide(const char *text, const char *placeholder)
{
    if (!text)
        return strdup("");
    size_t cap = strlen(text) + 1, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    fence_t f;
    const char *p = text;
    while (next_fence(p, &f)) {
        size_t head = (size_t)(f.body - p), ph = strlen(placeholder) + 1;
        size_t tail = (size_t)(f.end - f.body_end);
        if (len + head + ph + tail + 1 > cap) {
            cap = len + head + ph + tail + 1 + strlen(f.end);
            char *no = realloc(out, cap);
            if (!no) {
                free(out);
                return NULL;
            }
            out = no;
        }
        memcpy(out + len, p, head);
        len += head;
        memcpy(out + len, placeholder, ph - 1);
        len += ph - 1;
        out[len++] = '\n';
        memcpy(out + len, f.body_end, tail);
        len += tail;
        p = f.end;
    }
    size_t rest = strlen(p);
    if (len + rest + 1 > cap) {
        char *no = realloc(out, len + rest + 1);
        if (!no) {
            free(out);
            return NULL;
        }
        out = no;
    }
    memcpy(out + len, p, rest + 1);
    return out;
}
