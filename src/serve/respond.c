/* respond.c -- building responses.  Every response says what it is
 * (nosniff), may not be framed, leaks no Referer (the token can sit in the
 * page's URL) and, for anything a browser might render, carries a content
 * security policy that allows no script but the page's own files. */
#include "serve_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void respond_add_headers(struct MHD_Response *resp, const char *type)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
}

enum MHD_Result respond_bytes(request_t *r, unsigned status, const char *type,
                              const void *data, size_t len, const char *attachment)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    respond_add_headers(resp, type);
    /* Only the pages may be cached; API data changes under a cook. */
    if (strncmp(r->url, "/api/", 5) == 0)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (attachment) {
        char cd[256];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", attachment);
        MHD_add_response_header(resp, "Content-Disposition", cd);
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result respond_json(request_t *r, unsigned status, json_t *body)
{
    if (!body)
        body = json_object();
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return respond_bytes(r, 500, "application/json", "{\"error\":\"out of memory\"}", 25, NULL);
    enum MHD_Result ret = respond_bytes(r, status, "application/json", text, strlen(text), NULL);
    free(text);
    return ret;
}

enum MHD_Result respond_error(request_t *r, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    /* json_string rejects invalid UTF-8 (a message may quote the body). */
    json_t *m = json_string(msg);
    json_object_set_new(o, "error", m ? m : json_string("bad request"));
    json_object_set_new(o, "status", json_integer(status));
    return respond_json(r, status, o);
}

json_t *request_json_object(request_t *r, enum MHD_Result *sent)
{
    json_error_t je;
    if (!r->body || r->len == 0) {
        *sent = respond_error(r, 400, "the request needs a JSON object as its body");
        return NULL;
    }
    json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        *sent = respond_error(r, 400, "bad JSON at line %d column %d: %s", je.line, je.column,
                              je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *sent = respond_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}
