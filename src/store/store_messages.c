/*
 * store_messages.c -- the LLM conversation of a run (requests and replies,
 * never an API key), numbered per run so a resumed agent can rebuild it in
 * order.
 */
#include "store_private.h"

/*
 * Appends a message to run `run`: seq is the next number of the run (from
 * 1), iter the iteration it belongs to, role a non-empty string, content any
 * JSON (NULL is stored as null).  The message's tokens are added to the
 * run's totals in the same transaction, so totals and messages always agree
 * (do not count them again with store_run_add_tokens).
 */
int store_message_add(store_t *s, int64_t run, int iter, const char *role,
                      const json_t *content, int64_t tokens_in, int64_t tokens_out)
{
    if (!role || !*role)
        return store_fail(s, "add message to run %lld: empty role", (long long)run);
    if (tokens_in < 0 || tokens_out < 0)
        return store_fail(s, "add message to run %lld: negative token count", (long long)run);
    json_t *null = json_null();
    sqlite3_stmt *st = NULL;
    if (store_begin(s, "add message") != 0)
        return -1;
    int rc = store_run_exists(s, run);
    if (rc == 0)
        rc = store_fail(s, "add message: no run %lld", (long long)run);
    else if (rc == 1)
        rc = store_prepare(s, &st,
            "INSERT INTO messages (run_id, seq, iter, role, content, tokens_in,"
            " tokens_out, created)"
            " SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, " STORE_NOW
            " FROM messages WHERE run_id = ?1", "add message");
    if (rc == 0) {
        int b = sqlite3_bind_int64(st, 1, run);
        if (b == SQLITE_OK) b = sqlite3_bind_int(st, 2, iter);
        if (b == SQLITE_OK) b = store_bind_text(st, 3, role);
        if (b == SQLITE_OK) b = store_bind_json(st, 4, content ? content : null, 0);
        if (b == SQLITE_OK) b = sqlite3_bind_int64(st, 5, tokens_in);
        if (b == SQLITE_OK) b = sqlite3_bind_int64(st, 6, tokens_out);
        if (b != SQLITE_OK)
            rc = store_fail(s, "add message to run %lld: cannot encode its content",
                            (long long)run);
        else if (sqlite3_step(st) != SQLITE_DONE)
            rc = store_fail_sql(s, "add message");
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0)
        rc = store_prepare(s, &st,
            "UPDATE runs SET tokens_in = tokens_in + ?2, tokens_out = tokens_out + ?3,"
            " updated = " STORE_NOW " WHERE id = ?1", "add message");
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int64(st, 2, tokens_in);
        sqlite3_bind_int64(st, 3, tokens_out);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = store_fail_sql(s, "add message");
    }
    sqlite3_finalize(st);
    return store_end(s, rc, "add message");
}

/* *out = array of the run's message objects in seq order (empty when none;
 * an absent run also gives an empty array). */
int store_messages(store_t *s, int64_t run, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    if (store_prepare(s, &st,
            "SELECT seq, iter, role, content, tokens_in, tokens_out, created"
            " FROM messages WHERE run_id = ?1 ORDER BY seq", "read messages") != 0)
        return -1;
    sqlite3_bind_int64(st, 1, run);
    json_t *list = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *content = store_col_json(st, 3);
        if (!content) {
            rc = SQLITE_CORRUPT;
            break;
        }
        json_array_append_new(list, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
            "seq", store_col_int(st, 0), "iter", store_col_int(st, 1),
            "role", store_col_text(st, 2), "content", content,
            "tokens_in", store_col_int(st, 4), "tokens_out", store_col_int(st, 5),
            "created", store_col_text(st, 6)));
    }
    if (rc == SQLITE_DONE) {
        *out = list;
        rc = 0;
    } else {
        rc = rc == SQLITE_CORRUPT ? store_fail(s, "read messages: stored JSON is corrupt")
                                  : store_fail_sql(s, "read messages");
        json_decref(list);
    }
    sqlite3_finalize(st);
    return rc;
}
