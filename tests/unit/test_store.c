/*
 * test_store.c -- the run store: round trips, errors, durability.
 *
 * Every test works in a fresh temporary directory.  The crash test kills a
 * writing child with SIGKILL and checks that every iteration it reported as
 * committed is present and intact, and that the file passes
 * PRAGMA integrity_check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sqlite3.h>

#include "store/store.h"

typedef struct {
    char dir[256];
    char db[320];
} fixture_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/emile_store_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/runs.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static store_t *open_ok(const char *path)
{
    store_t *s = NULL;
    int rc = store_open(path, 0, &s);
    if (rc != 0)
        print_error("store_open: %s\n", store_last_open_error());
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

static json_t *sample_task(void)
{
    return json_pack("{s:s, s:s, s:{s:i, s:i, s:i}, s:f, s:s}", "name", "prefill",
                     "op", "attention", "params", "batch", 1, "seq", 512, "head_dim", 128,
                     "target_pct", 61.25, "reference_source", "void f(void) {}\n");
}

/* A full iteration with every named field (reals, so it round-trips
 * exactly) and one field store.h does not name. */
static json_t *sample_iter(int iter, const char *label)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:s, s:n, s:s,"
                     " s:{s:{s:f, s:i}, s:f, s:[s, s]}, s:f, s:f, s:f, s:f, s:f, s:{s:s}}",
                     "iter", iter, "label", label, "reason", "fewer spills",
                     "source", "__global__ void k() {}\n", "lang", "cu",
                     "params", "bq", 32 + iter, "bk", 64, "status", "valid", "error",
                     "compile_log", "ptxas info: 0 spills",
                     "report", "time_ms", "median", 1.5 + iter, "reps", 20,
                     "roofline_pct", 42.125, "diagnosis", "memory_bound", "spills",
                     "time_ms", 1.5 + iter, "gflops", 1234.5, "roofline_pct", 42.125,
                     "speedup", 1.75, "elapsed_s", 3.25, "diagnosis", "tag", "latency");
}

/* The iteration read back equals the one written, apart from "created". */
static void assert_iter_equal(const json_t *want, const json_t *got)
{
    json_t *g = json_deep_copy(got);
    assert_true(json_is_string(json_object_get(g, "created")));
    json_object_del(g, "created");
    if (!json_equal(want, g)) {
        char *a = json_dumps(want, JSON_SORT_KEYS), *b = json_dumps(g, JSON_SORT_KEYS);
        print_error("want %s\n got %s\n", a, b);
        free(a);
        free(b);
    }
    assert_true(json_equal(want, g));
    json_decref(g);
}

static int64_t make_run(store_t *s, const char *backend)
{
    json_t *task = sample_task();
    int64_t id = -1;
    assert_int_equal(store_run_create(s, task, backend, "builtin", NULL, &id), 0);
    assert_true(id > 0);
    json_decref(task);
    return id;
}

static void add_iter(store_t *s, int64_t run, int iter)
{
    json_t *it = sample_iter(iter, "x");
    int rc = store_iteration_add(s, run, it);
    if (rc != 0)
        print_error("%s\n", store_errmsg(s));
    assert_int_equal(rc, 0);
    json_decref(it);
}

