/* compile.c -- see compile.h. */
#include "compile.h"

#include <errno.h>
#include <strings.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/lang.h"
#include "sandbox/landlock.h"
#include "sandbox/output_filter.h"
#include "sandbox/sandbox.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/paths.h"

size_t compile_mem_bytes(const task_t *t)
{
    size_t task = (size_t)(t->memory_limit_mb * 1048576.0);
    return task > COMPILE_MEM_FLOOR ? task : COMPILE_MEM_FLOOR;
}

/* Replace every occurrence of from by to (malloc'd). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    if (fl == 0)
        return strdup(s);
    for (const char *p = strstr(s, from); p; p = strstr(p + fl, from))
        count++;
    char *out = malloc(strlen(s) + count * (tl > fl ? tl - fl : 0) + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = s;;) {
        const char *hit = strstr(p, from);
        if (!hit) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, to, tl);
        o += tl;
        p = hit + fl;
    }
    return out;
}

char *compile_rename_paths(const char *text, const char *dir, const char *ext, const char *name)
{
    char src[1200], prefix[1100];
    snprintf(src, sizeof src, "%s/kernel%s", dir, ext);
    snprintf(prefix, sizeof prefix, "%s/", dir);
    char *a = replace_all(text, src, name);
    char *b = a ? replace_all(a, prefix, "") : NULL;
    char *c = b ? replace_all(b, dir, ".") : NULL;   /* -I<dir> */
    free(a);
    free(b);
    return c;
}

/* The directory two levels above a program found on PATH (/usr/bin/gcc ->
 * /usr; /opt/cuda-12/bin/nvcc -> /opt/cuda-12): a toolchain's tree. */
static void toolchain_root(const char *prog, char *out, size_t n)
{
    out[0] = 0;
    char path[PATH_MAX], real[PATH_MAX];
    if (fs_which(prog, path, sizeof path) != 0 || !realpath(path, real))
        return;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(real, '/');
        if (!slash || slash == real)
            return;
        *slash = 0;
    }
    snprintf(out, n, "%s", real);
}

/* Every absolute path among the compiler's arguments that exists outside
 * dir (a build script, a site-packages folder, nvcc): readable, with its
 * folder for a file. */
static void allow_argument_paths(sandbox_fs_t *fs, int *k, char *const argv[], const char *dir, char (*store)[PATH_MAX],
                                 int room)
{
    size_t dl = strlen(dir);
    for (int i = 1; argv[i] && *k < room; i++) {
        if (argv[i][0] != '/' || (strncmp(argv[i], dir, dl) == 0 && (argv[i][dl] == '/' || !argv[i][dl])))
            continue;
        struct stat st;
        if (stat(argv[i], &st) != 0)
            continue;
        snprintf(store[*k], PATH_MAX, "%s", argv[i]);
        if (!S_ISDIR(st.st_mode)) {
            char *slash = strrchr(store[*k], '/');
            if (!slash || slash == store[*k])
                continue;
            *slash = 0;
        }
        fs->extra_ro[*k] = store[*k];
        (*k)++;
    }
}

/* The directory two levels above a program's path as given or found on
 * PATH (a venv's bin/python3 -> the venv), before symlinks are followed:
 * the GPU host's python3 is /opt/torch/.venv/bin/python3, a link to
 * /usr/bin/python3.12, and its packages are in the venv. */
static void given_root(const char *prog, char *out, size_t n)
{
    out[0] = 0;
    char path[PATH_MAX];
    if (fs_which(prog, path, sizeof path) != 0 || path[0] != '/')
        return;
    snprintf(out, n, "%s", path);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(out, '/');
        if (!slash || slash == out) {
            out[0] = 0;
            return;
        }
        *slash = 0;
    }
}

int compile_cache_from_env(compile_cache_t *c, char *err, size_t n)
{
    const char *v = getenv("EMILE_COMPILE_CACHE");
    if (v && (strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0 ||
              strcasecmp(v, "false") == 0))
        return 1;
    const char *dir = v && *v && strcasecmp(v, "on") != 0 ? v : NULL;
    if (dir && dir[0] != '/') {
        snprintf(err, n, "EMILE_COMPILE_CACHE must be off, on or an absolute path, not %.200s", dir);
        return -1;
    }
    return compile_cache_open(c, dir, 0, err, n);
}

/* The reply's compile object of a failure before any build. */
static int failed(json_t *compile, const char *why)
{
    json_object_set_new(compile, "ok", json_false());
    json_object_set_new(compile, "log", json_string(why));
    return -1;
}

/* The log as the user reads it: paths named by their file, filtered. */
static void set_log(json_t *compile, const char *raw, const char *dir, const char *ext, const char *name)
{
    char *renamed = compile_rename_paths(raw ? raw : "", dir, ext, name);
    char *clean = renamed ? output_filter(renamed, strlen(renamed), 6000, OUTPUT_KEEP_HEAD) : NULL;
    json_object_set_new(compile, "log", json_string(clean ? clean : ""));
    free(clean);
    free(renamed);
}

