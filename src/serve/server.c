/* server.c -- the HTTP server: starting and stopping it, taking a request
 * from headers to body within the size limit, the access checks, and the
 * hand-off to the API routes or the embedded pages. */
#include "serve_internal.h"
#include "auth.h"
#include "conn_limits.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Connections: a thread each (an event stream blocks in its reader).  Of
 * the MAX_CONNECTIONS slots, idle connections (no request being answered)
 * may hold at most MAX_IDLE, one client at most MAX_PER_CLIENT
 * (conn_limits.h), so a flood of idle sockets cannot take the slots that a
 * request -- a health check, a page -- needs.  An idle connection is also
 * closed after the idle timeout (a request must arrive, headers and body,
 * within it); one whose request is being answered, an event stream above
 * all (a keep-alive every 15 s), after REQUEST_TIMEOUT_S of silence. */
#define MAX_CONNECTIONS (EVENTS_MAX_CLIENTS + 64)
#define MAX_IDLE 24
#define MAX_PER_CLIENT 48
#define REQUEST_TIMEOUT_S 120u

void serve_config_init(serve_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->emile_path = "/proc/self/exe";
    cfg->max_body = SERVE_MAX_BODY;
    cfg->max_queue = SERVE_MAX_QUEUE;
    cfg->stop_grace_s = 30.0;
    cfg->taste_timeout_s = SERVE_TASTE_TIMEOUT_S;
    cfg->idle_timeout_s = SERVE_IDLE_TIMEOUT_S;
}

int serve_port(const serve_t *s) { return s->port; }

const char *serve_store_path(const serve_t *s) { return s->store_path; }

const char *serve_token(const serve_t *s) { return s->token[0] ? s->token : NULL; }

/* ---- access checks ---- */

/* The token of this request: the Authorization header, else ?token= (an
 * EventSource cannot set headers). */
static const char *request_token(struct MHD_Connection *c)
{
    const char *t = auth_bearer(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_AUTHORIZATION));
    return t ? t : MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
}

/* 0 when the API call may go on; otherwise the refusal is queued and *ret
 * says what to return. */
static int check_access(request_t *r, enum MHD_Result *ret)
{
    serve_t *s = r->s;
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (s->token[0]) {
        if (!auth_token_equal(s->token, request_token(r->conn))) {
            *ret = respond_error(r, 401, "this server needs its access token: open the URL it "
                                         "printed, or send Authorization: Bearer TOKEN");
            return -1;
        }
    } else if (!auth_host_is_loopback_name(host)) {
        *ret = respond_error(r, 403, "without a token this server answers only requests "
                                     "addressed to a loopback host (start it with --token to "
                                     "use another name)");
        return -1;
    }
    if (!auth_origin_matches(origin, host)) {
        *ret = respond_error(r, 403, "cross-origin requests are refused");
        return -1;
    }
    if (strcmp(r->method, "POST") == 0) {
        /* A cross-site form can post text/plain without a preflight; it
         * cannot post application/json. */
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
            *ret = respond_error(r, 415, "POST bodies must be sent as application/json");
            return -1;
        }
    }
    return 0;
}

/* ---- connections ---- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    serve_t *s = cls;
    if (code != MHD_CONNECTION_NOTIFY_STARTED) {
        conn_closed(s->conns, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ad =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *addr = ad ? ad->client_addr : NULL;
    socklen_t len = addr && addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                        : sizeof(struct sockaddr_in);
    *socket_context = fd ? conn_opened(s->conns, fd->connect_fd, addr, len) : NULL;
}

/* The connection's entry in s->conns (NULL when untracked). */
static conn_entry_t *entry_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* A request is complete and about to be answered: not idle any more, and
 * the long timeout (its answer may stream). */
static void request_answering(request_t *r)
{
    conn_set_busy(r->s->conns, entry_of(r->conn), 1);
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, REQUEST_TIMEOUT_S);
}

/* ---- the request life cycle ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    serve_t *s = cls;
    request_t *r = *con_cls;
    if (!r) {
        /* Headers are in.  Refuse early what needs no body to refuse, so
         * an oversize or unauthorised upload is not read at all. */
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->s = s;
        r->conn = conn;
        r->method = method;
        r->url = url;
        *con_cls = r;
        int api = strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0;
        enum MHD_Result ret;
        if (api && check_access(r, &ret) != 0)
            return ret;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body)
            return respond_error(r, 413, "the request body is over the %zu byte limit",
                                 s->max_body);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large || r->len + n > s->max_body) {
            /* Chunked bodies have no length up front: count, and cut the
             * connection if the sender keeps going far past the limit. */
            r->too_large = 1;
            r->len += n;
            return r->len > 4 * s->max_body ? MHD_NO : MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n + 1)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b)
                return MHD_NO;
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        r->body[r->len] = 0;
        return MHD_YES;
    }
    if (r->too_large)
        return respond_error(r, 413, "the request body is over the %zu byte limit", s->max_body);
    request_answering(r);
    if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0)
        return routes_dispatch(r);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond_error(r, 405, "only GET serves pages");
    return serve_asset(r, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    serve_t *s = cls;
    request_t *r = *con_cls;
    if (r) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
    /* idle again, until the next request of a kept-alive connection */
    conn_set_busy(s->conns, entry_of(conn), 0);
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, s->idle_timeout_s);
}

/* MHD's own complaints, unless quiet. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    serve_t *s = cls;
    if (s->quiet)
        return;
    fprintf(stderr, "serve: ");
    vfprintf(stderr, fmt, ap);
}

/* ---- start and stop ---- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, char *err,
                   size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    /* Prefer IPv4 for "localhost", where browsers try both anyway. */
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int token_is_acceptable(const char *t)
{
    size_t n = strlen(t);
    if (n < 8 || n >= 128)
        return 0;
    for (; *t; t++)
        if (*t <= ' ' || *t > '~' || *t == '&' || *t == '#' || *t == '%' || *t == '+')
            return 0;
    return 1;
}