/* Reads one text pragma through a raw SQLite connection (not the store's). */
static void raw_pragma(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_run_and_iterations_round_trip(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    json_t *task = sample_task();
    json_t *device = json_pack("{s:s, s:{s:f}}", "name", "H100", "ceilings", "bandwidth_gbs", 3350.5);
    int64_t run = 0;
    assert_int_equal(store_run_create(s, task, "cuda", "builtin", device, &run), 0);
    assert_int_equal(run, 1);

    /* Added out of order: the reader returns them by iter. */
    json_t *it2 = sample_iter(2, "two"), *it0 = sample_iter(0, "reference"), *it1 = sample_iter(1, "one");
    assert_int_equal(store_iteration_add(s, run, it2), 0);
    assert_int_equal(store_iteration_add(s, run, it0), 0);
    assert_int_equal(store_iteration_add(s, run, it1), 0);

    json_t *r = NULL;
    assert_int_equal(store_run_get(s, run, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), run);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "running");
    assert_string_equal(json_string_value(json_object_get(r, "backend")), "cuda");
    assert_string_equal(json_string_value(json_object_get(r, "agent")), "builtin");
    assert_true(json_equal(json_object_get(r, "task"), task));
    assert_true(json_equal(json_object_get(r, "device"), device));
    assert_int_equal(json_integer_value(json_object_get(r, "n_iters")), 3);
    assert_true(json_is_null(json_object_get(r, "best_iter")));
    assert_true(json_is_null(json_object_get(r, "best")));
    assert_true(json_is_null(json_object_get(r, "note")));
    assert_int_equal(json_integer_value(json_object_get(r, "tokens_in")), 0);
    json_decref(r);

    json_t *its = NULL;
    assert_int_equal(store_iterations(s, run, &its), 0);
    assert_int_equal(json_array_size(its), 3);
    assert_iter_equal(it0, json_array_get(its, 0));
    assert_iter_equal(it1, json_array_get(its, 1));
    assert_iter_equal(it2, json_array_get(its, 2));
    assert_true(json_equal(json_object_get(json_array_get(its, 1), "report"),
                           json_object_get(it1, "report")));
    assert_true(json_equal(json_object_get(json_array_get(its, 1), "params"),
                           json_object_get(it1, "params")));
    json_decref(its);

    json_t *one = NULL;
    assert_int_equal(store_iteration_get(s, run, 1, &one), 0);
    assert_iter_equal(it1, one);
    json_decref(one);
    assert_int_equal(store_iteration_get(s, run, 7, &one), -1);
    assert_null(one);
    assert_non_null(strstr(store_errmsg(s), "has no iteration 7"));

    /* Best, status, note. */
    assert_int_equal(store_run_set_best(s, run, 2), 0);
    assert_int_equal(store_run_set_status(s, run, "done", "reached target"), 0);
    assert_int_equal(store_run_set_status(s, run, "done", NULL), 0);   /* keeps note */
    assert_int_equal(store_run_get(s, run, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "best_iter")), 2);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "done");
    assert_string_equal(json_string_value(json_object_get(r, "note")), "reached target");
    json_t *best = json_object_get(r, "best");
    assert_string_equal(json_string_value(json_object_get(best, "label")), "two");
    assert_true(json_real_value(json_object_get(best, "time_ms")) == 3.5);
    json_decref(r);
    assert_int_equal(store_run_set_best(s, run, -1), 0);
    assert_int_equal(store_run_get(s, run, &r), 0);
    assert_true(json_is_null(json_object_get(r, "best_iter")));
    json_decref(r);

    json_decref(it0); json_decref(it1); json_decref(it2);
    json_decref(task); json_decref(device);
    store_close(s);
}

static void test_iteration_minimal_and_key_numbers(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    int64_t run = make_run(s, "cpu");
    /* Only the required fields; an integer time reads back as a real. */
    json_t *it = json_pack("{s:i, s:s, s:s, s:i}", "iter", 0, "status", "compile_error",
                           "error", "nvcc failed", "time_ms", 5);
    assert_int_equal(store_iteration_add(s, run, it), 0);
    json_t *got = NULL;
    assert_int_equal(store_iteration_get(s, run, 0, &got), 0);
    assert_string_equal(json_string_value(json_object_get(got, "status")), "compile_error");
    assert_string_equal(json_string_value(json_object_get(got, "error")), "nvcc failed");
    assert_true(json_is_real(json_object_get(got, "time_ms")));
    assert_true(json_real_value(json_object_get(got, "time_ms")) == 5.0);
    assert_true(json_is_null(json_object_get(got, "report")));
    assert_true(json_is_null(json_object_get(got, "params")));
    assert_true(json_is_null(json_object_get(got, "gflops")));
    assert_true(json_is_null(json_object_get(got, "source")));
    json_decref(got);
    json_decref(it);
    store_close(s);
}

