/*
 * store_private.h -- what the store's own files share: the handle, the one
 * place that turns SQLite errors into messages, transactions, and the
 * conversions between SQLite columns and jansson values.  Not for use
 * outside src/store/.
 */
#ifndef EMILE_STORE_PRIVATE_H
#define EMILE_STORE_PRIVATE_H

#include <sqlite3.h>
#include <jansson.h>
#include <stdint.h>
#include "store.h"

/* Current schema version (PRAGMA user_version) and the application id that
 * marks a SQLite file as an emile store ('Emil'). */
#define STORE_SCHEMA_VERSION 1
#define STORE_APPLICATION_ID 1164798316 /* 0x456d696c; decimal, as SQL needs it */
#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)

/* A timestamp expression evaluated by SQLite: ISO 8601, UTC, milliseconds. */
#define STORE_NOW "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

struct store {
    sqlite3 *db;
    char *path;
    int in_memory;   /* ":memory:" (tests, dry runs): no directory, no WAL */
    char err[2048];
};

/* Records "<formatted message> (store <path>)" as the handle's error;
 * returns -1.  The message comes first so callers can match its start
 * (the web server answers 404 to "no run N ..."). */
int store_fail(store_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the formatted message as it is, for messages that name the file
 * themselves (open-time checks); returns -1. */
int store_fail_plain(store_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records "<what>: <SQLite's message> (store <path>)" for the last SQLite
 * error on the handle; returns -1.  Call it before any rollback (which
 * would replace SQLite's message). */
int store_fail_sql(store_t *s, const char *what);

/* Prepares one statement of static SQL (user data goes through bind only);
 * 0, or -1 with the error recorded. */
int store_prepare(store_t *s, sqlite3_stmt **st, const char *sql, const char *what);

/* Runs static SQL without results (pragmas, BEGIN, migrations). */
int store_exec(store_t *s, const char *sql, const char *what);

/* BEGIN IMMEDIATE: takes the write lock at once (waiting up to the busy
 * timeout), so a transaction never fails half way for lack of it. */
int store_begin(store_t *s, const char *what);

/* Ends the transaction begun by store_begin: COMMIT when rc == 0, ROLLBACK
 * otherwise (keeping the first error's message).  Returns 0 only when the
 * commit succeeded. */
int store_end(store_t *s, int rc, const char *what);

/* 1 when run `run` exists, 0 when not, -1 on error. */
int store_run_exists(store_t *s, int64_t run);

/* Binds a C string or SQL NULL. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *text);
/* Binds a JSON value as compact text, or SQL NULL for NULL / json null when
 * null_as_null is set.  Returns a SQLite code (SQLITE_NOMEM when encoding
 * fails). */
int store_bind_json(sqlite3_stmt *st, int idx, const json_t *j, int null_as_null);
/* Binds a JSON number as REAL, or NULL for an absent value or json null. */
int store_bind_number(sqlite3_stmt *st, int idx, const json_t *j);

/* Column readers: SQL NULL becomes json null.  store_col_json parses the
 * stored text back; it returns NULL (not json null) only when the stored text
 * is not JSON, which the caller reports as corruption. */
json_t *store_col_text(sqlite3_stmt *st, int col);
json_t *store_col_real(sqlite3_stmt *st, int col);
json_t *store_col_int(sqlite3_stmt *st, int col);
json_t *store_col_json(sqlite3_stmt *st, int col);

/* Opens the schema on a freshly opened connection: refuses files that are
 * not SQLite, not emile stores, or newer than this build; sets WAL,
 * synchronous, foreign keys; creates or migrates the tables.  0 or -1. */
int store_schema_open(store_t *s);

#endif
