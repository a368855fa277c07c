/*
 * fake_llm_server.c -- the scripted loopback LLM server of the test suite
 * (see fake_llm_server.h for the script format).  One thread per
 * connection, so a step that sleeps (to provoke a client timeout) does not
 * hold up the next request.
 */
#include "fake_llm_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BODY (64u << 20)

struct fake_llm {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *script;
    const json_t *steps;
    int anthropic;
    int next;               /* next step to serve */
    int received;
    json_t *bodies;         /* every request body received (or null) */
    char *failures;
    size_t fail_len;
    int n_fail;
    int port;
    char url[64];
    volatile int stopping;
};

typedef struct upload {
    char *buf;
    size_t len, cap;
    int too_big;
} upload_t;

static void fail(fake_llm_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Called with f->mu held. */
static void fail(fake_llm_t *f, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    char *nf = realloc(f->failures, f->fail_len + n + 2);
    if (!nf)
        return;
    f->failures = nf;
    memcpy(f->failures + f->fail_len, line, n);
    f->fail_len += n;
    f->failures[f->fail_len++] = '\n';
    f->failures[f->fail_len] = '\0';
    f->n_fail++;
}

json_t *fake_llm_json(const char *sq)
{
    char *s = strdup(sq);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j) {
        fprintf(stderr, "fake_llm_json: %s at line %d col %d in:\n%s\n", je.text, je.line,
                je.column, s);
        abort();
    }
    free(s);
    return j;
}

/* ------------------------------------------------------ protocol checks */

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void check_anthropic(fake_llm_t *f, int step, const json_t *b)
{
    if (!json_is_string(json_object_get(b, "model")))
        fail(f, "step %d: anthropic: body.model missing", step);
    const json_t *mt = json_object_get(b, "max_tokens");
    if (!json_is_integer(mt) || json_integer_value(mt) <= 0)
        fail(f, "step %d: anthropic: body.max_tokens must be a positive integer", step);
    const json_t *sys = json_object_get(b, "system");
    if (sys && !json_is_string(sys) && !json_is_array(sys))
        fail(f, "step %d: anthropic: body.system has the wrong type", step);
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(b, "tools"), i, t) {
        const json_t *sch = json_object_get(t, "input_schema");
        if (!str(t, "name") || !str(t, "description") || !json_is_object(sch) ||
            !str(sch, "type") || strcmp(str(sch, "type"), "object") != 0)
            fail(f, "step %d: anthropic: tool %zu lacks name/description/input_schema "
                 "of type object", step, i);
    }
    const json_t *msgs = json_object_get(b, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        fail(f, "step %d: anthropic: messages must be a non-empty array", step);
        return;
    }
    const json_t *m;
    const char *prev = NULL;
    json_array_foreach(msgs, i, m) {
        const char *role = str(m, "role");
        if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
            fail(f, "step %d: anthropic: message %zu has role %s", step, i,
                 role ? role : "(none)");
        else if (i == 0 && strcmp(role, "user"))
            fail(f, "step %d: anthropic: the first message must be the user's", step);
        else if (prev && !strcmp(prev, role))
            fail(f, "step %d: anthropic: messages %zu and %zu share role %s", step, i - 1,
                 i, role);
        prev = role;
        const json_t *content = json_object_get(m, "content");
        if (!json_is_array(content) && !json_is_string(content))
            fail(f, "step %d: anthropic: message %zu content must be an array or string",
                 step, i);
        /* tool_use ids must be answered at the start of the next message. */
        size_t k;
        const json_t *blk;
        json_t *ids = json_array();
        json_array_foreach(content, k, blk)
            if (str(blk, "type") && !strcmp(str(blk, "type"), "tool_use"))
                json_array_append(ids, json_object_get(blk, "id"));
        if (role && !strcmp(role, "assistant") && json_array_size(ids) > 0) {
            const json_t *next = json_array_get(msgs, i + 1);
            if (!next) {
                fail(f, "step %d: anthropic: the last message has unanswered tool_use",
                     step);
            } else {
                const json_t *nc = json_object_get(next, "content");
                size_t want = json_array_size(ids);
                for (size_t r = 0; r < want; r++) {
                    const json_t *tr = json_array_get(nc, r);
                    const char *ty = str(tr, "type");
                    const char *tid = str(tr, "tool_use_id");
                    int found = 0;
                    for (size_t q = 0; q < want && tid; q++)
                        found |= !strcmp(json_string_value(json_array_get(ids, q)), tid);
                    if (!ty || strcmp(ty, "tool_result") || !found)
                        fail(f, "step %d: anthropic: message %zu block %zu should be the "
                             "tool_result for one of message %zu's tool_use ids", step,
                             i + 1, r, i);
                }
            }
        }
        json_decref(ids);
        /* tool_result blocks only come first, and only after tool_use. */
        int seen_other = 0;
        json_array_foreach(content, k, blk) {
            const char *ty = str(blk, "type");
            if (ty && !strcmp(ty, "tool_result")) {
                if (seen_other)
                    fail(f, "step %d: anthropic: message %zu has a tool_result after "
                         "other content", step, i);
                if (!str(blk, "tool_use_id"))
                    fail(f, "step %d: anthropic: tool_result without tool_use_id", step);
                const json_t *pm = i ? json_array_get(msgs, i - 1) : NULL;
                int known = 0;
                size_t q;
                const json_t *pb;
                json_array_foreach(json_object_get(pm, "content"), q, pb)
                    if (str(pb, "id") && str(blk, "tool_use_id") &&
                        !strcmp(str(pb, "id"), str(blk, "tool_use_id")))
                        known = 1;
                if (!known)
                    fail(f, "step %d: anthropic: tool_result %s answers no tool_use of "
                         "the previous message", step,
                         str(blk, "tool_use_id") ? str(blk, "tool_use_id") : "?");
            } else {
                seen_other = 1;
            }
        }
    }
}