static void test_iteration_rejects_bad_input(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    int64_t run = make_run(s, "cpu");
    json_t *bad_status = json_pack("{s:i, s:s}", "iter", 1, "status", "great");
    json_t *no_iter = json_pack("{s:s}", "status", "valid");
    json_t *bad_report = json_pack("{s:i, s:s, s:s}", "iter", 1, "status", "valid", "report", "x");
    json_t *bad_number = json_pack("{s:i, s:s, s:s}", "iter", 1, "status", "valid", "gflops", "1");
    assert_int_equal(store_iteration_add(s, run, bad_status), -1);
    assert_non_null(strstr(store_errmsg(s), "unknown status \"great\""));
    assert_int_equal(store_iteration_add(s, run, no_iter), -1);
    assert_non_null(strstr(store_errmsg(s), "\"iter\""));
    assert_int_equal(store_iteration_add(s, run, bad_report), -1);
    assert_int_equal(store_iteration_add(s, run, bad_number), -1);
    assert_non_null(strstr(store_errmsg(s), "\"gflops\""));
    json_t *ok = sample_iter(1, "x");
    assert_int_equal(store_iteration_add(s, run + 100, ok), -1);
    assert_non_null(strstr(store_errmsg(s), "no run 101"));
    /* Nothing above was written. */
    json_t *its = NULL;
    assert_int_equal(store_iterations(s, run, &its), 0);
    assert_int_equal(json_array_size(its), 0);
    json_decref(its);
    assert_int_equal(store_iterations(s, run + 100, &its), -1);
    assert_int_equal(strncmp(store_errmsg(s), "no run 101", 10), 0);
    assert_int_equal(store_run_set_best(s, run, 3), -1);
    assert_non_null(strstr(store_errmsg(s), "has no iteration 3"));
    assert_int_equal(store_run_set_status(s, 999, "done", NULL), -1);
    assert_non_null(strstr(store_errmsg(s), "no run 999"));
    json_t *r = NULL;
    assert_int_equal(store_run_get(s, 999, &r), -1);
    assert_null(r);
    /* The message starts with "no run N" (the web server answers 404 to
     * that) and names the file. */
    char want[512];
    snprintf(want, sizeof want, "no run 999 (store %s)", f->db);
    assert_string_equal(store_errmsg(s), want);
    json_decref(ok); json_decref(bad_status); json_decref(no_iter);
    json_decref(bad_report); json_decref(bad_number);
    store_close(s);
}

static void test_duplicate_iter_keeps_first(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    int64_t run = make_run(s, "cpu");
    json_t *first = sample_iter(1, "first"), *second = sample_iter(1, "second");
    json_object_set_new(second, "source", json_string("different"));
    assert_int_equal(store_iteration_add(s, run, first), 0);
    assert_int_equal(store_iteration_add(s, run, second), -1);
    assert_non_null(strstr(store_errmsg(s), "already has iteration 1"));
    assert_non_null(strstr(store_errmsg(s), f->db));
    json_t *got = NULL;
    assert_int_equal(store_iteration_get(s, run, 1, &got), 0);
    assert_iter_equal(first, got);
    json_decref(got);
    /* The failed write left no transaction open: the next write works. */
    add_iter(s, run, 2);
    json_t *r = NULL;
    assert_int_equal(store_run_get(s, run, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "n_iters")), 2);
    json_decref(r);
    json_decref(first); json_decref(second);
    store_close(s);
}

static void test_list_order_and_latest(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    int64_t latest = -1;
    assert_int_equal(store_run_latest(s, &latest), 0);
    assert_int_equal(latest, 0);
    json_t *list = NULL;
    assert_int_equal(store_runs_list(s, 0, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);

    int64_t a = make_run(s, "cpu"), b = make_run(s, "cuda"), c = make_run(s, "cpu");
    add_iter(s, b, 0);
    add_iter(s, b, 1);
    assert_int_equal(store_run_latest(s, &latest), 0);
    assert_int_equal(latest, c);
    assert_int_equal(store_runs_list(s, 0, &list), 0);
    assert_int_equal(json_array_size(list), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "id")), c);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "id")), b);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 2), "id")), a);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "n_iters")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "n_iters")), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "backend")), "cuda");
    json_decref(list);
    assert_int_equal(store_runs_list(s, 2, &list), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "id")), b);
    json_decref(list);
    store_close(s);
}

