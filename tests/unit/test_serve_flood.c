/*
 * test_serve_flood.c -- `emile serve` under a flood of connections that
 * send nothing (issue 15: 100 idle local sockets used to take every slot
 * and lock /api/health out for the 120 s timeout).
 *
 * A server on an ephemeral loopback port, with an idle timeout of 2 s:
 *   - with 100 idle connections open, /api/health answers within 3 s, and
 *     the server has already closed all but a few of the idle ones;
 *   - after the idle timeout, every idle connection is closed, a request
 *     stuck half-way through its headers too;
 *   - an event stream (a request being answered) is neither closed by the
 *     flood nor by the idle timeout;
 *   - one client's flood (from 127.0.0.2) closes that client's connections,
 *     not another client's kept-alive one (from 127.0.0.3), which still
 *     answers its next request.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "http_test_client.h"
#include "serve/conn_limits.h"
#include "serve/serve.h"

#define FLOOD 100
#define IDLE_TIMEOUT_S 2

typedef struct {
    char dir[256];
    char db[320];
    serve_t *srv;
    int port;
} fx_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/emile-serve-flood-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/runs.db", f->dir);
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.port = 0;
    cfg.store_path = f->db;
    cfg.emile_path = "/nonexistent/emile";
    cfg.quiet = 1;
    cfg.stop_grace_s = 1;
    cfg.idle_timeout_s = IDLE_TIMEOUT_S;
    char err[512];
    if (serve_start(&cfg, &f->srv, err, sizeof err) != 0) {
        fprintf(stderr, "serve_start: %s\n", err);
        return -1;
    }
    f->port = serve_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* A TCP connection to the server from source address src (a loopback
 * address: all of 127/8 is ours), sending nothing. */
static int connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("bind %s: %s", src, strerror(errno));
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("connect from %s: %s", src, strerror(errno));
    return fd;
}

/* 1 when the server has closed fd (end of stream or reset) within wait_ms. */
static int closed_by_server(int fd, int wait_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0)
        return 0;
    char c;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int count_closed(const int *fds, int n, int wait_ms)
{
    int closed = 0;
    for (int i = 0; i < n; i++)
        closed += closed_by_server(fds[i], i == 0 ? wait_ms : 0);
    return closed;
}

/* GET /api/health on the kept-alive connection fd: the status, 0 when the
 * connection gave no answer within 3 s. */
static int health_keepalive(int fd, int port)
{
    char req[256], buf[4096];
    int n = snprintf(req, sizeof req, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                     port);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return 0;
    size_t len = 0;
    double t0 = now_s();
    while (len < sizeof buf - 1 && now_s() - t0 < 3) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            break;
    }
    buf[len] = 0;
    return strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : 0;
}

