/* routes.c -- the API's routing table.  A pattern's "#" matches one run or
 * job id (a positive decimal integer); everything else matches literally. */
#include "serve_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct route {
    const char *method;
    const char *pattern;
    route_fn fn;
} route_t;

static const route_t routes[] = {
    {"GET", "/api/health", api_health},
    {"GET", "/api/runs", api_runs_list},
    {"GET", "/api/runs/#", api_run_get},
    {"GET", "/api/runs/#/svg", api_run_svg},
    {"GET", "/api/runs/#/export", api_run_export},
    {"GET", "/api/runs/#/best", api_run_best},
    {"POST", "/api/runs/#/stop", api_run_stop},
    {"POST", "/api/runs/#/resume", api_run_resume},
    {"POST", "/api/cook", api_cook},
    {"POST", "/api/problem", api_problem},
    {"GET", "/api/jobs", api_jobs},
    {"POST", "/api/jobs/#/stop", api_job_stop},
    {"GET", "/api/events", api_events},
    {"GET", "/api/examples", api_examples},
    {"GET", "/api/ops", api_ops},
    {"GET", "/api/backends", api_backends},
    {"GET", "/api/taste", api_taste},
    {"POST", "/api/taste", api_taste_run},
};

/* 1 when url matches pattern; *id gets the number a "#" matched. */
static int match(const char *pattern, const char *url, int64_t *id)
{
    while (*pattern) {
        if (*pattern == '#') {
            if (*url < '1' || *url > '9')
                return 0;
            char *end;
            errno = 0;
            long long v = strtoll(url, &end, 10);
            if (errno == ERANGE)
                return 0;
            *id = v;
            url = end;
            pattern++;
            continue;
        }
        if (*pattern++ != *url++)
            return 0;
    }
    return *url == 0;
}

enum MHD_Result routes_dispatch(request_t *r)
{
    int path_matched = 0;
    char allow[64] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int64_t id = 0;
        if (!match(routes[i].pattern, r->url, &id))
            continue;
        if (strcmp(routes[i].method, r->method) == 0)
            return routes[i].fn(r, id);
        path_matched = 1;
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                 allow[0] ? ", " : "", routes[i].method);
    }
    if (path_matched)
        return respond_error(r, 405, "%s is not allowed on %s (allowed: %s)", r->method, r->url,
                             allow);
    return respond_error(r, 404, "no API endpoint %s", r->url);
}
