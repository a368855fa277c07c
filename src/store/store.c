/*
 * store.c -- opening and closing the run store, and where it lives.
 *
 * The directory rules are here so that every front end (CLI, web server)
 * gives the same answer: a path the user names (--store, $EMILE_STORE) must
 * be in an existing directory; only the XDG/HOME default's directory may be
 * created, and only when the caller asks (STORE_OPEN_CREATE_DIRS).  Readers
 * pass STORE_OPEN_EXISTING so that looking never creates a store.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_private.h"

/* store_open has no handle to carry a message when it fails, so the message
 * lives here, one per thread (a web server may open stores from several). */
static _Thread_local char open_err[2048];
static _Thread_local store_missing_t open_missing;

static int open_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int open_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(open_err, sizeof open_err, fmt, ap);
    va_end(ap);
    return -1;
}

const char *store_last_open_error(void)
{
    return open_err;
}

store_missing_t store_last_open_missing(void)
{
    return open_missing;
}

const char *store_errmsg(const store_t *s)
{
    return s ? s->err : open_err;
}

/* mkdir -p with mode 0700: the store holds prompts, sources and logs, which
 * are the user's business only.  0, or -1 with open_err set. */
static int make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof buf)
        return open_fail("store directory name is empty or too long: %s", dir);
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return open_fail("cannot create store directory %s: %s", buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return open_fail("store directory %s is not a directory", dir);
    return 0;
}

/* The directory part of path ("." when it has none). */
static void dir_of(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

int store_check_named_path(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    struct stat st;
    if (!path || !*path || strlen(path) >= sizeof dir) {
        snprintf(err, errlen, "the store path is empty or too long");
        return -1;
    }
    if (strcmp(path, ":memory:") == 0)
        return 0;
    dir_of(path, dir, sizeof dir);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "the folder %s %s (emile does not create the folder a store "
                 "path names: a typo?)", dir, stat(dir, &st) != 0 ? "does not exist"
                 : "is not a folder");
        return -1;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is a folder; a store is a file in it (%s%sruns.db)", path,
                 path, path[strlen(path) - 1] == '/' ? "" : "/");
        return -1;
    }
    return 0;
}

/* Checks (or creates) the directory that will hold the store file, and that
 * the path itself, when it exists, is a regular file (with
 * STORE_OPEN_EXISTING: that it exists). */
static int check_location(const char *path, int flags)
{
    int create_dirs = (flags & STORE_OPEN_CREATE_DIRS) && !(flags & STORE_OPEN_EXISTING);
    char dir[PATH_MAX];
    struct stat st;
    if (strlen(path) >= sizeof dir)
        return open_fail("store path too long: %s", path);
    dir_of(path, dir, sizeof dir);
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT)
            return open_fail("store directory %s: %s", dir, strerror(errno));
        if (!create_dirs) {
            open_missing = STORE_MISSING_DIR;
            return open_fail("store directory %s does not exist", dir);
        }
        if (make_dirs(dir) != 0)
            return -1;
    } else if (!S_ISDIR(st.st_mode)) {
        return open_fail("store directory %s is not a directory", dir);
    }
    if (stat(path, &st) != 0) {
        if (errno == ENOENT && (flags & STORE_OPEN_EXISTING)) {
            open_missing = STORE_MISSING_FILE;
            return open_fail("no run store at %s", path);
        }
        if (errno != ENOENT)
            return open_fail("store %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        return open_fail("store %s is not a regular file", path);
    }
    return 0;
}

/*
 * Opens the store at path, creating the file when absent unless flags has
 * STORE_OPEN_EXISTING.  ":memory:" opens a private in-memory store (no WAL;
 * for tests and dry runs).  On failure *out is NULL and
 * store_last_open_error() says why: the directory is missing (and
 * STORE_OPEN_CREATE_DIRS was not given), the file is missing (with
 * STORE_OPEN_EXISTING; store_last_open_missing() tells these two apart),
 * the file is not a SQLite database or not an emile store (the file is then
 * left untouched), or its schema is newer than this build.
 */
