/*
 * store.h -- the run store: one SQLite file (WAL), every write in its own
 * transaction, so a cook killed at any instant loses nothing already
 * recorded and `emile resume` can continue it.
 *
 * Every function returns 0 on success and -1 on failure, with a message in
 * store_errmsg() naming the problem (file path, SQLite's words).
 *
 * Objects cross this boundary as jansson JSON:
 *
 * run:       {"id", "created", "updated", "status", "backend", "agent",
 *             "task" (object), "device" (object), "best_iter" (int or null),
 *             "note", "n_iters", "tokens_in", "tokens_out"}
 * iteration: {"iter", "created", "label", "reason", "source", "lang",
 *             "params" (object), "status" ("valid" | "invalid" | "compile_error"
 *             | "crashed" | "timeout" | "error"), "error" (string or null),
 *             "compile_log", "report" (the profile report object or null),
 *             "time_ms", "gflops", "roofline_pct", "speedup", "elapsed_s"}
 * message:   {"seq", "iter", "role", "content" (any JSON), "tokens_in",
 *             "tokens_out", "created"}
 */
#ifndef EMILE_STORE_H
#define EMILE_STORE_H

#include <jansson.h>
#include <stdint.h>

typedef struct store store_t;

/* Where the default store path came from. */
typedef enum store_origin {
    STORE_FROM_ENV,  /* $EMILE_STORE: the user named it, so its directory is
                      * never created (a missing one is most likely a typo) */
    STORE_FROM_XDG,  /* $XDG_DATA_HOME/emile/runs.db */
    STORE_FROM_HOME, /* ~/.local/share/emile/runs.db */
} store_origin_t;

/* The default path: $EMILE_STORE, else $XDG_DATA_HOME/emile/runs.db, else
 * ~/.local/share/emile/runs.db, and where it came from (origin may be
 * NULL).  Creates nothing: a front end opens it with STORE_OPEN_CREATE_DIRS
 * only when the origin is not STORE_FROM_ENV and it means to write. */
int store_default_location(char *buf, size_t n, store_origin_t *origin);
/* The name of an origin for messages: "EMILE_STORE", "XDG_DATA_HOME", "HOME". */
const char *store_origin_name(store_origin_t origin);
/* store_default_location, then creates the directory of an XDG or HOME
 * default (never $EMILE_STORE's). */
int store_default_path(char *buf, size_t n);

/* A store path the user named (--store PATH): 0 when it can name a store
 * file -- its folder exists and the path is not itself a folder (the file
 * need not exist yet) -- else -1 with err naming the problem ("the folder
 * /x does not exist"), for front ends that refuse such a path as bad input
 * before doing any work.  Creates nothing. */
int store_check_named_path(const char *path, char *err, size_t errlen);

/* store_open's flags (0: the directory must exist; the file is created). */
#define STORE_OPEN_CREATE_DIRS 1 /* create the file's directory (0700) when missing */
#define STORE_OPEN_EXISTING 2    /* the file must exist already: nothing is created
                                  * (overrides STORE_OPEN_CREATE_DIRS) */
int store_open(const char *path, int flags, store_t **out);
void store_close(store_t *s);
const char *store_errmsg(const store_t *s);
/* For store_open failures (no handle yet). */
const char *store_last_open_error(void);
/* Why the last store_open on this thread failed, when it was for something
 * missing: STORE_MISSING_DIR (the file's directory does not exist),
 * STORE_MISSING_FILE (the directory exists, the file does not, and
 * STORE_OPEN_EXISTING was given), else STORE_MISSING_NONE. */
typedef enum store_missing {
    STORE_MISSING_NONE,
    STORE_MISSING_DIR,
    STORE_MISSING_FILE,
} store_missing_t;
store_missing_t store_last_open_missing(void);

/* Runs. */
int store_run_create(store_t *s, const json_t *task, const char *backend,
                     const char *agent, const json_t *device, int64_t *run_id);
int store_run_set_status(store_t *s, int64_t run, const char *status, const char *note);
int store_run_set_best(store_t *s, int64_t run, int best_iter);
int store_run_add_tokens(store_t *s, int64_t run, int64_t tokens_in, int64_t tokens_out);
/* The run object (without iterations); -1 with "no run N" when absent. */
int store_run_get(store_t *s, int64_t run, json_t **out);
/* Newest first; limit <= 0 means all. */
int store_runs_list(store_t *s, int limit, json_t **out);
/* The newest run's id, 0 when the store is empty. */
int store_run_latest(store_t *s, int64_t *run);

/* Iterations: "iter" must be set and unique within the run. */
int store_iteration_add(store_t *s, int64_t run, const json_t *iteration);
int store_iterations(store_t *s, int64_t run, json_t **out);   /* array, by iter */
int store_iteration_get(store_t *s, int64_t run, int iter, json_t **out);

/* LLM conversation records (never a key). */
int store_message_add(store_t *s, int64_t run, int iter, const char *role,
                      const json_t *content, int64_t tokens_in, int64_t tokens_out);
int store_messages(store_t *s, int64_t run, json_t **out);

/* Device ceilings cache, keyed by "backend:host:device". */
int store_device_put(store_t *s, const char *key, const json_t *device);
int store_device_get(store_t *s, const char *key, json_t **out); /* *out NULL if absent */

#endif