static void test_health_answers_under_idle_flood(void **state)
{
    fx_t *f = *state;
    int fds[FLOOD + 1];
    for (int i = 0; i < FLOOD; i++)
        fds[i] = connect_from("127.0.0.1", f->port);
    /* a request stuck half-way through its headers (slowloris) */
    fds[FLOOD] = connect_from("127.0.0.1", f->port);
    const char *half = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    assert_int_equal(send(fds[FLOOD], half, strlen(half), MSG_NOSIGNAL), (ssize_t)strlen(half));

    double t0 = now_s();
    http_resp_t r;
    int rc = http_get(f->port, "/api/health", &r);
    double took = now_s() - t0;
    if (rc != 0 || r.status != 200)
        fail_msg("/api/health under %d idle connections: rc %d, status %d after %.2f s", FLOOD,
                 rc, r.status, took);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    http_resp_free(&r);
    if (took > 3.0)
        fail_msg("/api/health took %.2f s under %d idle connections", took, FLOOD);
    print_message("health answered in %.3f s with %d idle connections open\n", took, FLOOD);

    /* The server kept only a few of the idle ones (the newest). */
    int closed = count_closed(fds, FLOOD + 1, 500);
    print_message("%d of %d idle connections closed by the flood limit\n", closed, FLOOD + 1);
    if (closed < FLOOD + 1 - 32)
        fail_msg("only %d of %d idle connections were closed", closed, FLOOD + 1);

    /* After the idle timeout, all of them, the half-sent request too. */
    closed = count_closed(fds, FLOOD + 1, (IDLE_TIMEOUT_S + 3) * 1000);
    t0 = now_s();
    while (closed < FLOOD + 1 && now_s() - t0 < IDLE_TIMEOUT_S + 3) {
        usleep(200 * 1000);
        closed = count_closed(fds, FLOOD + 1, 0);
    }
    if (closed != FLOOD + 1)
        fail_msg("%d of %d idle connections still open after the idle timeout",
                 FLOOD + 1 - closed, FLOOD + 1);
    assert_true(closed_by_server(fds[FLOOD], 0));
    for (int i = 0; i <= FLOOD; i++)
        close(fds[i]);

    /* and the server still answers */
    assert_int_equal(http_get(f->port, "/api/health", &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

static void test_event_stream_survives(void **state)
{
    fx_t *f = *state;
    sse_stream_t sse;
    assert_int_equal(sse_open(f->port, "/api/events", &sse), 0);
    int fds[FLOOD];
    for (int i = 0; i < FLOOD; i++)
        fds[i] = connect_from("127.0.0.1", f->port);
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/health", &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    /* busy: not closed by the flood, nor after the idle timeout */
    assert_false(closed_by_server(sse.fd, 0));
    sleep(IDLE_TIMEOUT_S + 2);
    assert_false(closed_by_server(sse.fd, 0));
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
    sse_close(&sse);
}

static void test_one_client_floods_only_itself(void **state)
{
    fx_t *f = *state;
    /* another client's connection, kept alive after one request */
    int other = connect_from("127.0.0.3", f->port);
    assert_int_equal(health_keepalive(other, f->port), 200);
    int fds[FLOOD];
    for (int i = 0; i < FLOOD; i++)
        fds[i] = connect_from("127.0.0.2", f->port);
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/health", &r), 0);     /* all accepted by now */
    http_resp_free(&r);
    int closed = count_closed(fds, FLOOD, 500);
    if (closed < FLOOD - 32)
        fail_msg("only %d of the flooding client's %d connections were closed", closed, FLOOD);
    assert_false(closed_by_server(other, 0));
    assert_int_equal(health_keepalive(other, f->port), 200);
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
    close(other);
}

/* The table alone, on socket pairs (a shut down end reads as closed on
 * the other): who is closed when. */
static struct sockaddr_in addr_of(const char *ip)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static int ours[16], n_ours;     /* the table's ends, closed at the end */

static conn_entry_t *open_pair(conn_table_t *t, const char *ip, int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct sockaddr_in a = addr_of(ip);
    *peer = sv[1];
    ours[n_ours++] = sv[0];
    return conn_opened(t, sv[0], (struct sockaddr *)&a, sizeof a);
}

static void test_conn_table_policy(void **state)
{
    (void)state;
    conn_table_t *t = conn_table_create(3, 4);     /* 3 idle in all, 4 per client */
    conn_entry_t *e[10];
    int peer[10];
    size_t open, idle;
    /* b holds one idle connection, then a floods with five: three idle at
     * most, and the ones that go are a's oldest, not b's (older still) */
    e[0] = open_pair(t, "10.0.0.2", &peer[0]);
    for (int i = 1; i <= 5; i++)
        e[i] = open_pair(t, "10.0.0.1", &peer[i]);
    assert_false(closed_by_server(peer[0], 0));
    for (int i = 1; i <= 3; i++)
        assert_true(closed_by_server(peer[i], 0));
    assert_false(closed_by_server(peer[4], 0));
    assert_false(closed_by_server(peer[5], 0));
    conn_counts(t, &open, &idle);
    assert_int_equal(open, 6);          /* closing ones stay until they are gone */
    assert_int_equal(idle, 3);
    for (int i = 1; i <= 3; i++)
        conn_closed(t, e[i]);
    /* a's connections busy: up to its quota of four, then the new one is
     * refused, not a busy one */
    conn_set_busy(t, e[4], 1);
    conn_set_busy(t, e[5], 1);
    e[6] = open_pair(t, "10.0.0.1", &peer[6]);
    conn_set_busy(t, e[6], 1);
    e[7] = open_pair(t, "10.0.0.1", &peer[7]);
    conn_set_busy(t, e[7], 1);
    e[8] = open_pair(t, "10.0.0.1", &peer[8]);
    assert_true(closed_by_server(peer[8], 0));
    for (int i = 4; i <= 7; i++)
        assert_false(closed_by_server(peer[i], 0));
    conn_closed(t, e[8]);
    /* idle again: the one idle longest goes first when the quota is hit */
    conn_set_busy(t, e[5], 0);
    conn_set_busy(t, e[4], 0);
    e[9] = open_pair(t, "10.0.0.1", &peer[9]);
    assert_true(closed_by_server(peer[5], 0));
    assert_false(closed_by_server(peer[4], 0));
    assert_false(closed_by_server(peer[9], 0));
    int gone[] = {0, 4, 5, 6, 7, 9};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        conn_closed(t, e[gone[i]]);
    conn_counts(t, &open, &idle);
    assert_int_equal(open, 0);
    conn_table_destroy(t);
    for (int i = 0; i < 10; i++)
        close(peer[i]);
    for (int i = 0; i < n_ours; i++)
        close(ours[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_table_policy),
        cmocka_unit_test_setup_teardown(test_health_answers_under_idle_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_stream_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_client_floods_only_itself, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
