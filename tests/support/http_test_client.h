/*
 * http_test_client.h -- a raw-socket HTTP/1.1 client for the server tests:
 * it sends exactly the bytes asked for (so tests can send what a browser
 * never would: bad lengths, wrong types, oversize bodies) and reads a
 * server-sent event stream event by event.  Loopback only.
 */
#ifndef EMILE_HTTP_TEST_CLIENT_H
#define EMILE_HTTP_TEST_CLIENT_H

#include <stddef.h>

typedef struct http_resp {
    int status;          /* 0 when no response came */
    char *headers;       /* the raw header block, NUL-terminated */
    char *body;          /* de-chunked, NUL-terminated */
    size_t body_len;
} http_resp_t;

/* Send "METHOD path HTTP/1.1" with Host: 127.0.0.1:port, Connection:
 * close, the extra header lines (each ending "\r\n", may be NULL), and a
 * Content-Length body when body is non-NULL; read the whole response.
 * Returns 0 when a response was read, -1 otherwise (connection refused or
 * closed before a status line). */
int http_request(int port, const char *method, const char *path, const char *extra_headers,
                 const char *body, size_t body_len, http_resp_t *out);

/* Shorthands: JSON body with Content-Type: application/json. */
int http_get(int port, const char *path, http_resp_t *out);
int http_post_json(int port, const char *path, const char *json, http_resp_t *out);

/* Send raw bytes and read the response (for malformed requests). */
int http_raw(int port, const char *bytes, size_t len, http_resp_t *out);

/* The value of header name (case-insensitive) into buf; 0 or -1. */
int http_header(const http_resp_t *r, const char *name, char *buf, size_t n);

void http_resp_free(http_resp_t *r);

/* A server-sent event stream. */
typedef struct sse_stream {
    int fd;
    char *buf;
    size_t len, cap;
    int status;
} sse_stream_t;

/* Open GET path as an event stream; 0 when the server answered 200. */
int sse_open(int port, const char *path, sse_stream_t *s);
/* The next event within timeout_ms: its type (e.g. "iteration") and data
 * (malloc'd, caller frees).  Comments (keepalives) are skipped.  1 with an
 * event, 0 on timeout, -1 when the stream ended. */
int sse_next(sse_stream_t *s, int timeout_ms, char *type, size_t type_n, char **data);
void sse_close(sse_stream_t *s);

#endif
