/*
 * store_sql.c -- the store's SQLite plumbing: error messages (the one place
 * that turns SQLite's codes into words), statements, transactions and the
 * conversions between columns and JSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "store_private.h"

int store_fail(store_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    if (len >= 0 && (size_t)len < sizeof s->err)
        snprintf(s->err + len, sizeof s->err - (size_t)len, " (store %s)",
                 s->path ? s->path : "?");
    return -1;
}

int store_fail_plain(store_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return -1;
}

int store_fail_sql(store_t *s, const char *what)
{
    const char *words = s->db ? sqlite3_errmsg(s->db) : "no connection";
    int code = s->db ? sqlite3_extended_errcode(s->db) : SQLITE_MISUSE;
    /* A locked database after the busy timeout is the one error a user can
     * act on (another emile holds the store), so it gets a hint. */
    if ((code & 0xff) == SQLITE_BUSY)
        return store_fail(s, "%s: %s (another process kept the store locked "
                          "for more than the busy timeout)", what, words);
    return store_fail(s, "%s: %s", what, words);
}

int store_prepare(store_t *s, sqlite3_stmt **st, const char *sql, const char *what)
{
    *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        store_fail_sql(s, what);
        sqlite3_finalize(*st);
        *st = NULL;
        return -1;
    }
    return 0;
}

int store_exec(store_t *s, const char *sql, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_fail_sql(s, what);
    return 0;
}

int store_begin(store_t *s, const char *what)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return store_fail_sql(s, what);
    return 0;
}

int store_end(store_t *s, int rc, const char *what)
{
    if (rc == 0) {
        if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
            return 0;
        store_fail_sql(s, what);
    }
    /* Rollback may itself fail when SQLite already rolled back (e.g. after
     * SQLITE_FULL); either way nothing of this write remains. */
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

int store_run_exists(store_t *s, int64_t run)
{
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "SELECT 1 FROM runs WHERE id = ?1", "look up run") != 0)
        return -1;
    sqlite3_bind_int64(st, 1, run);
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found < 0)
        store_fail_sql(s, "look up run");
    sqlite3_finalize(st);
    return found;
}

int store_bind_text(sqlite3_stmt *st, int idx, const char *text)
{
    if (!text)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
}

int store_bind_json(sqlite3_stmt *st, int idx, const json_t *j, int null_as_null)
{
    if (!j || (null_as_null && json_is_null(j)))
        return sqlite3_bind_null(st, idx);
    /* Compact, and jansson's default 17 significant digits, so every real
     * reads back bit-identical. */
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return SQLITE_NOMEM;
    int rc = sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
    free(text);
    return rc;
}

int store_bind_number(sqlite3_stmt *st, int idx, const json_t *j)
{
    if (!j || !json_is_number(j))
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_double(st, idx, json_number_value(j));
}

json_t *store_col_text(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    const char *text = (const char *)sqlite3_column_text(st, col);
    int len = sqlite3_column_bytes(st, col);
    /* stringn keeps text with embedded bytes jansson would otherwise cut. */
    json_t *j = json_stringn(text ? text : "", text ? (size_t)len : 0);
    return j ? j : json_null();
}

json_t *store_col_real(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_real(sqlite3_column_double(st, col));
}

json_t *store_col_int(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_integer((json_int_t)sqlite3_column_int64(st, col));
}

json_t *store_col_json(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    const char *text = (const char *)sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    if (!text)
        return NULL;
    return json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}
