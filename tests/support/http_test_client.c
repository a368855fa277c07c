/* http_test_client.c -- see http_test_client.h. */
#include "http_test_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};   /* no test waits longer for a reply */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Decode a chunked body in place; returns the decoded length. */
static size_t dechunk(char *b, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *crlf = strstr(b + in, "\r\n");
        if (!crlf || end > crlf)
            break;
        in = (size_t)(crlf - b) + 2;
        if (sz == 0 || in + sz > n)
            break;
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
    b[out] = 0;
    return out;
}

static int parse_response(char *raw, size_t n, http_resp_t *out)
{
    char *sep = strstr(raw, "\r\n\r\n");
    if (!sep || strncmp(raw, "HTTP/1.", 7) != 0)
        return -1;
    out->status = atoi(raw + 9);
    size_t hl = (size_t)(sep - raw);
    out->headers = malloc(hl + 1);
    memcpy(out->headers, raw, hl);
    out->headers[hl] = 0;
    size_t bl = n - hl - 4;
    out->body = malloc(bl + 1);
    memcpy(out->body, sep + 4, bl);
    out->body[bl] = 0;
    out->body_len = bl;
    char te[64];
    if (http_header(out, "Transfer-Encoding", te, sizeof te) == 0 && strcasecmp(te, "chunked") == 0)
        out->body_len = dechunk(out->body, bl);
    return 0;
}

int http_raw(int port, const char *bytes, size_t len, http_resp_t *out)
{
    memset(out, 0, sizeof *out);
    int fd = connect_loopback(port);
    if (fd < 0)
        return -1;
    /* The server may answer (413, 401) and close before reading it all. */
    send_all(fd, bytes, len);
    size_t cap = 65536, n = 0;
    char *raw = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            raw = realloc(raw, cap *= 2);
        ssize_t k = recv(fd, raw + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    raw[n] = 0;
    close(fd);
    int rc = parse_response(raw, n, out);
    free(raw);
    return rc;
}

int http_request(int port, const char *method, const char *path, const char *extra_headers,
                 const char *body, size_t body_len, http_resp_t *out)
{
    size_t hn = strlen(method) + strlen(path) + (extra_headers ? strlen(extra_headers) : 0) + 256;
    char *req = malloc(hn + body_len);
    int k = snprintf(req, hn, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s",
                     method, path, port, extra_headers ? extra_headers : "");
    if (body)
        k += snprintf(req + k, hn - (size_t)k, "Content-Length: %zu\r\n", body_len);
    k += snprintf(req + k, hn - (size_t)k, "\r\n");
    size_t n = (size_t)k;
    if (body) {
        memcpy(req + n, body, body_len);
        n += body_len;
    }
    int rc = http_raw(port, req, n, out);
    free(req);
    return rc;
}

int http_get(int port, const char *path, http_resp_t *out)
{
    return http_request(port, "GET", path, NULL, NULL, 0, out);
}

int http_post_json(int port, const char *path, const char *json, http_resp_t *out)
{
    return http_request(port, "POST", path, "Content-Type: application/json\r\n", json,
                        json ? strlen(json) : 0, out);
}

int http_header(const http_resp_t *r, const char *name, char *buf, size_t n)
{
    if (!r->headers)
        return -1;
    size_t nl = strlen(name);
    for (const char *line = strstr(r->headers, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            h += nl + 1;
            while (*h == ' ')
                h++;
            const char *e = strstr(h, "\r\n");
            size_t len = e ? (size_t)(e - h) : strlen(h);
            snprintf(buf, n, "%.*s", (int)len, h);
            return 0;
        }
    }
    return -1;
}

void http_resp_free(http_resp_t *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ---- event streams ---- */

static int fill(sse_stream_t *s, int timeout_ms)
{
    struct pollfd pf = {s->fd, POLLIN, 0};
    int pr = poll(&pf, 1, timeout_ms);
    if (pr == 0)
        return 0;
    if (pr < 0)
        return -1;
    if (s->len + 65536 + 1 > s->cap) {
        s->cap = s->cap * 2 + 65536 + 1;
        s->buf = realloc(s->buf, s->cap);
    }
    ssize_t k = recv(s->fd, s->buf + s->len, s->cap - s->len - 1, 0);
    if (k <= 0)
        return -1;
    s->len += (size_t)k;
    s->buf[s->len] = 0;
    return 1;
}

int sse_open(int port, const char *path, sse_stream_t *s)
{
    memset(s, 0, sizeof *s);
    s->fd = connect_loopback(port);
    if (s->fd < 0)
        return -1;
    char req[1024];
    /* HTTP/1.0: the server then sends the stream unchunked until it ends,
     * so what arrives is the event text itself. */
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n",
                     path, port);
    if (send_all(s->fd, req, (size_t)n) != 0)
        return -1;
    char *sep;
    while (!(s->buf && (sep = strstr(s->buf, "\r\n\r\n"))))
        if (fill(s, 5000) <= 0)
            return -1;
    s->status = atoi(s->buf + 9);
    size_t hl = (size_t)(sep - s->buf) + 4;
    memmove(s->buf, s->buf + hl, s->len - hl + 1);
    s->len -= hl;
    return s->status == 200 ? 0 : -1;
}

int sse_next(sse_stream_t *s, int timeout_ms, char *type, size_t type_n, char **data)
{
    *data = NULL;
    type[0] = 0;
    struct timeval t0, t;
    gettimeofday(&t0, NULL);
    for (;;) {
        char *end = s->buf ? strstr(s->buf, "\n\n") : NULL;
        while (end) {
            size_t blen = (size_t)(end - s->buf);
            char *block = malloc(blen + 1);
            memcpy(block, s->buf, blen);
            block[blen] = 0;
            memmove(s->buf, end + 2, s->len - blen - 2 + 1);
            s->len -= blen + 2;
            char *d = NULL;
            snprintf(type, type_n, "message");
            for (char *line = strtok(block, "\n"); line; line = strtok(NULL, "\n")) {
                if (strncmp(line, "event: ", 7) == 0)
                    snprintf(type, type_n, "%s", line + 7);
                else if (strncmp(line, "data: ", 6) == 0)
                    d = strdup(line + 6);
            }
            free(block);
            if (d) {
                *data = d;
                return 1;
            }
            end = strstr(s->buf, "\n\n");   /* a comment: keep looking */
        }
        gettimeofday(&t, NULL);
        long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_usec - t0.tv_usec) / 1000);
        if (left <= 0)
            return 0;
        int rc = fill(s, (int)left);
        if (rc < 0)
            return -1;
    }
}

void sse_close(sse_stream_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}
