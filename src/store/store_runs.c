/*
 * store_runs.c -- runs: create, update (status, best, tokens), read, list.
 * Each write is one transaction that also stamps the run's "updated".
 */
#include <string.h>
#include "store_private.h"

/*
 * Creates a run with status "running" and *run_id its new id (ids grow and
 * are never reused).  task must be a JSON object; backend, agent and device
 * may be NULL (stored as null).
 */
int store_run_create(store_t *s, const json_t *task, const char *backend,
                     const char *agent, const json_t *device, int64_t *run_id)
{
    if (!json_is_object(task))
        return store_fail(s, "create run: the task must be a JSON object");
    sqlite3_stmt *st = NULL;
    if (store_begin(s, "create run") != 0)
        return -1;
    int rc = store_prepare(s, &st,
        "INSERT INTO runs (created, updated, status, backend, agent, task, device)"
        " VALUES (" STORE_NOW ", " STORE_NOW ", 'running', ?1, ?2, ?3, ?4)",
        "create run");
    if (rc == 0) {
        int b = store_bind_text(st, 1, backend);
        if (b == SQLITE_OK) b = store_bind_text(st, 2, agent);
        if (b == SQLITE_OK) b = store_bind_json(st, 3, task, 0);
        if (b == SQLITE_OK) b = store_bind_json(st, 4, device, 1);
        if (b != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
            rc = b != SQLITE_OK ? store_fail(s, "create run: cannot encode the task or device")
                                : store_fail_sql(s, "create run");
    }
    if (rc == 0)
        *run_id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return store_end(s, rc, "create run");
}

/* Runs one UPDATE of a run (bound by the caller-supplied binder through
 * `st`) in its own transaction; "no run N" when nothing matched. */
static int update_run(store_t *s, sqlite3_stmt *st, int64_t run, const char *what)
{
    int rc = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_fail_sql(s, what);
    else if (sqlite3_changes(s->db) == 0)
        rc = store_fail(s, "%s: no run %lld", what, (long long)run);
    return rc;
}

/*
 * Sets the run's status (non-empty) and, when note is not NULL, its note
 * (NULL keeps the note it had; "" clears it).
 */
int store_run_set_status(store_t *s, int64_t run, const char *status, const char *note)
{
    if (!status || !*status)
        return store_fail(s, "set status of run %lld: empty status", (long long)run);
    sqlite3_stmt *st = NULL;
    if (store_begin(s, "set run status") != 0)
        return -1;
    int rc = store_prepare(s, &st,
        "UPDATE runs SET status = ?2, note = coalesce(?3, note), updated = " STORE_NOW
        " WHERE id = ?1", "set run status");
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, run);
        store_bind_text(st, 2, status);
        store_bind_text(st, 3, note);
        rc = update_run(s, st, run, "set run status");
    }
    sqlite3_finalize(st);
    return store_end(s, rc, "set run status");
}

/*
 * Records best_iter as the run's best iteration; that iteration must
 * already be stored.  A negative best_iter clears it (best_iter null).
 */
int store_run_set_best(store_t *s, int64_t run, int best_iter)
{
    sqlite3_stmt *st = NULL;
    if (store_begin(s, "set best iteration") != 0)
        return -1;
    int rc = 0;
    if (best_iter >= 0) {
        rc = store_prepare(s, &st, "SELECT 1 FROM iterations WHERE run_id = ?1 AND iter = ?2",
                           "set best iteration");
        if (rc == 0) {
            sqlite3_bind_int64(st, 1, run);
            sqlite3_bind_int(st, 2, best_iter);
            int r = sqlite3_step(st);
            if (r == SQLITE_DONE)
                rc = store_fail(s, "set best iteration: run %lld has no iteration %d",
                                (long long)run, best_iter);
            else if (r != SQLITE_ROW)
                rc = store_fail_sql(s, "set best iteration");
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == 0)
        rc = store_prepare(s, &st,
            "UPDATE runs SET best_iter = ?2, updated = " STORE_NOW " WHERE id = ?1",
            "set best iteration");
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, run);
        if (best_iter >= 0)
            sqlite3_bind_int(st, 2, best_iter);
        else
            sqlite3_bind_null(st, 2);
        rc = update_run(s, st, run, "set best iteration");
    }
    sqlite3_finalize(st);
    return store_end(s, rc, "set best iteration");
}

/*
 * Adds LLM tokens to the run's totals (both >= 0).  store_message_add
 * already counts a message's tokens; use this only for tokens spent without
 * a stored message.
 */
