/*
 * cook_event.h -- the events of a cook: the one definition the cook loop
 * emits, `emile cook --events` prints as NDJSON, and the web server reads
 * back from its cook children and relays to browsers.
 *
 * Every event is one JSON object {"event": NAME, "run": RUN, ...}:
 *
 *   "run"        a run starts or resumes: "name", "op", "device", "backend",
 *                "lang" (when not the backend's first), "target",
 *                "max_iters", "agent", "workers", and "resumed_at" (the next
 *                iteration) when resumed
 *   "progress"   what is happening now, for a live line: "phase" (below),
 *                "detail" (words), "iter" (the iteration, or absent),
 *                "worker" (the pool slot, or absent), "k" and "n" (step k of
 *                n, or absent), "elapsed_s" (since the phase began)
 *   "iteration"  one iteration recorded: "iteration" (store.h's object)
 *   "worker"     a worker of the pool changed: "worker" (slot, from 1),
 *                "state" ("up"; "failed": it did not start, and is tried
 *                again; "lost": it died, hung or answered garbage, and is
 *                replaced; "down": given up for this cook), "cmd", "why"
 *   "done"       the run ended: "status" ("done", "stopped", "failed"),
 *                "note", "best_iter" (-1: none)
 *   "menu"       several runs cooked together ended: "runs" (one summary
 *                object per run: run, name, status, best_iter, time_ms,
 *                roofline_pct, speedup, n_iters)
 *
 * Phases of "progress": the cook's own -- "device" (asking the workers),
 * "propose" (the agent chooses), "evaluate" (a worker has the candidate),
 * "retry" (again, after its worker was lost), "confirm" (re-measured beside
 * the incumbent) -- and the worker's, relayed as it reports them:
 * "compile", "reference", "validate", "time", "held_back", "counters".
 */
#ifndef EMILE_COOK_EVENT_H
#define EMILE_COOK_EVENT_H

#include <jansson.h>
#include <stdint.h>

typedef enum cook_event_kind {
    COOK_EVENT_RUN,
    COOK_EVENT_PROGRESS,
    COOK_EVENT_ITERATION,
    COOK_EVENT_WORKER,
    COOK_EVENT_DONE,
    COOK_EVENT_MENU,
    COOK_EVENT_UNKNOWN          /* not one of the above (never emitted) */
} cook_event_kind_t;

/* The event's name ("run", ...); "unknown" for COOK_EVENT_UNKNOWN. */
const char *cook_event_name(cook_event_kind_t kind);

/* The kind of an event object (its "event" member); COOK_EVENT_UNKNOWN
 * when ev is not an object or names no event of this list. */
cook_event_kind_t cook_event_kind(const json_t *ev);

/* A new event object {"event": name, "run": run} (run 0: no "run"). */
json_t *cook_event_new(cook_event_kind_t kind, int64_t run);

/* Receives every event of a cook, one at a time (the cook serialises
 * calls), in order.  ev is borrowed: copy what outlives the call. */
typedef void (*cook_event_fn)(void *ctx, cook_event_kind_t kind, const json_t *ev);

#endif
