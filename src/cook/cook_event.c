/* cook_event.c -- see cook_event.h. */
#include "cook/cook_event.h"

#include <string.h>

static const char *const names[] = {
    [COOK_EVENT_RUN] = "run",
    [COOK_EVENT_PROGRESS] = "progress",
    [COOK_EVENT_ITERATION] = "iteration",
    [COOK_EVENT_WORKER] = "worker",
    [COOK_EVENT_DONE] = "done",
    [COOK_EVENT_MENU] = "menu",
};

const char *cook_event_name(cook_event_kind_t kind)
{
    if ((int)kind < 0 || kind >= COOK_EVENT_UNKNOWN)
        return "unknown";
    return names[kind];
}

cook_event_kind_t cook_event_kind(const json_t *ev)
{
    const char *name = json_string_value(json_object_get(ev, "event"));
    if (!json_is_object(ev) || !name)
        return COOK_EVENT_UNKNOWN;
    for (int k = 0; k < COOK_EVENT_UNKNOWN; k++)
        if (strcmp(names[k], name) == 0)
            return (cook_event_kind_t)k;
    return COOK_EVENT_UNKNOWN;
}

json_t *cook_event_new(cook_event_kind_t kind, int64_t run)
{
    json_t *ev = json_object();
    if (!ev)
        return NULL;
    json_object_set_new(ev, "event", json_string(cook_event_name(kind)));
    if (run > 0)
        json_object_set_new(ev, "run", json_integer(run));
    return ev;
}
