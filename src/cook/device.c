/* device.c -- see cook_fetch_device in cook.h. */
#include <stdio.h>

#include "cook/cook.h"
#include "worker/worker_client.h"

json_t *cook_fetch_device(const char *worker_cmd, const char *backend, char *err, size_t n)
{
    worker_client_t w;
    if (worker_client_open(&w, worker_cmd, err, n) != 0)
        return NULL;
    w.timeout_s = WORKER_CLIENT_DEVICES_TIMEOUT_S;
    json_t *req = json_pack("{ssss}", "cmd", "devices", "backend", backend);
    json_t *reply = worker_client_call(&w, req, err, n);
    json_decref(req);
    worker_client_close(&w);
    json_t *dev = json_incref(json_array_get(json_object_get(reply, "devices"), 0));
    if (!dev) {
        const char *why = json_string_value(
            json_object_get(json_array_get(json_object_get(reply, "unavailable"), 0), "why"));
        /* No reply is the worker's failure, not the backend's. */
        char prev[1024];
        snprintf(prev, sizeof prev, "%.1000s", err);
        if (!reply)
            snprintf(err, n, "cannot ask the worker about backend %s: %.1000s", backend, prev);
        else
            snprintf(err, n, "backend %s is not available: %.1000s", backend,
                     why ? why : "the worker named no reason");
    }
    json_decref(reply);
    return dev;
}
