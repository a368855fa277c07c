/*
 * test_serve_events.c -- the event hub behind GET /api/events: SSE framing,
 * delivery in order, Last-Event-ID, falling out of the ring, keepalives,
 * the reader limit and waking readers at close.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/events.h"

/* Read one whole SSE block (through "\n\n") from r into buf. */
static void read_block(event_reader_t *r, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    while (!strstr(buf, "\n\n")) {
        char small[7];                       /* small reads: test the pending path */
        ssize_t k = events_reader_read(r, small, sizeof small);
        assert_true(k > 0);
        assert_true(len + (size_t)k < n);
        memcpy(buf + len, small, (size_t)k);
        len += (size_t)k;
        buf[len] = 0;
    }
}

static void publish_n(event_hub_t *h, int from, int to)
{
    for (int i = from; i <= to; i++) {
        json_t *o = json_pack("{s:i, s:s}", "n", i, "text", "line1\nline2 <script>");
        assert_int_equal(events_publish(h, "iteration", o), (uint64_t)i);
        json_decref(o);
    }
}

static void test_format(void **state)
{
    (void)state;
    char *s = events_format(7, "done", "{\"a\":1}");
    assert_string_equal(s, "id: 7\nevent: done\ndata: {\"a\":1}\n\n");
    free(s);
    s = events_format(0, "hello", "{}");
    assert_string_equal(s, "event: hello\ndata: {}\n\n");
    free(s);
}

static void test_order_and_resume(void **state)
{
    (void)state;
    event_hub_t *h = events_create(5);
    event_reader_t *live = events_reader_open(h, 0);
    publish_n(h, 1, 3);
    assert_int_equal(events_last_seq(h), 3);
    char buf[4096];
    read_block(live, buf, sizeof buf);
    assert_string_equal(buf, "event: hello\ndata: {\"last\":3}\n\n");
    for (int i = 1; i <= 3; i++) {
        read_block(live, buf, sizeof buf);
        char want[64];
        snprintf(want, sizeof want, "id: %d\nevent: iteration\ndata: {\"n\":%d,", i, i);
        assert_memory_equal(buf, want, strlen(want));
        /* the newline inside the string stays escaped: one data line */
        assert_non_null(strstr(buf, "line1\\nline2"));
    }
    /* A reconnecting browser with Last-Event-ID 2 gets 3 and nothing older. */
    event_reader_t *again = events_reader_open(h, 2);
    read_block(again, buf, sizeof buf);
    read_block(again, buf, sizeof buf);
    assert_memory_equal(buf, "id: 3\n", 6);
    events_reader_close(again);
    events_reader_close(live);
    events_destroy(h);
}

static void test_ring_overflow_resets(void **state)
{
    (void)state;
    event_hub_t *h = events_create(5);
    event_reader_t *slow = events_reader_open(h, 0);
    char buf[4096];
    read_block(slow, buf, sizeof buf);                 /* hello */
    publish_n(h, 1, EVENTS_RING + 10);
    read_block(slow, buf, sizeof buf);
    assert_string_equal(buf, "event: reset\ndata: {}\n\n");
    /* After the reset it follows live events again. */
    publish_n(h, EVENTS_RING + 11, EVENTS_RING + 11);
    read_block(slow, buf, sizeof buf);
    char want[32];
    snprintf(want, sizeof want, "id: %d\n", EVENTS_RING + 11);
    assert_memory_equal(buf, want, strlen(want));
    events_reader_close(slow);
    events_destroy(h);
}

static void test_keepalive(void **state)
{
    (void)state;
    event_hub_t *h = events_create(0.2);
    event_reader_t *r = events_reader_open(h, 0);
    char buf[256];
    read_block(r, buf, sizeof buf);                    /* hello */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    read_block(r, buf, sizeof buf);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_string_equal(buf, ": keepalive\n\n");
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* The configured 0.2 s interval is honoured: not early, and far below
     * the 15 s default (a keepalive_s ignored).  5 s leaves room for a slow
     * ASan CI machine on 2 cores. */
    assert_true(dt >= 0.15 && dt < 5.0);
    events_reader_close(r);
    events_destroy(h);
}

static void test_reader_limit(void **state)
{
    (void)state;
    event_hub_t *h = events_create(5);
    event_reader_t *rs[EVENTS_MAX_CLIENTS];
    for (int i = 0; i < EVENTS_MAX_CLIENTS; i++)
        assert_non_null(rs[i] = events_reader_open(h, 0));
    assert_null(events_reader_open(h, 0));
    events_reader_close(rs[0]);
    assert_non_null(rs[0] = events_reader_open(h, 0));
    for (int i = 0; i < EVENTS_MAX_CLIENTS; i++)
        events_reader_close(rs[i]);
    events_destroy(h);
}

static void *blocked_reader(void *arg)
{
    event_reader_t *r = arg;
    char buf[256];
    ssize_t k;
    while ((k = events_reader_read(r, buf, sizeof buf)) > 0)
        ;
    return (void *)(intptr_t)k;
}

static void test_close_wakes_readers(void **state)
{
    (void)state;
    event_hub_t *h = events_create(60);
    event_reader_t *r = events_reader_open(h, 0);
    pthread_t t;
    pthread_create(&t, NULL, blocked_reader, r);
    struct timespec ms50 = {0, 50 * 1000 * 1000};
    nanosleep(&ms50, NULL);
    events_close(h);
    void *ret;
    pthread_join(t, &ret);                 /* returns although keepalive is 60 s */
    assert_int_equal((intptr_t)ret, -1);
    json_t *late = json_object();
    assert_int_equal(events_publish(h, "late", late), 0);
    json_decref(late);
    assert_null(events_reader_open(h, 0));
    events_reader_close(r);
    events_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_order_and_resume),
        cmocka_unit_test(test_ring_overflow_resets),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_reader_limit),
        cmocka_unit_test(test_close_wakes_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