static void test_missing_directory(void **state)
{
    fixture_t *f = *state;
    char path[512], dir[400];
    snprintf(dir, sizeof dir, "%s/x/y", f->dir);
    snprintf(path, sizeof path, "%s/runs.db", dir);
    store_t *s = (store_t *)&s;   /* must be reset to NULL */
    assert_int_equal(store_open(path, 0, &s), -1);
    assert_null(s);
    char want[512];
    snprintf(want, sizeof want, "store directory %s does not exist", dir);
    assert_string_equal(store_last_open_error(), want);
    struct stat st;
    assert_int_equal(stat(dir, &st), -1);

    assert_int_equal(store_open(path, 1, &s), 0);
    assert_non_null(s);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(make_run(s, "cpu"), 1);
    store_close(s);
    assert_int_equal(stat(path, &st), 0);

    /* A directory where the file should be. */
    assert_int_equal(store_open(dir, 0, &s), -1);
    assert_non_null(strstr(store_last_open_error(), "not a regular file"));
}

/* STORE_OPEN_EXISTING: a reader never creates a store (nor its folder), and
 * says which of the two is missing. */
static void test_open_existing_creates_nothing(void **state)
{
    fixture_t *f = *state;
    char path[512], dir[400], want[600];
    struct stat st;
    store_t *s = (store_t *)&s;
    assert_int_equal(store_open(f->db, STORE_OPEN_EXISTING, &s), -1);
    assert_null(s);
    snprintf(want, sizeof want, "no run store at %s", f->db);
    assert_string_equal(store_last_open_error(), want);
    assert_int_equal(store_last_open_missing(), STORE_MISSING_FILE);
    assert_int_equal(stat(f->db, &st), -1);

    /* Creating the folder is not asked for when the file must exist. */
    snprintf(dir, sizeof dir, "%s/x/y", f->dir);
    snprintf(path, sizeof path, "%s/runs.db", dir);
    assert_int_equal(store_open(path, STORE_OPEN_EXISTING | STORE_OPEN_CREATE_DIRS, &s), -1);
    assert_int_equal(store_last_open_missing(), STORE_MISSING_DIR);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(store_open(path, 0, &s), -1);
    assert_int_equal(store_last_open_missing(), STORE_MISSING_DIR);

    /* Other failures are not "missing"; a success resets it. */
    assert_int_equal(store_open(f->dir, STORE_OPEN_EXISTING, &s), -1);
    assert_int_equal(store_last_open_missing(), STORE_MISSING_NONE);
    store_close(open_ok(f->db));
    assert_int_equal(store_open(f->db, STORE_OPEN_EXISTING, &s), 0);
    assert_int_equal(store_last_open_missing(), STORE_MISSING_NONE);
    assert_int_equal(make_run(s, "cpu"), 1);
    store_close(s);
}

/* store_default_location creates nothing and says where the path came
 * from; store_default_path never creates the folder $EMILE_STORE names. */