int store_open(const char *path, int flags, store_t **out)
{
    *out = NULL;
    open_err[0] = '\0';
    open_missing = STORE_MISSING_NONE;
    if (!path || !*path)
        return open_fail("store path is empty");
    int in_memory = strcmp(path, ":memory:") == 0;
    if (!in_memory && check_location(path, flags) != 0)
        return -1;

    store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return open_fail("%s: out of memory", path);
    }
    s->in_memory = in_memory;
    /* Without SQLITE_OPEN_CREATE a file removed since the check above is an
     * error, not a new empty store. */
    int oflags = SQLITE_OPEN_READWRITE;
    if (in_memory || !(flags & STORE_OPEN_EXISTING))
        oflags |= SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        open_fail("%s: cannot open: %s", path,
                  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        store_close(s);
        return -1;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* A reader (the web server) and a writer (a cook) share the file; each
     * waits for the other's short write transaction instead of failing. */
    sqlite3_busy_timeout(s->db, 5000);
    if (store_schema_open(s) != 0) {
        snprintf(open_err, sizeof open_err, "%s", s->err);
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* Closes the connection (the last one to close checkpoints the WAL into
 * the database file) and frees the handle.  NULL is a no-op. */
void store_close(store_t *s)
{
    if (!s)
        return;
    if (s->db)
        sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

/* $HOME, or the password database's home when HOME is unset. */
static const char *home_dir(void)
{
    const char *home = getenv("HOME");
    if (home && *home)
        return home;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

const char *store_origin_name(store_origin_t origin)
{
    switch (origin) {
    case STORE_FROM_ENV: return "EMILE_STORE";
    case STORE_FROM_XDG: return "XDG_DATA_HOME";
    case STORE_FROM_HOME: return "HOME";
    }
    return "?";
}

/*
 * Writes the default store path into buf and where it came from into
 * *origin: $EMILE_STORE as given, else $XDG_DATA_HOME/emile/runs.db
 * (XDG_DATA_HOME only when absolute, as the XDG spec requires), else
 * ~/.local/share/emile/runs.db.  Creates nothing.  -1 with
 * store_last_open_error() set when buf is too small or no home directory is
 * known.
 */
int store_default_location(char *buf, size_t n, store_origin_t *origin)
{
    open_err[0] = '\0';
    open_missing = STORE_MISSING_NONE;
    store_origin_t from;
    if (!origin)
        origin = &from;
    const char *env = getenv("EMILE_STORE");
    int len;
    if (env && *env) {
        *origin = STORE_FROM_ENV;
        len = snprintf(buf, n, "%s", env);
        if (len < 0 || (size_t)len >= n)
            return open_fail("EMILE_STORE is too long (%zu bytes max)", n - 1);
        return 0;
    }
    char dir[PATH_MAX];
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && xdg[0] == '/') {
        *origin = STORE_FROM_XDG;
        len = snprintf(dir, sizeof dir, "%s/emile", xdg);
    } else {
        *origin = STORE_FROM_HOME;
        const char *home = home_dir();
        if (!home)
            return open_fail("no home directory: set EMILE_STORE or HOME");
        len = snprintf(dir, sizeof dir, "%s/.local/share/emile", home);
    }
    if (len < 0 || (size_t)len >= sizeof dir)
        return open_fail("store directory name too long");
    len = snprintf(buf, n, "%s/runs.db", dir);
    if (len < 0 || (size_t)len >= n)
        return open_fail("store path %s/runs.db does not fit in %zu bytes", dir, n);
    return 0;
}

/*
 * store_default_location, then, for the XDG and HOME defaults, creates
 * their directory (0700).  $EMILE_STORE is returned as given: the user named
 * it, so its directory is not created here; open it without
 * STORE_OPEN_CREATE_DIRS (store_default_location says which it was) so that
 * a typo in it is an error instead of a new, empty store.
 */
int store_default_path(char *buf, size_t n)
{
    store_origin_t origin;
    if (store_default_location(buf, n, &origin) != 0)
        return -1;
    if (origin == STORE_FROM_ENV)
        return 0;
    char dir[PATH_MAX];
    dir_of(buf, dir, sizeof dir);
    return make_dirs(dir);
}