/* The cache's word for "this build's directory" in a kept log. */
#define CACHED_DIR "$EMILE_BUILD_DIR"
/* A kept log keeps its head (the reply quotes 6000 bytes of it). */
#define CACHED_LOG_MAX 65536

/* A build seen before: its object copied to so_path, its reply fields
 * from then.  1 hit, 0 miss (or no cache). */
static int from_cache(const compile_env_t *env, const compile_key_t *key, const char *dir, const lang_t *lg,
                      const char *name, const char *so_path, json_t *compile)
{
    double t0 = clock_mono_s();
    char *meta_text = NULL, err[1300];
    if (compile_cache_get(env->cache, key, so_path, lg->side_exts, &meta_text, err, sizeof err) != 0) {
        free(meta_text);
        return 0;
    }
    json_t *meta = meta_text ? json_loads(meta_text, 0, NULL) : NULL;
    free(meta_text);
    const char *kept = json_string_value(json_object_get(meta, "log"));
    char *raw = kept ? replace_all(kept, CACHED_DIR, dir) : NULL;
    if (!raw) {                          /* an entry we did not write: build again */
        json_decref(meta);
        unlink(so_path);
        return 0;
    }
    set_log(compile, raw, dir, lg->src_ext, name);
    free(raw);
    json_object_set_new(compile, "ok", json_true());
    json_object_set_new(compile, "cached", json_true());
    json_object_set_new(compile, "seconds", json_real(clock_mono_s() - t0));
    json_object_set(compile, "built_seconds", json_object_get(meta, "seconds"));
    if (json_is_string(json_object_get(meta, "sandbox")))
        json_object_set(compile, "sandbox", json_object_get(meta, "sandbox"));
    json_decref(meta);
    return 1;
}

/* Keep a successful build: its object and the language's side files
 * (copied out of dir at once, before any kernel runs there) and what its
 * reply said. */
static void keep(const compile_env_t *env, const compile_key_t *key, const char *dir, const char *so_path,
                 const char *const side_exts[], const char *raw_log, double secs, const char *layers,
                 json_t *compile)
{
    char head[CACHED_LOG_MAX + 1];
    snprintf(head, sizeof head, "%s", raw_log ? raw_log : "");
    char *generic = replace_all(head, dir, CACHED_DIR);
    json_t *meta = json_pack("{sssfss}", "log", generic ? generic : "", "seconds", secs, "sandbox", layers);
    char *text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    char err[1300];
    if (text && compile_cache_put(env->cache, key, so_path, side_exts, text, err, sizeof err) != 0)
        json_object_set_new(compile, "cache_error", json_string(err));
    free(text);
    json_decref(meta);
    free(generic);
}

/* The key of this build, when there is a cache: 1 with key, else 0. */
static int cache_key(const compile_env_t *env, const char *source, char *const argv[], const char *dir,
                     compile_key_t *key, json_t *compile)
{
    if (!env || !env->cache)
        return 0;
    char hdr[1024], err[600];
    emile_root_file("include/emile.h", hdr, sizeof hdr);
    const char *headers[] = {hdr, NULL};
    if (compile_cache_key(source, argv, dir, headers, env->device_key, key, err, sizeof err) != 0) {
        json_object_set_new(compile, "cache_error", json_string(err));
        return 0;
    }
    return 1;
}