static void test_default_location(void **state)
{
    fixture_t *f = *state;
    char buf[512], want[512], env[512];
    struct stat st;
    store_origin_t origin = STORE_FROM_HOME;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

    snprintf(env, sizeof env, "%s/typo/sub/x.db", f->dir);
    setenv("EMILE_STORE", env, 1);
    assert_int_equal(store_default_location(buf, sizeof buf, &origin), 0);
    assert_string_equal(buf, env);
    assert_int_equal(origin, STORE_FROM_ENV);
    assert_string_equal(store_origin_name(origin), "EMILE_STORE");
    assert_int_equal(store_default_path(buf, sizeof buf), 0);
    snprintf(want, sizeof want, "%s/typo", f->dir);
    assert_int_equal(stat(want, &st), -1);
    unsetenv("EMILE_STORE");

    char xdg[400];
    snprintf(xdg, sizeof xdg, "%s/xdg", f->dir);
    setenv("XDG_DATA_HOME", xdg, 1);
    assert_int_equal(store_default_location(buf, sizeof buf, &origin), 0);
    snprintf(want, sizeof want, "%s/emile/runs.db", xdg);
    assert_string_equal(buf, want);
    assert_int_equal(origin, STORE_FROM_XDG);
    assert_int_equal(stat(xdg, &st), -1);

    setenv("XDG_DATA_HOME", "relative/ignored", 1);
    setenv("HOME", f->dir, 1);
    assert_int_equal(store_default_location(buf, sizeof buf, NULL), 0);
    assert_int_equal(store_default_location(buf, sizeof buf, &origin), 0);
    snprintf(want, sizeof want, "%s/.local/share/emile/runs.db", f->dir);
    assert_string_equal(buf, want);
    assert_int_equal(origin, STORE_FROM_HOME);
    snprintf(want, sizeof want, "%s/.local", f->dir);
    assert_int_equal(stat(want, &st), -1);
    assert_int_equal(store_default_location(buf, 10, &origin), -1);
    assert_non_null(strstr(store_last_open_error(), "does not fit"));

    unsetenv("XDG_DATA_HOME");
    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_home);
}

static void write_file(const char *path, const char *bytes, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
}

static size_t read_file(const char *path, char *buf, size_t n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    return got;
}

static void assert_no_sidecars(const char *db)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s-wal", db);
    assert_int_equal(stat(p, &st), -1);
    snprintf(p, sizeof p, "%s-shm", db);
    assert_int_equal(stat(p, &st), -1);
    snprintf(p, sizeof p, "%s-journal", db);
    assert_int_equal(stat(p, &st), -1);
}

static void test_not_a_database_left_unchanged(void **state)
{
    fixture_t *f = *state;
    /* Long enough to hold a SQLite header's worth of bytes, and a short one. */
    char text[4096];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    const size_t sizes[] = {sizeof text, 11};
    for (size_t k = 0; k < 2; k++) {
        write_file(f->db, text, sizes[k]);
        store_t *s = NULL;
        assert_int_equal(store_open(f->db, 0, &s), -1);
        assert_null(s);
        assert_non_null(strstr(store_last_open_error(), "not a SQLite database"));
        assert_non_null(strstr(store_last_open_error(), f->db));
        char back[8192];
        assert_int_equal(read_file(f->db, back, sizeof back), sizes[k]);
        assert_memory_equal(back, text, sizes[k]);
        assert_no_sidecars(f->db);
    }
}

static void test_foreign_sqlite_database_refused(void **state)
{
    fixture_t *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('hi')",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char before[65536], after[65536];
    size_t n = read_file(f->db, before, sizeof before);
    store_t *s = NULL;
    assert_int_equal(store_open(f->db, 0, &s), -1);
    assert_non_null(strstr(store_last_open_error(), "not an emile store"));
    assert_int_equal(read_file(f->db, after, sizeof after), n);
    assert_memory_equal(before, after, n);
    char mode[32];
    raw_pragma(f->db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "delete");
}

static void test_wal_and_schema_pragmas(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    char v[64];
    raw_pragma(f->db, "PRAGMA journal_mode", v, sizeof v);
    assert_string_equal(v, "wal");
    raw_pragma(f->db, "PRAGMA user_version", v, sizeof v);
    assert_string_equal(v, "1");
    raw_pragma(f->db, "PRAGMA application_id", v, sizeof v);
    assert_string_equal(v, "1164798316");
    raw_pragma(f->db, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
               " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)", v, sizeof v);
    assert_string_equal(v, "devices,iterations,messages,runs");
    store_close(s);
}

static void test_newer_schema_refused(void **state)
{
    fixture_t *f = *state;
    store_close(open_ok(f->db));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    store_t *s = NULL;
    assert_int_equal(store_open(f->db, 0, &s), -1);
    assert_null(s);
    assert_non_null(strstr(store_last_open_error(), "has store schema version 7, newer than"));
    assert_non_null(strstr(store_last_open_error(), f->db));
}