static void check_openai(fake_llm_t *f, int step, const json_t *b)
{
    if (!json_is_string(json_object_get(b, "model")))
        fail(f, "step %d: openai: body.model missing", step);
    if (!json_is_integer(json_object_get(b, "max_tokens")) &&
        !json_is_integer(json_object_get(b, "max_completion_tokens")))
        fail(f, "step %d: openai: no max_tokens / max_completion_tokens", step);
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(b, "tools"), i, t) {
        const json_t *fn = json_object_get(t, "function");
        if (!str(t, "type") || strcmp(str(t, "type"), "function") || !str(fn, "name") ||
            !json_is_object(json_object_get(fn, "parameters")))
            fail(f, "step %d: openai: tool %zu is not {type:function, function:{name, "
                 "parameters}}", step, i);
    }
    const json_t *msgs = json_object_get(b, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) < 2) {
        fail(f, "step %d: openai: messages must hold a system and a user message", step);
        return;
    }
    if (!str(json_array_get(msgs, 0), "role") ||
        strcmp(str(json_array_get(msgs, 0), "role"), "system"))
        fail(f, "step %d: openai: the first message must be the system message", step);
    const json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *role = str(m, "role");
        if (!role) {
            fail(f, "step %d: openai: message %zu has no role", step, i);
            continue;
        }
        if (!strcmp(role, "tool")) {
            /* Must follow an assistant's tool_calls (or another tool). */
            const json_t *pm = i ? json_array_get(msgs, i - 1) : NULL;
            const char *pr = str(pm, "role");
            if (!pr || (strcmp(pr, "assistant") && strcmp(pr, "tool")))
                fail(f, "step %d: openai: tool message %zu does not follow tool_calls",
                     step, i);
            if (!json_is_string(json_object_get(m, "content")))
                fail(f, "step %d: openai: tool message %zu content is not a string",
                     step, i);
            continue;
        }
        const json_t *calls = json_object_get(m, "tool_calls");
        if (strcmp(role, "assistant") || json_array_size(calls) == 0)
            continue;
        size_t k;
        const json_t *c;
        json_array_foreach(calls, k, c) {
            const json_t *fn = json_object_get(c, "function");
            if (!str(c, "id") || !str(fn, "name") ||
                !json_is_string(json_object_get(fn, "arguments")) ||
                !str(c, "type") || strcmp(str(c, "type"), "function"))
                fail(f, "step %d: openai: message %zu tool_call %zu lacks id/type/"
                     "function.name/arguments (a string)", step, i, k);
            const json_t *ans = json_array_get(msgs, i + 1 + k);
            if (!ans || !str(ans, "role") || strcmp(str(ans, "role"), "tool") ||
                !str(ans, "tool_call_id") || !str(c, "id") ||
                strcmp(str(ans, "tool_call_id"), str(c, "id")))
                fail(f, "step %d: openai: message %zu should be the tool answer to %s",
                     step, i + 1 + k, str(c, "id") ? str(c, "id") : "?");
        }
    }
}

