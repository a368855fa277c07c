/* api_events.c -- GET /api/events: the event hub as a server-sent event
 * stream (text/event-stream), resumable with Last-Event-ID. */
#include "serve_internal.h"

#include <stdlib.h>

static ssize_t read_events(void *cls, uint64_t pos, char *buf, size_t max)
{
    ssize_t n = events_reader_read(cls, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void free_reader(void *cls)
{
    events_reader_close(cls);
}

enum MHD_Result api_events(request_t *r, int64_t id)
{
    /* EventSource sends Last-Event-ID when it reconnects; ?last= lets a
     * page that loaded state at event N ask for what came after. */
    const char *last = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (!last)
        last = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "last");
    uint64_t last_id = last ? strtoull(last, NULL, 10) : 0;
    event_reader_t *rd = events_reader_open(r->s->hub, last_id);
    if (!rd)
        return respond_error(r, 503, "too many event streams are open");
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, read_events, rd, free_reader);
    if (!resp) {
        events_reader_close(rd);
        return MHD_NO;
    }
    respond_add_headers(resp, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}