static void test_reopen_persists(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    int64_t run = make_run(s, "cpu");
    add_iter(s, run, 0);
    add_iter(s, run, 1);
    assert_int_equal(store_run_set_best(s, run, 1), 0);
    json_t *hi = json_string("hi");
    assert_int_equal(store_message_add(s, run, 1, "assistant", hi, 3, 4), 0);
    json_decref(hi);
    store_close(s);

    s = open_ok(f->db);
    json_t *r = NULL, *its = NULL, *msgs = NULL;
    assert_int_equal(store_run_get(s, run, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "best_iter")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "n_iters")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "tokens_out")), 4);
    assert_int_equal(store_iterations(s, run, &its), 0);
    json_t *want = sample_iter(1, "x");
    assert_iter_equal(want, json_array_get(its, 1));
    assert_int_equal(store_messages(s, run, &msgs), 0);
    assert_int_equal(json_array_size(msgs), 1);
    /* And the reopened store still writes, with a fresh id. */
    assert_int_equal(make_run(s, "cpu"), run + 1);
    json_decref(want); json_decref(r); json_decref(its); json_decref(msgs);
    store_close(s);
}

static void test_messages_and_tokens(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    int64_t run = make_run(s, "cpu"), other = make_run(s, "cpu");
    json_t *c1 = json_pack("[{s:s, s:s}]", "type", "text", "text", "make it faster");
    json_t *c2 = json_pack("{s:s, s:[i, f, n]}", "tool", "profile_kernel", "args", 1, 2.5);
    json_t *c3 = json_string("plain");
    assert_int_equal(store_message_add(s, run, 1, "user", c1, 100, 0), 0);
    assert_int_equal(store_message_add(s, other, 1, "user", c3, 1, 1), 0);
    assert_int_equal(store_message_add(s, run, 1, "assistant", c2, 0, 250), 0);
    assert_int_equal(store_message_add(s, run, 2, "user", c3, 40, 7), 0);
    assert_int_equal(store_message_add(s, run, 2, "", c3, 0, 0), -1);
    assert_int_equal(store_message_add(s, 77, 2, "user", c3, 0, 0), -1);
    assert_non_null(strstr(store_errmsg(s), "no run 77"));
    assert_int_equal(store_run_add_tokens(s, run, 5, 6), 0);
    assert_int_equal(store_run_add_tokens(s, run, -1, 0), -1);
    assert_int_equal(store_run_add_tokens(s, 77, 1, 1), -1);

    json_t *msgs = NULL;
    assert_int_equal(store_messages(s, run, &msgs), 0);
    assert_int_equal(json_array_size(msgs), 3);
    json_t *m;
    size_t i;
    json_t *want[] = {c1, c2, c3};
    const char *roles[] = {"user", "assistant", "user"};
    const int iters[] = {1, 1, 2};
    json_array_foreach(msgs, i, m) {
        assert_int_equal(json_integer_value(json_object_get(m, "seq")), (long long)i + 1);
        assert_int_equal(json_integer_value(json_object_get(m, "iter")), iters[i]);
        assert_string_equal(json_string_value(json_object_get(m, "role")), roles[i]);
        assert_true(json_equal(json_object_get(m, "content"), want[i]));
        assert_true(json_is_string(json_object_get(m, "created")));
    }
    assert_int_equal(json_integer_value(json_object_get(json_array_get(msgs, 1), "tokens_out")), 250);
    json_decref(msgs);

    json_t *r = NULL;
    assert_int_equal(store_run_get(s, run, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "tokens_in")), 100 + 40 + 5);
    assert_int_equal(json_integer_value(json_object_get(r, "tokens_out")), 250 + 7 + 6);
    json_decref(r);
    assert_int_equal(store_run_get(s, other, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "tokens_in")), 1);
    json_decref(r);
    assert_int_equal(store_messages(s, other, &msgs), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(msgs, 0), "seq")), 1);
    json_decref(msgs);
    json_decref(c1); json_decref(c2); json_decref(c3);
    store_close(s);
}

