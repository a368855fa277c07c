/*
 * store_iters.c -- iterations: one row per candidate of a run.
 *
 * The named fields of the iteration object (store.h) are columns; any other
 * field is kept in one "extra" JSON object and merged back on read, so a
 * field the cook adds later round-trips without a schema change.
 */
#include <string.h>
#include "store_private.h"

/* Fields stored as TEXT columns, in column order after run_id, iter,
 * created; then the JSON documents and the numbers. */
static const char *const text_fields[] = {"label", "reason", "source", "lang"};
static const char *const number_fields[] = {"time_ms", "gflops", "roofline_pct",
                                            "speedup", "elapsed_s"};
static const char *const other_fields[] = {"iter", "created", "params", "status",
                                           "error", "compile_log", "report"};

/* Accepted statuses: store.h's set plus the worker's "reference_invalid"
 * (PROTOCOL.md), which a cook may record for iteration 0. */
static const char *const statuses[] = {"valid", "invalid", "compile_error", "crashed",
                                       "timeout", "error", "reference_invalid"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0)
            return 1;
    return 0;
}

static int is_named(const char *key)
{
    return in_list(key, text_fields, COUNT(text_fields)) ||
           in_list(key, number_fields, COUNT(number_fields)) ||
           in_list(key, other_fields, COUNT(other_fields));
}

/* A field that is absent or null, or of the wanted kind. */
static int absent_or(const json_t *v, int (*is_kind)(const json_t *))
{
    return !v || json_is_null(v) || is_kind(v);
}
static int is_string(const json_t *v) { return json_is_string(v); }
static int is_object(const json_t *v) { return json_is_object(v); }
static int is_number(const json_t *v) { return json_is_number(v); }

/* Checks the iteration object before anything is written; 0 or -1. */
static int check_iteration(store_t *s, int64_t run, const json_t *it)
{
    if (!json_is_object(it))
        return store_fail(s, "add iteration to run %lld: not a JSON object", (long long)run);
    json_t *iter = json_object_get(it, "iter");
    if (!json_is_integer(iter) || json_integer_value(iter) < 0 ||
        json_integer_value(iter) > 0x7fffffff)
        return store_fail(s, "add iteration to run %lld: \"iter\" must be an integer >= 0",
                          (long long)run);
    int n = (int)json_integer_value(iter);
    const char *status = json_string_value(json_object_get(it, "status"));
    if (!status || !in_list(status, statuses, COUNT(statuses)))
        return store_fail(s, "add iteration %d to run %lld: unknown status \"%s\"", n,
                          (long long)run, status ? status : "(none)");
    static const char *const strings[] = {"label", "reason", "source", "lang",
                                          "error", "compile_log", "created"};
    for (size_t i = 0; i < COUNT(strings); i++)
        if (!absent_or(json_object_get(it, strings[i]), is_string))
            return store_fail(s, "add iteration %d to run %lld: \"%s\" must be a string",
                              n, (long long)run, strings[i]);
    if (!absent_or(json_object_get(it, "params"), is_object) ||
        !absent_or(json_object_get(it, "report"), is_object))
        return store_fail(s, "add iteration %d to run %lld: \"params\" and \"report\" "
                          "must be objects or null", n, (long long)run);
    for (size_t i = 0; i < COUNT(number_fields); i++)
        if (!absent_or(json_object_get(it, number_fields[i]), is_number))
            return store_fail(s, "add iteration %d to run %lld: \"%s\" must be a number",
                              n, (long long)run, number_fields[i]);
    return 0;
}

/* The fields store.h does not name, as a new object (NULL when none). */
static json_t *extra_fields(const json_t *it)
{
    json_t *extra = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)it, key, v) {
        if (is_named(key))
            continue;
        if (!extra)
            extra = json_object();
        json_object_set(extra, key, v);
    }
    return extra;
}

/* Binds every column of the INSERT below; a SQLite code. */
static int bind_iteration(sqlite3_stmt *st, int64_t run, const json_t *it)
{
    json_t *extra = extra_fields(it);
    int idx = 1, b;
    b = sqlite3_bind_int64(st, idx++, run);
    if (b == SQLITE_OK) b = sqlite3_bind_int64(st, idx++, json_integer_value(json_object_get(it, "iter")));
    if (b == SQLITE_OK) b = store_bind_text(st, idx++, json_string_value(json_object_get(it, "created")));
    for (size_t i = 0; b == SQLITE_OK && i < COUNT(text_fields); i++)
        b = store_bind_text(st, idx++, json_string_value(json_object_get(it, text_fields[i])));
    if (b == SQLITE_OK) b = store_bind_json(st, idx++, json_object_get(it, "params"), 1);
    if (b == SQLITE_OK) b = store_bind_text(st, idx++, json_string_value(json_object_get(it, "status")));
    if (b == SQLITE_OK) b = store_bind_text(st, idx++, json_string_value(json_object_get(it, "error")));
    if (b == SQLITE_OK) b = store_bind_text(st, idx++, json_string_value(json_object_get(it, "compile_log")));
    if (b == SQLITE_OK) b = store_bind_json(st, idx++, json_object_get(it, "report"), 1);
    for (size_t i = 0; b == SQLITE_OK && i < COUNT(number_fields); i++)
        b = store_bind_number(st, idx++, json_object_get(it, number_fields[i]));
    if (b == SQLITE_OK) b = store_bind_json(st, idx++, extra, 1);
    json_decref(extra);
    return b;
}