/* The newest user turn's tool results as [{"id","is_error","content"}]. */
static json_t *last_results(int anthropic, const json_t *msgs)
{
    json_t *out = json_array();
    size_t n = json_array_size(msgs);
    if (anthropic) {
        const json_t *m = json_array_get(msgs, n - 1);
        size_t i;
        const json_t *b;
        json_array_foreach(json_object_get(m, "content"), i, b) {
            if (!str(b, "type") || strcmp(str(b, "type"), "tool_result"))
                continue;
            const json_t *c = json_object_get(b, "content");
            char *cs = json_is_string(c) ? strdup(json_string_value(c))
                                         : json_dumps(c, JSON_COMPACT);
            json_array_append_new(out, json_pack("{s:s?, s:b, s:s}", "id",
                                                 str(b, "tool_use_id"), "is_error",
                                                 json_is_true(json_object_get(b, "is_error")),
                                                 "content", cs ? cs : ""));
            free(cs);
        }
        return out;
    }
    size_t start = n;
    while (start > 0 && str(json_array_get(msgs, start - 1), "role") &&
           strcmp(str(json_array_get(msgs, start - 1), "role"), "assistant"))
        start--;
    for (size_t i = start; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        if (!str(m, "role") || strcmp(str(m, "role"), "tool"))
            continue;
        const char *c = str(m, "content");
        json_array_append_new(out, json_pack("{s:s?, s:b, s:s}", "id",
                                             str(m, "tool_call_id"), "is_error",
                                             c && !strncmp(c, "ERROR:", 6), "content",
                                             c ? c : ""));
    }
    return out;
}

/* The newest user message's text. */
static char *last_text(int anthropic, const json_t *msgs)
{
    const json_t *m = json_array_get(msgs, json_array_size(msgs) - 1);
    const json_t *c = json_object_get(m, "content");
    if (json_is_string(c))
        return strdup(json_string_value(c));
    size_t i;
    const json_t *b;
    size_t len = 1;
    json_array_foreach(c, i, b)
        if (str(b, "text"))
            len += strlen(str(b, "text")) + 1;
    char *s = calloc(1, len);
    json_array_foreach(c, i, b)
        if (str(b, "text") && s) {
            strcat(s, str(b, "text"));
            strcat(s, "\n");
        }
    (void)anthropic;
    return s;
}

static void check_expect(fake_llm_t *f, int step, const json_t *ex, const json_t *b,
                         const char *raw, struct MHD_Connection *conn)
{
    if (!ex)
        return;
    const json_t *msgs = json_object_get(b, "messages");
    const json_t *want = json_object_get(ex, "tool_results");
    if (want) {
        json_t *got = last_results(f->anthropic, msgs);
        if (json_array_size(got) != json_array_size(want))
            fail(f, "step %d: expected %zu tool results, got %zu", step,
                 json_array_size(want), json_array_size(got));
        size_t i;
        const json_t *w;
        json_array_foreach(want, i, w) {
            const json_t *g = json_array_get(got, i);
            if (!g)
                break;
            if (str(w, "id") && (!str(g, "id") || strcmp(str(w, "id"), str(g, "id"))))
                fail(f, "step %d: tool result %zu answers %s, expected %s", step, i,
                     str(g, "id") ? str(g, "id") : "(none)", str(w, "id"));
            const json_t *we = json_object_get(w, "is_error");
            if (we && json_is_true(we) != json_is_true(json_object_get(g, "is_error")))
                fail(f, "step %d: tool result %zu is_error is %s, expected %s", step, i,
                     json_is_true(json_object_get(g, "is_error")) ? "true" : "false",
                     json_is_true(we) ? "true" : "false");
            if (str(w, "contains") && !strstr(str(g, "content"), str(w, "contains")))
                fail(f, "step %d: tool result %zu lacks \"%s\": %.300s", step, i,
                     str(w, "contains"), str(g, "content"));
        }
        json_decref(got);
    }
    if (str(ex, "text_contains")) {
        char *t = last_text(f->anthropic, msgs);
        if (!t || !strstr(t, str(ex, "text_contains")))
            fail(f, "step %d: the last user text lacks \"%s\": %.300s", step,
                 str(ex, "text_contains"), t ? t : "(none)");
        free(t);
    }
    if (str(ex, "last_role")) {
        const char *r = str(json_array_get(msgs, json_array_size(msgs) - 1), "role");
        if (!r || strcmp(r, str(ex, "last_role")))
            fail(f, "step %d: the last message's role is %s, expected %s", step,
                 r ? r : "(none)", str(ex, "last_role"));
    }
    const json_t *nm = json_object_get(ex, "n_messages");
    if (json_is_integer(nm) && (json_int_t)json_array_size(msgs) != json_integer_value(nm))
        fail(f, "step %d: %zu messages, expected %lld", step, json_array_size(msgs),
             (long long)json_integer_value(nm));
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(ex, "body_contains"), i, s)
        if (!strstr(raw, json_string_value(s)))
            fail(f, "step %d: the body lacks \"%s\"", step, json_string_value(s));
    json_array_foreach(json_object_get(ex, "body_lacks"), i, s)
        if (strstr(raw, json_string_value(s)))
            fail(f, "step %d: the body contains \"%s\"", step, json_string_value(s));
    const char *hk;
    const json_t *hv;
    json_object_foreach((json_t *)json_object_get(ex, "header"), hk, hv) {
        const char *got = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, hk);
        if (!got || strcmp(got, json_string_value(hv)))
            fail(f, "step %d: header %s is \"%s\", expected \"%s\"", step, hk,
                 got ? got : "(absent)", json_string_value(hv));
    }
}