/* Run argv in the compile sandbox (see compile.h); the reply's fields. */
static int build(const compile_env_t *env, const task_t *t, long uid, const char *dir, char *const argv[],
                 const lang_t *lg, const char *name, json_t *compile, const char *so_path, const compile_key_t *key)
{
    /* The file system the compiler sees: the system trees, its own
     * toolchain's tree (a compiler outside /usr: the tree of the program
     * as given, a venv, and as its symlinks resolve), the paths its
     * arguments name (a build script, site-packages, nvcc), LD_LIBRARY_PATH,
     * and this directory, writable. */
    static char roots[SANDBOX_FS_EXTRA][PATH_MAX], store[4096];
    sandbox_fs_t fs;
    memset(&fs, 0, sizeof fs);
    fs.own_dir = dir;
    fs.own_write = 1;
    int k = 0;
    toolchain_root(argv[0], roots[k], sizeof roots[k]);
    if (roots[k][0]) {
        fs.extra_ro[k] = roots[k];
        k++;
    }
    given_root(argv[0], roots[k], sizeof roots[k]);
    if (roots[k][0]) {
        fs.extra_ro[k] = roots[k];
        k++;
    }
    allow_argument_paths(&fs, &k, argv, dir, roots, SANDBOX_FS_EXTRA / 2);
    sandbox_fs_add_list(&fs, getenv("LD_LIBRARY_PATH"), store, sizeof store);
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.wall_s = t->compile_limit_s;
    l.cpu_s = t->compile_limit_s * 2 + 10;
    l.mem_bytes = compile_mem_bytes(t);
    l.fsize_bytes = (size_t)512 << 20;    /* the object file itself */
    l.nproc = 0;
    l.drop_uid = uid;
    l.fs = &fs;
    /* On a GPU the compilers of the other workers run while one times a
     * kernel (the device's turn does not hold them): at SCHED_IDLE they
     * never keep the timing worker or its runner from a core.  Eight
     * Triton compiles on the H100 host's 16 cores delayed those wake-ups
     * enough to reject two honest kernels (stop 23).  On a host device
     * the compiler takes the turn instead, and nothing times meanwhile. */
    device_turn_t *turn = env ? env->turn : NULL;
    l.idle = turn && !turn->host;
    int st = 0, to = 0, layers = 0;
    double secs = 0;
    char *log = NULL, err[1300];
    /* On a host device the compiler takes the cores a kernel is timed on. */
    if (turn && device_turn_take(turn, DEVICE_PHASE_COMPILE, "compile", name, err, sizeof err) != 0)
        return failed(compile, err);
    int rc = sandbox_run_layers(dir, argv, &l, &st, &to, &log, &secs, &layers, err, sizeof err);
    if (turn)
        device_turn_give(turn, DEVICE_PHASE_COMPILE);
    if (rc != 0)
        return failed(compile, err);
    json_object_set_new(compile, "seconds", json_real(secs));
    char lay[128];
    sandbox_describe_layers(layers, lay, sizeof lay);
    json_object_set_new(compile, "sandbox", json_string(lay));
    set_log(compile, log, dir, lg->src_ext, name);
    int ok = !to && WIFEXITED(st) && WEXITSTATUS(st) == 0 && fs_exists(so_path);
    if (!ok && (to || !WIFEXITED(st))) {
        char why[256];
        sandbox_describe_status(st, to, l.wall_s, why, sizeof why);
        json_object_set_new(compile, "error", json_string(why));
    } else if (!ok && (strstr(json_string_value(json_object_get(compile, "log")), "out of memory") ||
                        strstr(json_string_value(json_object_get(compile, "log")), "memory exhausted") ||
                        strstr(json_string_value(json_object_get(compile, "log")), "Cannot allocate memory"))) {
        char why[256];
        snprintf(why, sizeof why, "the compiler ran out of memory (the compile memory limit is %zu MiB: the task's "
                                  "memory_limit_mb, at least %zu MiB)",
                 l.mem_bytes >> 20, COMPILE_MEM_FLOOR >> 20);
        json_object_set_new(compile, "error", json_string(why));
    }
    json_object_set_new(compile, "ok", json_boolean(ok));
    if (ok && key)
        keep(env, key, dir, so_path, lg->side_exts, log, secs, lay, compile);
    free(log);
    return ok ? 0 : -1;
}

int compile_kernel(const compile_env_t *env, const backend_t *b, const task_t *t, long uid, const char *dir,
                   const char *source, const char *lang, const char *source_name, json_t *compile, char *so_path,
                   size_t so_n)
{
    char src[1024], name[256], nolang[256];
    const lang_t *lg = lang_for(b->name, lang, nolang, sizeof nolang);
    if (!lg)
        return failed(compile, nolang);
    snprintf(src, sizeof src, "%s/kernel%s", dir, lg->src_ext);
    snprintf(so_path, so_n, "%s/kernel.so", dir);
    snprintf(name, sizeof name, "%s", source_name && *source_name ? source_name : src + strlen(dir) + 1);
    if (fs_write_file(src, source, strlen(source)) != 0)
        return failed(compile, "cannot write the source file");
    if (uid >= 0 && geteuid() == 0) {
        int rc = chown(src, (uid_t)uid, (gid_t)uid);
        (void)rc;
    }
    char *argv[64], buf[8192];
    if (lg->compile_argv(src, so_path, dir, argv, 64, buf, sizeof buf) != 0)
        return failed(compile, "compile command too long");
    char cmd[2048] = "";
    for (int i = 0; argv[i]; i++) {
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
        strcat(cmd, " ");
    }
    char *shown = compile_rename_paths(cmd, dir, lg->src_ext, name);
    json_object_set_new(compile, "command", json_string(shown ? shown : cmd));
    free(shown);
    compile_key_t key;
    int keyed = cache_key(env, source, argv, dir, &key, compile);
    if (keyed && from_cache(env, &key, dir, lg, name, so_path, compile))
        return 0;
    if (keyed)
        json_object_set_new(compile, "cached", json_false());
    return build(env, t, uid, dir, argv, lg, name, compile, so_path, keyed ? &key : NULL);
}