int store_run_add_tokens(store_t *s, int64_t run, int64_t tokens_in, int64_t tokens_out)
{
    if (tokens_in < 0 || tokens_out < 0)
        return store_fail(s, "add tokens to run %lld: negative count", (long long)run);
    sqlite3_stmt *st = NULL;
    if (store_begin(s, "add tokens") != 0)
        return -1;
    int rc = store_prepare(s, &st,
        "UPDATE runs SET tokens_in = tokens_in + ?2, tokens_out = tokens_out + ?3,"
        " updated = " STORE_NOW " WHERE id = ?1", "add tokens");
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int64(st, 2, tokens_in);
        sqlite3_bind_int64(st, 3, tokens_out);
        rc = update_run(s, st, run, "add tokens");
    }
    sqlite3_finalize(st);
    return store_end(s, rc, "add tokens");
}

/* The columns of a run object, in the order row_to_run reads them.  "best"
 * summarises the best iteration so a listing needs no second query. */
#define RUN_SELECT \
    "SELECT r.id, r.created, r.updated, r.status, r.backend, r.agent, r.task," \
    " r.device, r.best_iter, r.note, r.tokens_in, r.tokens_out," \
    " (SELECT count(*) FROM iterations i WHERE i.run_id = r.id)," \
    " b.label, b.time_ms, b.gflops, b.roofline_pct, b.speedup" \
    " FROM runs r LEFT JOIN iterations b ON b.run_id = r.id AND b.iter = r.best_iter"

/* Builds the run object of the current row; NULL when a stored JSON
 * document does not parse (reported by the caller as corruption). */
static json_t *row_to_run(sqlite3_stmt *st)
{
    json_t *task = store_col_json(st, 6), *device = store_col_json(st, 7);
    if (!task || !device) {
        json_decref(task);
        json_decref(device);
        return NULL;
    }
    json_t *best = json_null();
    if (sqlite3_column_type(st, 8) != SQLITE_NULL)
        best = json_pack("{s:o, s:o, s:o, s:o, s:o}",
                         "label", store_col_text(st, 13), "time_ms", store_col_real(st, 14),
                         "gflops", store_col_real(st, 15),
                         "roofline_pct", store_col_real(st, 16),
                         "speedup", store_col_real(st, 17));
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "id", store_col_int(st, 0), "created", store_col_text(st, 1),
                     "updated", store_col_text(st, 2), "status", store_col_text(st, 3),
                     "backend", store_col_text(st, 4), "agent", store_col_text(st, 5),
                     "task", task, "device", device, "best_iter", store_col_int(st, 8),
                     "note", store_col_text(st, 9), "tokens_in", store_col_int(st, 10),
                     "tokens_out", store_col_int(st, 11), "n_iters", store_col_int(st, 12),
                     "best", best);
}

/*
 * *out = the run object (store.h shape, plus "best": null or {"label",
 * "time_ms", "gflops", "roofline_pct", "speedup"} of the best iteration).
 * -1 with "no run N" when absent.  The caller owns *out.
 */
int store_run_get(store_t *s, int64_t run, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    if (store_prepare(s, &st, RUN_SELECT " WHERE r.id = ?1", "read run") != 0)
        return -1;
    sqlite3_bind_int64(st, 1, run);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = row_to_run(st);
        rc = *out ? 0 : store_fail(s, "read run %lld: stored JSON is corrupt", (long long)run);
    } else if (rc == SQLITE_DONE) {
        rc = store_fail(s, "no run %lld", (long long)run);
    } else {
        rc = store_fail_sql(s, "read run");
    }
    sqlite3_finalize(st);
    return rc;
}

/* *out = array of run objects, newest (highest id) first; limit <= 0
 * means all. */
int store_runs_list(store_t *s, int limit, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    if (store_prepare(s, &st, RUN_SELECT " ORDER BY r.id DESC LIMIT ?1", "list runs") != 0)
        return -1;
    sqlite3_bind_int(st, 1, limit > 0 ? limit : -1);   /* LIMIT -1: no limit */
    json_t *list = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *r = row_to_run(st);
        if (!r) {
            rc = SQLITE_CORRUPT;
            break;
        }
        json_array_append_new(list, r);
    }
    if (rc == SQLITE_DONE) {
        *out = list;
        rc = 0;
    } else {
        rc = rc == SQLITE_CORRUPT ? store_fail(s, "list runs: stored JSON is corrupt")
                                  : store_fail_sql(s, "list runs");
        json_decref(list);
    }
    sqlite3_finalize(st);
    return rc;
}

/* *run = the newest run's id, 0 when the store holds no run. */
int store_run_latest(store_t *s, int64_t *run)
{
    *run = 0;
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "SELECT coalesce(max(id), 0) FROM runs", "latest run") != 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *run = sqlite3_column_int64(st, 0);
    else
        store_fail_sql(s, "latest run");
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}