static void check_request(fake_llm_t *f, int step, const char *url, const char *method,
                          struct MHD_Connection *conn, const json_t *b)
{
    const char *path = f->anthropic ? "/v1/messages" : "/v1/chat/completions";
    if (strcmp(method, "POST"))
        fail(f, "step %d: method %s, expected POST", step, method);
    if (strcmp(url, path))
        fail(f, "step %d: path %s, expected %s", step, url, path);
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncmp(ct, "application/json", 16))
        fail(f, "step %d: Content-Type is %s", step, ct ? ct : "(absent)");
    const json_t *key = json_object_get(f->script, "key");
    if (f->anthropic) {
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    "anthropic-version");
        if (!v || strcmp(v, "2023-06-01"))
            fail(f, "step %d: anthropic-version is %s", step, v ? v : "(absent)");
        const char *k = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
        if (json_is_string(key) && (!k || strcmp(k, json_string_value(key))))
            fail(f, "step %d: x-api-key is %s", step, k ? "wrong" : "(absent)");
        if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"))
            fail(f, "step %d: anthropic request carries an Authorization header", step);
    } else {
        const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (json_is_string(key)) {
            char want[300];
            snprintf(want, sizeof want, "Bearer %s", json_string_value(key));
            if (!a || strcmp(a, want))
                fail(f, "step %d: Authorization is %s", step, a ? "wrong" : "(absent)");
        } else if (json_is_null(key) && a) {
            fail(f, "step %d: Authorization sent although no key is set", step);
        }
    }
    if (!b) {
        fail(f, "step %d: the body is not JSON", step);
        return;
    }
    if (f->anthropic)
        check_anthropic(f, step, b);
    else
        check_openai(f, step, b);
}

/* --------------------------------------------------------------- serving */

