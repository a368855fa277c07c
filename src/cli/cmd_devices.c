/* cmd_devices.c -- `emile devices`: the backends found here and their
 * measured ceilings (measured once, then cached; --remeasure forces).
 * Exit 0, or 1 when a backend named on the command line is not here
 * (`devices cuda` on a machine without a GPU: the reason on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli.h"
#include "worker/worker_client.h"

int cmd_devices(int argc, char **argv)
{
    cli_common_t c;
    if (cli_parse(argc, argv, NULL, &c, 0) != 0)
        return 2;
    if (c.n_positional == 1 && !backend_find(c.positional[0])) {
        fprintf(stderr, "emile: unknown backend '%s' (%s)\n", c.positional[0], backend_names());
        return 2;
    }
    char err[1024];
    worker_client_t w;
    if (worker_client_open(&w, c.worker, err, sizeof err) != 0) {
        fprintf(stderr, "emile: %s\n", err);
        return 1;
    }
    w.timeout_s = WORKER_CLIENT_DEVICES_TIMEOUT_S;
    json_t *req = json_pack("{sssb}", "cmd", "devices", "remeasure", c.remeasure);
    if (c.n_positional == 1)
        json_object_set_new(req, "backend", json_string(c.positional[0]));
    json_t *reply = worker_client_call(&w, req, err, sizeof err);
    json_decref(req);
    worker_client_close(&w);
    if (!reply) {
        fprintf(stderr, "emile: %s\n", err);
        return 1;
    }
    if (c.json) {
        char *s = json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
    } else {
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(reply, "devices"), i, d) {
            const json_t *ce = json_object_get(d, "ceilings");
            printf("%s: %s%s\n", json_string_value(json_object_get(d, "backend")),
                   json_string_value(json_object_get(d, "name")),
                   json_is_true(json_object_get(d, "cached")) ? "  (ceilings cached)" : "  (ceilings measured now)");
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(ce, "peak_gflops"), k, v)
                printf("  peak %-5s %10.1f GFLOP/s\n", k, json_number_value(v));
            printf("  memory bandwidth %8.1f GB/s\n", json_number_value(json_object_get(ce, "bandwidth_gbs")));
            const json_t *ds = json_object_get(d, "datasheet");
            json_object_foreach((json_t *)ds, k, v) printf("  datasheet %-14s %10.1f\n", k, json_number_value(v));
        }
        if (c.n_positional == 0)        /* a named one is an error, below */
            json_array_foreach(json_object_get(reply, "unavailable"), i, d)
                printf("%s: not available: %s\n",
                       json_string_value(json_object_get(d, "backend")),
                       json_string_value(json_object_get(d, "why")));
    }
    /* A backend asked for by name that is not here is a failure, with its
     * reason, as for any command that cannot do what it was asked. */
    int rc = 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(reply, "unavailable"), i, d) {
        const char *name = json_string_value(json_object_get(d, "backend"));
        const char *why = json_string_value(json_object_get(d, "why"));
        if (c.n_positional == 1 && name && strcmp(name, c.positional[0]) == 0) {
            fprintf(stderr, "emile: %s is not available here: %s\n", name,
                    why ? why : "no reason given");
            rc = 1;
        }
    }
    json_decref(reply);
    return rc;
}
