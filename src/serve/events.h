/*
 * events.h -- the event hub behind GET /api/events: cook jobs publish
 * events (queued, run started, iteration added, run finished) and every
 * connected browser receives them as server-sent events.
 *
 * Events are numbered and the newest EVENTS_RING are kept, so a browser
 * that reconnects with Last-Event-ID misses nothing recent; one that fell
 * further behind receives a "reset" event and reloads its state from the
 * API.  Readers block on a condition variable (libmicrohttpd runs a thread
 * per connection) and send a comment every keepalive period so proxies and
 * the connection timeout do not cut an idle stream.
 */
#ifndef EMILE_SERVE_EVENTS_H
#define EMILE_SERVE_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EVENTS_RING 128
#define EVENTS_MAX_CLIENTS 32

typedef struct event_hub event_hub_t;
typedef struct event_reader event_reader_t;

/* keepalive_s: seconds between keepalive comments on an idle stream. */
event_hub_t *events_create(double keepalive_s);
/* Wake and end every stream; events_destroy must wait until readers are
 * gone (the HTTP server frees them when their connections close). */
void events_close(event_hub_t *h);
void events_destroy(event_hub_t *h);

/* Publish one event: type (e.g. "iteration") and a JSON object (borrowed).
 * Returns its sequence number (first is 1), 0 when the hub is closed. */
uint64_t events_publish(event_hub_t *h, const char *type, const json_t *data);

/* The sequence number of the newest event (0 before any). */
uint64_t events_last_seq(event_hub_t *h);

/* A reader starting after event last_id (0: only events from now on).
 * NULL when the hub is closed or already has EVENTS_MAX_CLIENTS readers. */
event_reader_t *events_reader_open(event_hub_t *h, uint64_t last_id);
/* Fill buf with the next bytes of the stream, blocking until an event or a
 * keepalive is due.  Returns the number of bytes (> 0), or -1 at the end
 * of the stream (hub closed).  Shaped for MHD_ContentReaderCallback. */
ssize_t events_reader_read(event_reader_t *r, char *buf, size_t max);
void events_reader_close(event_reader_t *r);

/* Format one event as SSE text ("id: N\nevent: T\ndata: JSON\n\n");
 * malloc'd, NULL on allocation failure.  Exposed for tests. */
char *events_format(uint64_t id, const char *type, const char *data_json);

#endif
