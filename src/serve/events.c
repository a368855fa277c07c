/* events.c -- the event hub: a ring of formatted server-sent events and
 * blocking readers, one per connected browser. */
#include "events.h"
#include "util/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct event_hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next_seq;              /* the number the next event gets */
    char *ring[EVENTS_RING];        /* SSE text of event seq at [seq % RING] */
    int closing;
    int n_readers;
    double keepalive_s;
};

struct event_reader {
    event_hub_t *hub;
    uint64_t cursor;                /* last event delivered */
    int greeted;
    char *pending;                  /* text being sent */
    size_t len, off;
};

event_hub_t *events_create(double keepalive_s)
{
    event_hub_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* Monotonic, so a clock change cannot stall or flood keepalives. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->mu, NULL);
    h->next_seq = 1;
    h->keepalive_s = keepalive_s > 0 ? keepalive_s : 15.0;
    return h;
}

void events_close(event_hub_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->closing = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void events_destroy(event_hub_t *h)
{
    if (!h)
        return;
    events_close(h);
    pthread_mutex_lock(&h->mu);
    /* Readers belong to HTTP responses; the server has stopped by now, so
     * this only waits for the last ones to be released. */
    while (h->n_readers > 0)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < EVENTS_RING; i++)
        free(h->ring[i]);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

char *events_format(uint64_t id, const char *type, const char *data_json)
{
    /* SSE ends a field at a newline; compact JSON has none (newlines in
     * strings are escaped), so one data line always suffices. */
    size_t n = strlen(type) + strlen(data_json) + 64;
    char *s = malloc(n);
    if (!s)
        return NULL;
    if (id)
        snprintf(s, n, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", id, type, data_json);
    else
        snprintf(s, n, "event: %s\ndata: %s\n\n", type, data_json);
    return s;
}

uint64_t events_publish(event_hub_t *h, const char *type, const json_t *data)
{
    char *json = json_dumps(data, JSON_COMPACT);
    if (!json)
        return 0;
    uint64_t seq = 0;
    pthread_mutex_lock(&h->mu);
    if (!h->closing) {
        seq = h->next_seq;
        char *text = events_format(seq, type, json);
        if (text) {
            free(h->ring[seq % EVENTS_RING]);
            h->ring[seq % EVENTS_RING] = text;
            h->next_seq++;
            pthread_cond_broadcast(&h->cv);
        } else {
            seq = 0;
        }
    }
    pthread_mutex_unlock(&h->mu);
    free(json);
    return seq;
}

uint64_t events_last_seq(event_hub_t *h)
{
    pthread_mutex_lock(&h->mu);
    uint64_t s = h->next_seq - 1;
    pthread_mutex_unlock(&h->mu);
    return s;
}

event_reader_t *events_reader_open(event_hub_t *h, uint64_t last_id)
{
    event_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_lock(&h->mu);
    if (h->closing || h->n_readers >= EVENTS_MAX_CLIENTS) {
        pthread_mutex_unlock(&h->mu);
        free(r);
        return NULL;
    }
    h->n_readers++;
    r->hub = h;
    /* A Last-Event-ID from the future (a restarted server) means "now". */
    r->cursor = (last_id && last_id < h->next_seq) ? last_id : h->next_seq - 1;
    pthread_mutex_unlock(&h->mu);
    return r;
}

/* Take the next text to send; called with the lock held.  0 when there is
 * one, 1 when the wait timed out with nothing, -1 when closing. */
static int next_text(event_reader_t *r, const struct timespec *deadline)
{
    event_hub_t *h = r->hub;
    for (;;) {
        if (h->closing)
            return -1;
        if (!r->greeted) {
            char data[64];
            snprintf(data, sizeof data, "{\"last\":%" PRIu64 "}", h->next_seq - 1);
            r->pending = events_format(0, "hello", data);
            r->greeted = 1;
            return r->pending ? 0 : -1;
        }
        uint64_t oldest = h->next_seq > EVENTS_RING ? h->next_seq - EVENTS_RING : 1;
        if (r->cursor + 1 < oldest) {
            /* Fell out of the ring: the browser must reload from the API. */
            r->cursor = h->next_seq - 1;
            r->pending = events_format(0, "reset", "{}");
            return r->pending ? 0 : -1;
        }
        if (r->cursor + 1 < h->next_seq) {
            r->cursor++;
            r->pending = strdup(h->ring[r->cursor % EVENTS_RING]);
            return r->pending ? 0 : -1;
        }
        int rc = pthread_cond_timedwait(&h->cv, &h->mu, deadline);
        if (rc == ETIMEDOUT)
            return 1;
    }
}

ssize_t events_reader_read(event_reader_t *r, char *buf, size_t max)
{
    if (!r->pending) {
        struct timespec dl = clock_mono_after(r->hub->keepalive_s);
        pthread_mutex_lock(&r->hub->mu);
        int rc = next_text(r, &dl);
        pthread_mutex_unlock(&r->hub->mu);
        if (rc < 0)
            return -1;
        if (rc == 1)
            r->pending = strdup(": keepalive\n\n");
        if (!r->pending)
            return -1;
        r->len = strlen(r->pending);
        r->off = 0;
    }
    size_t n = r->len - r->off;
    if (n > max)
        n = max;
    memcpy(buf, r->pending + r->off, n);
    r->off += n;
    if (r->off == r->len) {
        free(r->pending);
        r->pending = NULL;
    }
    return (ssize_t)n;
}

void events_reader_close(event_reader_t *r)
{
    if (!r)
        return;
    event_hub_t *h = r->hub;
    pthread_mutex_lock(&h->mu);
    h->n_readers--;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    free(r->pending);
    free(r);
}
