/*
 * store_schema.c -- the store's tables, their versions, and the checks made
 * before anything is written to a file.
 *
 * Durability: journal_mode=WAL with synchronous=FULL.  In WAL mode NORMAL
 * already survives a killed process (the WAL is in the OS's page cache), but
 * a power cut or kernel panic can lose the last commits; FULL syncs the WAL
 * at every commit so a recorded iteration survives those as well.  The cost
 * is one fsync per write, and a cook writes a few rows per candidate, each
 * of which took seconds to compile and profile, so FULL is free in practice.
 *
 * Versions: PRAGMA user_version holds the schema version and
 * PRAGMA application_id marks the file as an emile store.  A new schema adds
 * one entry to `migrations` (the SQL that takes version i to i+1) and bumps
 * STORE_SCHEMA_VERSION; an older emile refuses a newer file instead of
 * misreading it.
 */
#include <string.h>
#include "store_private.h"

/* migrations[i] takes a store from version i to version i+1; each runs in
 * one transaction together with the user_version update. */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: the first schema.  JSON documents (task, device, params,
     * report, content) are TEXT as given; the numbers a listing shows are
     * columns so listing never parses a report. */
    "CREATE TABLE runs ("
    "  id         INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused */
    "  created    TEXT NOT NULL,"
    "  updated    TEXT NOT NULL,"
    "  status     TEXT NOT NULL,"
    "  backend    TEXT,"
    "  agent      TEXT,"
    "  task       TEXT NOT NULL,"
    "  device     TEXT,"
    "  best_iter  INTEGER,"
    "  note       TEXT,"
    "  tokens_in  INTEGER NOT NULL DEFAULT 0,"
    "  tokens_out INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE iterations ("
    "  run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  iter         INTEGER NOT NULL,"
    "  created      TEXT NOT NULL,"
    "  label        TEXT,"
    "  reason       TEXT,"
    "  source       TEXT,"
    "  lang         TEXT,"
    "  params       TEXT,"
    "  status       TEXT NOT NULL,"
    "  error        TEXT,"
    "  compile_log  TEXT,"
    "  report       TEXT,"
    "  time_ms      REAL,"
    "  gflops       REAL,"
    "  roofline_pct REAL,"
    "  speedup      REAL,"
    "  elapsed_s    REAL,"
    "  extra        TEXT," /* fields the schema does not name, as an object */
    "  PRIMARY KEY (run_id, iter)"
    ");"
    "CREATE TABLE messages ("
    "  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  seq        INTEGER NOT NULL,"
    "  iter       INTEGER,"
    "  role       TEXT NOT NULL,"
    "  content    TEXT NOT NULL,"
    "  tokens_in  INTEGER NOT NULL DEFAULT 0,"
    "  tokens_out INTEGER NOT NULL DEFAULT 0,"
    "  created    TEXT NOT NULL,"
    "  PRIMARY KEY (run_id, seq)"
    ");"
    "CREATE TABLE devices ("
    "  key     TEXT PRIMARY KEY,"
    "  device  TEXT NOT NULL,"
    "  updated TEXT NOT NULL"
    ");"
    "PRAGMA application_id = " STORE_STR(STORE_APPLICATION_ID) ";"
    "PRAGMA user_version = 1;",
};

/* Reads one integer pragma.  The first read of a file is where SQLite finds
 * out it is not a database, so that error is worded for the user here. */
static int pragma_int(store_t *s, const char *sql, int *value)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *value = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK && (rc & 0xff) == SQLITE_NOTADB) {
        store_fail_plain(s, "%s is not a SQLite database (SQLite: %s); the file was "
                         "left unchanged", s->path, sqlite3_errmsg(s->db));
    } else if (rc != SQLITE_OK) {
        store_fail_sql(s, "read schema version");
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Whether the file holds any table (a SQLite file from another program). */
static int has_tables(store_t *s, int *any)
{
    sqlite3_stmt *st;
    if (store_prepare(s, &st, "SELECT count(*) FROM sqlite_master", "read schema") != 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *any = sqlite3_column_int(st, 0) > 0;
    else
        store_fail_sql(s, "read schema");
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Refuses files that are not ours or are newer than this build; nothing has
 * been written when this fails. */
static int check_identity_read(store_t *s)
{
    int version = 0, app = 0, any = 0;
    if (pragma_int(s, "PRAGMA user_version", &version) != 0 ||
        pragma_int(s, "PRAGMA application_id", &app) != 0)
        return -1;
    if (app != 0 && app != STORE_APPLICATION_ID)
        return store_fail_plain(s, "%s is a SQLite database of another program "
                                "(application_id 0x%08x), not an emile store; the file "
                                "was left unchanged", s->path, (unsigned)app);
    if (app == 0) {
        if (has_tables(s, &any) != 0)
            return -1;
        if (any || version != 0)
            return store_fail_plain(s, "%s is a SQLite database but not an emile "
                                    "store; the file was left unchanged", s->path);
    }
    if (version > STORE_SCHEMA_VERSION)
        return store_fail_plain(s, "%s has store schema version %d, newer than this "
                                "emile understands (%d); use a newer emile", s->path,
                                version, STORE_SCHEMA_VERSION);
    return 0;
}

/* The identity checks read three things; one read transaction makes them
 * a consistent snapshot even while another process creates the schema. */
static int check_identity(store_t *s)
{
    if (store_exec(s, "BEGIN", "read schema") != 0)
        return -1;
    int rc = check_identity_read(s);
    /* A read transaction: COMMIT and ROLLBACK both just release it. */
    sqlite3_exec(s->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Sets a pragma that answers with one text row and checks the answer. */
static int pragma_expect(store_t *s, const char *sql, const char *want)
{
    sqlite3_stmt *st;
    if (store_prepare(s, &st, sql, sql) != 0)
        return -1;
    int rc = sqlite3_step(st);
    int ok = 0;
    if (rc == SQLITE_ROW) {
        const char *got = (const char *)sqlite3_column_text(st, 0);
        ok = got && strcmp(got, want) == 0;
        if (!ok)
            store_fail(s, "%s answered \"%s\", not \"%s\" (WAL needs a local "
                       "filesystem with shared memory)", sql, got ? got : "", want);
    } else {
        store_fail_sql(s, sql);
    }
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* Brings the schema up to STORE_SCHEMA_VERSION in one write transaction.
 * The version is read again under the write lock: another process may have
 * created the tables since check_identity looked. */
static int migrate(store_t *s)
{
    int version = 0;
    if (store_begin(s, "create schema") != 0)
        return -1;
    int rc = pragma_int(s, "PRAGMA user_version", &version);
    for (int v = version; rc == 0 && v < STORE_SCHEMA_VERSION; v++)
        rc = store_exec(s, migrations[v], "create schema");
    return store_end(s, rc, "create schema");
}

int store_schema_open(store_t *s)
{
    int version = 0;
    if (check_identity(s) != 0)
        return -1;
    if (pragma_expect(s, "PRAGMA journal_mode=WAL", s->in_memory ? "memory" : "wal") != 0)
        return -1;
    if (store_exec(s, "PRAGMA synchronous=FULL", "set synchronous") != 0 ||
        store_exec(s, "PRAGMA foreign_keys=ON", "enable foreign keys") != 0)
        return -1;
    if (pragma_int(s, "PRAGMA user_version", &version) != 0)
        return -1;
    if (version < STORE_SCHEMA_VERSION)
        return migrate(s);
    return 0;
}