/*
 * Adds one iteration to run `run`.  The object follows store.h; "iter" (an
 * integer >= 0, unique within the run) and "status" are required; "created"
 * is stamped now unless given; fields store.h does not name are kept and
 * returned by the readers.  Numbers read back as reals.  Fails, writing
 * nothing, when the run is absent, the iteration exists already, or a field
 * has the wrong type.
 */
int store_iteration_add(store_t *s, int64_t run, const json_t *iteration)
{
    if (check_iteration(s, run, iteration) != 0)
        return -1;
    int n = (int)json_integer_value(json_object_get(iteration, "iter"));
    sqlite3_stmt *st = NULL;
    if (store_begin(s, "add iteration") != 0)
        return -1;
    int rc = store_run_exists(s, run);
    if (rc == 0)
        rc = store_fail(s, "add iteration %d: no run %lld", n, (long long)run);
    else if (rc == 1)
        rc = store_prepare(s, &st,
            "INSERT INTO iterations (run_id, iter, created, label, reason, source, lang,"
            " params, status, error, compile_log, report, time_ms, gflops, roofline_pct,"
            " speedup, elapsed_s, extra) VALUES (?1, ?2, coalesce(?3, " STORE_NOW "),"
            " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            "add iteration");
    if (rc == 0) {
        if (bind_iteration(st, run, iteration) != SQLITE_OK)
            rc = store_fail(s, "add iteration %d to run %lld: cannot encode it", n,
                            (long long)run);
        else if (sqlite3_step(st) != SQLITE_DONE)
            rc = (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
                     ? store_fail(s, "run %lld already has iteration %d", (long long)run, n)
                     : store_fail_sql(s, "add iteration");
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0)
        rc = store_prepare(s, &st, "UPDATE runs SET updated = " STORE_NOW " WHERE id = ?1",
                           "add iteration");
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, run);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = store_fail_sql(s, "add iteration");
    }
    sqlite3_finalize(st);
    return store_end(s, rc, "add iteration");
}

#define ITER_SELECT \
    "SELECT iter, created, label, reason, source, lang, params, status, error," \
    " compile_log, report, time_ms, gflops, roofline_pct, speedup, elapsed_s, extra" \
    " FROM iterations WHERE run_id = ?1"

/* Builds the iteration object of the current row; NULL when a stored JSON
 * document does not parse. */
static json_t *row_to_iteration(sqlite3_stmt *st)
{
    json_t *params = store_col_json(st, 6), *report = store_col_json(st, 10);
    json_t *extra = store_col_json(st, 16);
    if (!params || !report || !extra || !(json_is_null(extra) || json_is_object(extra))) {
        json_decref(params);
        json_decref(report);
        json_decref(extra);
        return NULL;
    }
    json_t *it = json_object();
    /* Extra first: a named column always wins over a stray extra key. */
    if (json_is_object(extra))
        json_object_update(it, extra);
    json_decref(extra);
    json_object_set_new(it, "iter", store_col_int(st, 0));
    json_object_set_new(it, "created", store_col_text(st, 1));
    for (size_t i = 0; i < COUNT(text_fields); i++)
        json_object_set_new(it, text_fields[i], store_col_text(st, 2 + (int)i));
    json_object_set_new(it, "params", params);
    json_object_set_new(it, "status", store_col_text(st, 7));
    json_object_set_new(it, "error", store_col_text(st, 8));
    json_object_set_new(it, "compile_log", store_col_text(st, 9));
    json_object_set_new(it, "report", report);
    for (size_t i = 0; i < COUNT(number_fields); i++)
        json_object_set_new(it, number_fields[i], store_col_real(st, 11 + (int)i));
    return it;
}

/* Steps st and collects every row as iteration objects into *out (an
 * array).  0, or -1 with the error recorded. */
static int collect(store_t *s, sqlite3_stmt *st, json_t **out, const char *what)
{
    json_t *list = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *it = row_to_iteration(st);
        if (!it) {
            json_decref(list);
            return store_fail(s, "%s: stored JSON is corrupt", what);
        }
        json_array_append_new(list, it);
    }
    if (rc != SQLITE_DONE) {
        json_decref(list);
        return store_fail_sql(s, what);
    }
    *out = list;
    return 0;
}

/* *out = array of the run's iteration objects in iter order (empty when the
 * run has none; -1 with "no run N" when the run is absent). */
int store_iterations(store_t *s, int64_t run, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    /* One read transaction: the existence check and the rows are the same
     * snapshot even while a cook writes. */
    if (store_exec(s, "BEGIN", "read iterations") != 0)
        return -1;
    int rc = store_run_exists(s, run);
    if (rc == 0)
        rc = store_fail(s, "no run %lld", (long long)run);
    else if (rc == 1)
        rc = store_prepare(s, &st, ITER_SELECT " ORDER BY iter", "read iterations");
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, run);
        rc = collect(s, st, out, "read iterations");
        sqlite3_finalize(st);
    }
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

/* *out = iteration `iter` of run `run`; -1 with "run N has no iteration M"
 * when absent. */
int store_iteration_get(store_t *s, int64_t run, int iter, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    json_t *list = NULL;
    if (store_prepare(s, &st, ITER_SELECT " AND iter = ?2", "read iteration") != 0)
        return -1;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int(st, 2, iter);
    int rc = collect(s, st, &list, "read iteration");
    sqlite3_finalize(st);
    if (rc != 0)
        return -1;
    if (json_array_size(list) == 0) {
        json_decref(list);
        return store_fail(s, "run %lld has no iteration %d", (long long)run, iter);
    }
    *out = json_incref(json_array_get(list, 0));
    json_decref(list);
    return 0;
}