static void free_server(serve_t *s)
{
    if (!s)
        return;
    if (s->hub)
        events_close(s->hub);
    serve_taste_stop(s);          /* its request thread waits for the child */
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    if (s->queue)
        cookq_destroy(s->queue, s->stop_grace_s);
    if (s->hub)
        events_destroy(s->hub);
    conn_table_destroy(s->conns);
    store_close(s->store);
    pthread_mutex_destroy(&s->store_mu);
    pthread_mutex_destroy(&s->taste_mu);
    for (size_t i = 0; i < s->n_llm_base_urls; i++)
        free(s->llm_base_urls[i]);
    free(s->llm_base_urls);
    free(s->model_dir);
    free(s->host);
    free(s->store_path);
    free(s->emile_path);
    free(s->examples_dir);
    free(s);
}

int serve_start(const serve_config_t *cfg, serve_t **out, char *err, size_t errlen)
{
    *out = NULL;
    serve_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->store_mu, NULL);
    pthread_mutex_init(&s->taste_mu, NULL);
    s->quiet = cfg->quiet;
    s->max_body = cfg->max_body ? cfg->max_body : SERVE_MAX_BODY;
    s->stop_grace_s = cfg->stop_grace_s;
    s->taste_timeout_s = cfg->taste_timeout_s > 0 ? cfg->taste_timeout_s : SERVE_TASTE_TIMEOUT_S;
    s->idle_timeout_s = cfg->idle_timeout_s > 0 ? (unsigned)cfg->idle_timeout_s
                                                : (unsigned)SERVE_IDLE_TIMEOUT_S;
    const char *host = cfg->host && *cfg->host ? cfg->host : "127.0.0.1";
    char store_path[4096];
    int default_store = !cfg->store_path || !*cfg->store_path;
    store_origin_t origin = STORE_FROM_HOME;
    if (default_store && store_default_location(store_path, sizeof store_path, &origin) != 0) {
        snprintf(err, errlen, "cannot find a place for the run store (set --store)");
        goto fail;
    }
    /* The XDG/HOME default's folder is made; one named by EMILE_STORE or
     * --store must exist (a missing one is most likely a typo). */
    int store_flags = default_store && origin != STORE_FROM_ENV ? STORE_OPEN_CREATE_DIRS : 0;
    s->host = strdup(host);
    s->store_path = strdup(default_store ? store_path : cfg->store_path);
    s->emile_path = strdup(cfg->emile_path && *cfg->emile_path ? cfg->emile_path
                                                               : "/proc/self/exe");
    s->examples_dir = cfg->examples_dir ? strdup(cfg->examples_dir) : NULL;
    s->model_dir = cfg->model_dir && *cfg->model_dir ? strdup(cfg->model_dir) : NULL;
    if (!s->host || !s->store_path || !s->emile_path) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->n_llm_base_urls) {
        s->llm_base_urls = calloc(cfg->n_llm_base_urls, sizeof *s->llm_base_urls);
        if (!s->llm_base_urls) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < cfg->n_llm_base_urls; i++) {
            const char *u = cfg->llm_base_urls[i];
            if (!u || (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0) ||
                strlen(u) >= 512 || strpbrk(u, " \t\r\n")) {
                snprintf(err, errlen, "--llm-base-url \"%.300s\" must be an http:// or https:// "
                                      "URL, without spaces, shorter than 512 bytes", u ? u : "");
                goto fail;
            }
            if (!(s->llm_base_urls[s->n_llm_base_urls++] = strdup(u))) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
        }
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "port %d is not in 0..65535", cfg->port);
        goto fail;
    }
    struct sockaddr_storage ss;
    if (resolve(host, cfg->port, &ss, err, errlen) != 0)
        goto fail;
    if (cfg->token && *cfg->token) {
        if (!token_is_acceptable(cfg->token)) {
            snprintf(err, errlen, "a token must be 8 to 127 printable characters without "
                                  "spaces, '&', '#', '%%' or '+'");
            goto fail;
        }
        snprintf(s->token, sizeof s->token, "%s", cfg->token);
    } else if (!auth_addr_is_loopback((struct sockaddr *)&ss)) {
        if (auth_make_token(s->token, sizeof s->token) != 0) {
            snprintf(err, errlen, "cannot make an access token: no randomness");
            goto fail;
        }
    }
    if (store_open(s->store_path, store_flags, &s->store) != 0) {
        if (default_store && origin == STORE_FROM_ENV &&
            store_last_open_missing() == STORE_MISSING_DIR)
            snprintf(err, errlen, "EMILE_STORE=%s: its directory does not exist (a typo? emile "
                     "does not create the folder EMILE_STORE names)", s->store_path);
        else
            snprintf(err, errlen, "%s", store_last_open_error());
        goto fail;
    }
    s->hub = events_create(15.0);
    s->queue = s->hub ? cookq_create(s->emile_path, s->store_path, s->hub, cfg->max_queue,
                                     cfg->quiet)
                      : NULL;
    s->conns = s->queue ? conn_table_create(MAX_IDLE, MAX_PER_CLIENT) : NULL;
    if (!s->conns) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* A thread per connection: event streams block in their reader, and a
     * local tool has few connections (the limits above). */
    errno = 0;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,     /* first, or MHD logs before it */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", host, cfg->port,
                 errno ? strerror(errno) : "address in use or not available");
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return 0;
fail:
    free_server(s);
    return -1;
}

void serve_stop(serve_t *s)
{
    free_server(s);
}