static enum MHD_Result respond(struct MHD_Connection *conn, int status,
                               const json_t *headers, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)headers, k, v)
        MHD_add_response_header(r, k, json_string_value(v));
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version,
                               const char *upload_data, size_t *upload_size,
                               void **con_cls)
{
    fake_llm_t *f = cls;
    (void)version;
    upload_t *up = *con_cls;
    if (!up) {
        up = calloc(1, sizeof *up);
        if (!up)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (up->len + *upload_size + 1 > MAX_BODY) {
            up->too_big = 1;
        } else {
            if (up->len + *upload_size + 1 > up->cap) {
                size_t cap = up->cap ? up->cap : 8192;
                while (cap < up->len + *upload_size + 1)
                    cap *= 2;
                char *nb = realloc(up->buf, cap);
                if (!nb)
                    return MHD_NO;
                up->buf = nb;
                up->cap = cap;
            }
            memcpy(up->buf + up->len, upload_data, *upload_size);
            up->len += *upload_size;
            up->buf[up->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    const char *raw = up->buf ? up->buf : "";
    json_t *body = json_loads(raw, 0, NULL);

    pthread_mutex_lock(&f->mu);
    int step = f->next;
    f->received++;
    json_array_append_new(f->bodies, body ? json_incref(body) : json_null());
    const json_t *st = json_array_get(f->steps, (size_t)step);
    if (!st) {
        fail(f, "request %d: unexpected, the script has %zu steps", f->received,
             json_array_size(f->steps));
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        json_decref(body);
        json_t *h = json_pack("{s:s}", "x-should-retry", "false");
        enum MHD_Result r = respond(conn, 400, h,
                                    "{\"error\":{\"message\":\"script exhausted\"}}");
        json_decref(h);
        return r;
    }
    if (up->too_big)
        fail(f, "step %d: body over %u bytes", step, MAX_BODY);
    check_request(f, step, url, method, conn, body);
    check_expect(f, step, json_object_get(st, "expect"), body, raw, conn);
    f->next++;
    json_t *stc = json_deep_copy(st);
    pthread_mutex_unlock(&f->mu);
    json_decref(body);

    int delay = (int)json_integer_value(json_object_get(stc, "delay_ms"));
    for (int waited = 0; waited < delay && !f->stopping; waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    const json_t *sb = json_object_get(stc, "body");
    char *text = json_is_string(sb) ? strdup(json_string_value(sb))
                 : sb               ? json_dumps(sb, JSON_COMPACT)
                                    : strdup("{}");
    int status = json_is_integer(json_object_get(stc, "status"))
                     ? (int)json_integer_value(json_object_get(stc, "status")) : 200;
    enum MHD_Result r = respond(conn, status, json_object_get(stc, "headers"),
                                text ? text : "{}");
    free(text);
    json_decref(stc);
    pthread_mutex_lock(&f->mu);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    upload_t *up = *con_cls;
    if (up) {
        free(up->buf);
        free(up);
    }
    *con_cls = NULL;
}

fake_llm_t *fake_llm_start(const json_t *script, char *err, size_t errlen)
{
    const char *proto = json_string_value(json_object_get(script, "protocol"));
    if (!proto || (strcmp(proto, "anthropic") && strcmp(proto, "openai")) ||
        !json_is_array(json_object_get(script, "steps"))) {
        snprintf(err, errlen, "a script needs protocol anthropic|openai and steps");
        return NULL;
    }
    fake_llm_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->script = json_deep_copy(script);
    f->steps = json_object_get(f->script, "steps");
    f->anthropic = !strcmp(proto, "anthropic");
    f->bodies = json_array();
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                            0, NULL, NULL, handler, f, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, f,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!f->d) {
        snprintf(err, errlen, "MHD_start_daemon failed on 127.0.0.1");
        fake_llm_stop(f);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    f->port = info ? info->port : 0;
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
    return f;
}

fake_llm_t *fake_llm_start_file(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *s = json_load_file(path, 0, &je);
    if (!s) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return NULL;
    }
    fake_llm_t *f = fake_llm_start(s, err, errlen);
    json_decref(s);
    return f;
}

void fake_llm_stop(fake_llm_t *f)
{
    if (!f)
        return;
    f->stopping = 1;
    if (f->d)
        MHD_stop_daemon(f->d);
    json_decref(f->script);
    json_decref(f->bodies);
    free(f->failures);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

int fake_llm_port(const fake_llm_t *f)
{
    return f->port;
}

const char *fake_llm_url(const fake_llm_t *f)
{
    return f->url;
}

int fake_llm_requests(fake_llm_t *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->received;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Called with f->mu held. */
static int pending_locked(fake_llm_t *f)
{
    int n = 0;
    for (size_t i = (size_t)f->next; i < json_array_size(f->steps); i++)
        n += !json_is_true(json_object_get(json_array_get(f->steps, i), "optional"));
    return n;
}

int fake_llm_pending(fake_llm_t *f)
{
    pthread_mutex_lock(&f->mu);
    int n = pending_locked(f);
    pthread_mutex_unlock(&f->mu);
    return n;
}

int fake_llm_remaining(fake_llm_t *f)
{
    pthread_mutex_lock(&f->mu);
    int n = (int)json_array_size(f->steps) - f->next;
    pthread_mutex_unlock(&f->mu);
    return n > 0 ? n : 0;
}

int fake_llm_failures(fake_llm_t *f, char *buf, size_t n)
{
    pthread_mutex_lock(&f->mu);
    int k = f->n_fail;
    if (buf && n)
        snprintf(buf, n, "%s", f->failures ? f->failures : "");
    pthread_mutex_unlock(&f->mu);
    return k;
}

json_t *fake_llm_request_body(fake_llm_t *f, int i)
{
    pthread_mutex_lock(&f->mu);
    json_t *b = json_array_get(f->bodies, (size_t)i);
    json_t *r = b && !json_is_null(b) ? json_deep_copy(b) : NULL;
    pthread_mutex_unlock(&f->mu);
    return r;
}

int fake_llm_wait(fake_llm_t *f, double timeout_s)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)timeout_s;
    dl.tv_nsec += (long)((timeout_s - (double)(time_t)timeout_s) * 1e9);
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    while (pending_locked(f) > 0 && rc == 0)
        rc = pthread_cond_timedwait(&f->cv, &f->mu, &dl);
    int left = pending_locked(f);
    pthread_mutex_unlock(&f->mu);
    return left > 0 ? -1 : 0;
}
