/*
 * common.c -- small pieces both providers use: decoded replies, header
 * buffers that are wiped after use (the key passes through them), printf to
 * a fresh string, and the error text of an error body.
 */
#include "llm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void llm_reply_free(llm_reply_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_calls; i++) {
        free(r->calls[i].id);
        free(r->calls[i].name);
        json_decref(r->calls[i].args);
        free(r->calls[i].args_error);
    }
    free(r->calls);
    free(r->text);
    json_decref(r->message);
    memset(r, 0, sizeof *r);
}

int llm_reply_add_call(llm_reply_t *r, const char *id, const char *name,
                       json_t *args, const char *args_error)
{
    llm_call_t *nc = realloc(r->calls, (size_t)(r->n_calls + 1) * sizeof *nc);
    if (!nc) {
        json_decref(args);
        return -1;
    }
    r->calls = nc;
    llm_call_t *c = &nc[r->n_calls++];
    c->id = strdup(id ? id : "");
    c->name = strdup(name ? name : "");
    c->args = args;
    c->args_error = args_error ? strdup(args_error) : NULL;
    return (c->id && c->name) ? 0 : -1;
}

void llm_headers_init(llm_headers_t *h)
{
    memset(h, 0, sizeof *h);
}

void llm_headers_add(llm_headers_t *h, const char *fmt, ...)
{
    if (h->n >= LLM_MAX_HEADERS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->line[h->n], sizeof h->line[h->n], fmt, ap);
    va_end(ap);
    h->ptr[h->n] = h->line[h->n];
    h->n++;
    h->ptr[h->n] = NULL;
}

void llm_headers_wipe(llm_headers_t *h)
{
    /* volatile so the compiler cannot drop a store to a dying buffer. */
    volatile char *p = (volatile char *)h->line;
    for (size_t i = 0; i < sizeof h->line; i++)
        p[i] = 0;
    h->n = 0;
    h->ptr[0] = NULL;
}

char *llm_strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *llm_error_text(const json_t *body)
{
    if (!json_is_object(body))
        return NULL;
    const json_t *e = json_object_get(body, "error");
    if (json_is_object(e) && json_is_string(json_object_get(e, "message")))
        return json_string_value(json_object_get(e, "message"));
    if (json_is_string(e))
        return json_string_value(e);
    if (json_is_string(json_object_get(body, "message")))
        return json_string_value(json_object_get(body, "message"));
    if (json_is_string(json_object_get(body, "detail")))
        return json_string_value(json_object_get(body, "detail"));
    return NULL;
}
