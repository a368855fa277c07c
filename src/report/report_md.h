/*
 * report_md.h -- the readable forms of a run: the Markdown report written
 * at the end of a cook (and by `emile report`), and the terminal table of
 * one profile report (`emile profile`, and the best kernel's section of
 * the Markdown report).
 */
#ifndef EMILE_REPORT_MD_H
#define EMILE_REPORT_MD_H

#include <jansson.h>
#include <stddef.h>

/* The Markdown report of a run.
 *
 * run:        the store.h run object (task, device, best_iter, status ...).
 *             Task fields read: "name", "op" (a name, or an object with
 *             "name"), "params" (object), "dtype", "backend", "target" (or
 *             "target_pct"), "max_iters", "agent"; each is optional.
 * iterations: array of store.h iteration objects (NULL or [] for none).
 *
 * Sections: title and status, task, device and its measured ceilings, a
 * table of iterations (iter, label, status, median time in ms, GFLOP/s,
 * % of roofline, speedup over iteration 0, diagnosis tags, the agent's
 * reason), the best kernel (run.best_iter, else the fastest valid
 * iteration) with its full profile and source, and the head of the error of
 * every failed iteration.  Text from the input is escaped so that it cannot
 * break the table or become HTML.  Returns a malloc'd string, or NULL with
 * a message in err when run is not an object, iterations is neither NULL
 * nor an array, or memory runs out. */
char *report_markdown(const json_t *run, const json_t *iterations,
                      char *err, size_t errlen);

/* The profile report of PROTOCOL.md as a plain-text table for a terminal:
 * time (median, min, max, spread, stdev, p10-p90, reps), GFLOP/s and GB/s,
 * intensity, ridge and bound, % of each ceiling, % of roofline, parallelism,
 * max error, each device kernel's resources, counters, and the diagnosis
 * with its details.  Lines for fields the report lacks are left out.
 * Returns a malloc'd string ending in a newline; NULL when report is not an
 * object or memory runs out. */
char *report_profile_table(const json_t *report);

#endif