static void test_devices(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_ok(f->db);
    json_t *got = json_null();
    assert_int_equal(store_device_get(s, "cuda:host:H100", &got), 0);
    assert_null(got);
    json_t *d1 = json_pack("{s:s, s:{s:f, s:b}}", "name", "H100", "ceilings", "bandwidth_gbs", 3000.25,
                           "measured", 1);
    json_t *d2 = json_pack("{s:s, s:{s:f}}", "name", "H100", "ceilings", "bandwidth_gbs", 3100.5);
    json_t *cpu = json_pack("{s:s}", "name", "Xeon");
    assert_int_equal(store_device_put(s, "cuda:host:H100", d1), 0);
    assert_int_equal(store_device_put(s, "cpu:host:xeon", cpu), 0);
    assert_int_equal(store_device_get(s, "cuda:host:H100", &got), 0);
    assert_true(json_equal(got, d1));
    json_decref(got);
    assert_int_equal(store_device_put(s, "cuda:host:H100", d2), 0);
    assert_int_equal(store_device_get(s, "cuda:host:H100", &got), 0);
    assert_true(json_equal(got, d2));
    json_decref(got);
    assert_int_equal(store_device_get(s, "cpu:host:xeon", &got), 0);
    assert_true(json_equal(got, cpu));
    json_decref(got);
    assert_int_equal(store_device_put(s, "", d1), -1);
    json_decref(d1); json_decref(d2); json_decref(cpu);
    store_close(s);
}

static void test_default_path(void **state)
{
    fixture_t *f = *state;
    char buf[512], want[512];
    setenv("EMILE_STORE", "/nonexistent/dir/my.db", 1);
    assert_int_equal(store_default_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/nonexistent/dir/my.db");
    assert_int_equal(store_default_path(buf, 8), -1);
    unsetenv("EMILE_STORE");

    char xdg[400];
    snprintf(xdg, sizeof xdg, "%s/xdg", f->dir);
    setenv("XDG_DATA_HOME", xdg, 1);
    assert_int_equal(store_default_path(buf, sizeof buf), 0);
    snprintf(want, sizeof want, "%s/emile/runs.db", xdg);
    assert_string_equal(buf, want);
    struct stat st;
    snprintf(want, sizeof want, "%s/emile", xdg);
    assert_int_equal(stat(want, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("XDG_DATA_HOME", "relative/ignored", 1);
    setenv("HOME", f->dir, 1);
    assert_int_equal(store_default_path(buf, sizeof buf), 0);
    snprintf(want, sizeof want, "%s/.local/share/emile/runs.db", f->dir);
    assert_string_equal(buf, want);
    assert_int_equal(store_default_path(buf, 10), -1);
    assert_non_null(strstr(store_last_open_error(), "does not fit"));
    /* The default path opens without create_dirs: its directory exists. */
    assert_int_equal(store_default_path(buf, sizeof buf), 0);
    store_close(open_ok(buf));
    unsetenv("XDG_DATA_HOME");
    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_home);
}

static void test_in_memory(void **state)
{
    (void)state;
    store_t *s = open_ok(":memory:");
    int64_t run = make_run(s, "cpu");
    add_iter(s, run, 0);
    json_t *r = NULL;
    assert_int_equal(store_run_get(s, run, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "n_iters")), 1);
    json_decref(r);
    store_close(s);
}

/* A raw connection holds a write transaction open while a second store
 * handle reads: WAL lets the read go through at once, and it sees the
 * last committed state, not the uncommitted row. */
static void test_concurrent_reader(void **state)
{
    fixture_t *f = *state;
    store_t *w = open_ok(f->db), *r = open_ok(f->db);
    int64_t run = make_run(w, "cpu");
    add_iter(w, run, 0);

    sqlite3 *raw;
    assert_int_equal(sqlite3_open(f->db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE; INSERT INTO iterations (run_id, iter,"
                                  " created, status) VALUES (1, 5, 'now', 'valid')",
                                  NULL, NULL, NULL), SQLITE_OK);
    json_t *its = NULL;
    assert_int_equal(store_iterations(r, run, &its), 0);
    assert_int_equal(json_array_size(its), 1);
    json_decref(its);
    json_t *list = NULL;
    assert_int_equal(store_runs_list(r, 0, &list), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    assert_int_equal(store_iterations(r, run, &its), 0);
    assert_int_equal(json_array_size(its), 2);
    json_decref(its);

    /* Interleaved writes on one handle and reads on the other. */
    for (int i = 1; i <= 4; i++) {
        add_iter(w, run, i);
        json_t *it = NULL;
        assert_int_equal(store_iteration_get(r, run, i, &it), 0);
        json_decref(it);
    }
    store_close(w);
    store_close(r);
}

/* The child writes iterations forever and reports each commit on the pipe;
 * it never returns.  Exit codes name the failure if it stops on its own. */
static void crash_child(const char *path, int64_t run, int fd)
{
    store_t *s = NULL;
    if (store_open(path, 0, &s) != 0)
        _exit(3);
    for (int i = 1; i < 100000; i++) {
        json_t *it = sample_iter(i, "crash");
        /* A large field so commits span several pages. */
        char big[6000];
        memset(big, 'a' + i % 26, sizeof big - 1);
        big[sizeof big - 1] = '\0';
        json_object_set_new(it, "compile_log", json_string(big));
        if (store_iteration_add(s, run, it) != 0)
            _exit(4);
        json_decref(it);
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
            _exit(5);
    }
    _exit(6);
}

static void test_crash_loses_nothing_committed(void **state)
{
    fixture_t *f = *state;
    const int N = 25;
    store_t *s = open_ok(f->db);
    int64_t run = make_run(s, "cpu");
    store_close(s);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(f->db, run, fds[1]);
    }
    close(fds[1]);
    /* Read while the child writes: every reported commit is visible. */
    store_t *reader = open_ok(f->db);
    int last = 0;
    for (int k = 1; k <= N; k++) {
        int i = 0;
        assert_int_equal(read(fds[0], &i, sizeof i), (ssize_t)sizeof i);
        assert_int_equal(i, k);
        last = i;
        json_t *it = NULL;
        assert_int_equal(store_iteration_get(reader, run, i, &it), 0);
        json_decref(it);
    }
    /* Closed while the child still runs, so this close cannot checkpoint
     * the WAL: the recovery below is the killed writer's. */
    store_close(reader);
    /* Kill it mid-stream, likely inside its next transaction. */
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    close(fds[0]);
    assert_int_equal(last, N);

    /* The WAL was left behind by the killed writer (so recovery is what is
     * being tested). */
    char wal[512];
    struct stat st;
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    assert_int_equal(stat(wal, &st), 0);

    s = open_ok(f->db);
    json_t *its = NULL;
    assert_int_equal(store_iterations(s, run, &its), 0);
    size_t n = json_array_size(its);
    assert_true(n >= (size_t)N);
    for (size_t k = 0; k < n; k++) {
        int i = (int)k + 1;
        json_t *got = json_array_get(its, k);
        json_t *want = sample_iter(i, "crash");
        char big[6000];
        memset(big, 'a' + i % 26, sizeof big - 1);
        big[sizeof big - 1] = '\0';
        json_object_set_new(want, "compile_log", json_string(big));
        assert_iter_equal(want, got);
        json_decref(want);
    }
    json_decref(its);
    /* The store still takes writes after recovery. */
    add_iter(s, run, (int)n + 1);
    store_close(s);
    char ok[64];
    raw_pragma(f->db, "PRAGMA integrity_check", ok, sizeof ok);
    assert_string_equal(ok, "ok");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_and_iterations_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iteration_minimal_and_key_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iteration_rejects_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_iter_keeps_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_order_and_latest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_existing_creates_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database_left_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_sqlite_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_and_schema_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_and_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_loses_nothing_committed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
