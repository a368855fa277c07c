/*
 * taste_kernel.c -- kernels for the Tasting Room's slot, from files or from
 * runs of the store (see taste_kernel.h).
 */
#include "taste/taste_kernel.h"

#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/lang.h"
#include "engine/model.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/paths.h"
#include "sandbox/sandbox.h"
#include "taste/taste_status.h"

int taste_kernel_is_run(const char *spec)
{
    if (!spec || !*spec)
        return 0;
    for (const char *p = spec; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

static const char *ext_of(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    return dot && (!slash || dot > slash) ? dot : "";
}

/* The language tag (lang.h) of the kernels device's slots take (model.h);
 * the default backend's language for a device the engine lacks. */
static const char *device_lang(const char *device)
{
    const engine_device_t *ed = engine_device_find(device);
    return ed ? ed->kernel_lang : lang_for(backend_default()->name, NULL, NULL, 0)->tag;
}

static const char *lang_words(const char *tag)
{
    const lang_t *l = lang_find(tag);
    return l ? l->title : tag;
}

/* The engine device (model.h) whose slots take kernels whose language's
 * tag or source extension is s, or NULL. */
static const engine_device_t *device_taking(const char *s)
{
    for (const backend_t *const *b = backend_all(); *b && s && *s; b++) {
        const engine_device_t *ed = engine_device_find((*b)->name);
        const lang_t *l = ed ? lang_find(ed->kernel_lang) : NULL;
        if (l && (strcmp(s, l->tag) == 0 || strcmp(s, l->src_ext) == 0))
            return ed;
    }
    return NULL;
}

/* " (try --device NAME)": the engine device whose slots take tag. */
static void device_hint(const char *tag, char *buf, size_t n)
{
    const engine_device_t *ed = device_taking(tag);
    buf[0] = 0;
    if (ed)
        snprintf(buf, n, " (try --device %s)", ed->name);
}

/* Compile src (absolute path) with the backend of its language in dir into
 * dir/kernel.so (its path in so); nothing is loaded here.  untrusted: a
 * run's source (an LLM may have written it), compiled as the sandbox's
 * user when we are root, as the worker compiles candidates -- so an
 * #include of a file only we can read (/etc/shadow) fails instead of
 * printing it in the compiler's error. */
static int compile_in(const char *src, const char *lang, const char *dir, int untrusted,
                      char *so_out, size_t so_n, char *err, size_t errlen)
{
    const lang_t *lg = lang_find(lang);
    char so[PATH_MAX + 16], inc[PATH_MAX], *argv[64], buf[8192];
    snprintf(so, sizeof so, "%s/kernel.so", dir);
    emile_root_file("include", inc, sizeof inc);
    if (!lg || lg->compile_argv(src, so, inc, argv, 64, buf, sizeof buf) != 0) {
        snprintf(err, errlen, "cannot build the compile command for %s", src);
        return -1;
    }
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    long uid = untrusted ? sandbox_untrusted_uid() : -1;
    l.drop_uid = uid;              /* a file the user named: their own build */
    if (uid >= 0 && (chown(dir, (uid_t)uid, (gid_t)uid) != 0 ||
                     chown(src, (uid_t)uid, (gid_t)uid) != 0)) {
        snprintf(err, errlen, "cannot hand %s to the compile sandbox's user", dir);
        return -1;
    }
    l.wall_s = 300;
    l.cpu_s = 0;
    l.mem_bytes = 0;
    l.nproc = 0;
    l.fsize_bytes = (size_t)512 << 20;
    int st = 0, to = 0;
    char *log = NULL, why[512];
    if (sandbox_run(dir, argv, &l, &st, &to, &log, NULL, why, sizeof why) != 0) {
        snprintf(err, errlen, "compiling %s: %s", src, why);
        return -1;
    }
    if (to || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !fs_exists(so)) {
        if (!to && WIFEXITED(st))
            snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(st));
        else
            sandbox_describe_status(st, to, l.wall_s, why, sizeof why);
        size_t n = log ? strlen(log) : 0;
        const char *tail = log && n > 1500 ? log + n - 1500 : log ? log : "";
        snprintf(err, errlen, "compiling %s with %s failed (%s):\n%s", src, argv[0], why, tail);
        free(log);
        return -1;
    }
    free(log);
    /* Back to us, read-only for the sandbox: another process of its user
     * must not swap the library before the engine child loads it. */
    if (uid >= 0 && (chown(so, 0, 0) != 0 || chown(dir, 0, 0) != 0)) {
        snprintf(err, errlen, "cannot take %s back from the compile sandbox's user", so);
        return -1;
    }
    snprintf(so_out, so_n, "%s", so);
    return 0;
}

/* The source and language of run id's best iteration (or its reference),
 * with its label; checks it suits device.  *src is malloc'd. */
static int run_source(const char *spec, const char *slot_op, int reference,
                      const char *store_path, const char *device, char **src, char *lang,
                      size_t langn, char *label, size_t labeln, char *err, size_t errlen)
{
    char path[PATH_MAX];
    long long id = strtoll(spec, NULL, 10);
    if (store_path)
        snprintf(path, sizeof path, "%s", store_path);
    else if (store_default_location(path, sizeof path, NULL) != 0) {   /* creates nothing */
        snprintf(err, errlen, "cannot find the default run store (--store PATH names one)");
        return -1;
    }
    if (access(path, F_OK) != 0) {
        snprintf(err, errlen, "run %lld: no run store at %s (--store PATH picks another)", id,
                 path);
        return -1;
    }
    store_t *s;
    if (store_open(path, STORE_OPEN_EXISTING, &s) != 0) {
        snprintf(err, errlen, "%s", store_last_open_error());
        return -1;
    }
    json_t *rj = NULL, *it = NULL;
    int rc = -1;
    if (id <= 0 || store_run_get(s, id, &rj) != 0) {
        snprintf(err, errlen, "%s", id <= 0 ? "run ids start at 1" : store_errmsg(s));
        goto out;
    }
    json_t *task = json_object_get(rj, "task");
    const json_t *opj = json_object_get(task, "op");   /* a name, or a spec's object */
    const char *op = json_is_object(opj) ? json_string_value(json_object_get(opj, "name"))
                                         : json_string_value(opj);
    const char *dtype = json_string_value(json_object_get(task, "dtype"));
    const engine_device_t *ed = engine_device_find(device);
    const char *want = ed ? ed->slot_dtype : "";
    const char *text, *l;
    if (!op || strcmp(op, slot_op) != 0) {
        if (strcmp(slot_op, "attention") == 0)
            snprintf(err, errlen, "run %lld is not an attention run: its kernels cannot go "
                     "into the engine's attention slot", id);
        else
            snprintf(err, errlen, "run %lld is a%s %s run: its kernels cannot go into the "
                     "engine's %s slot", id, op && strchr("aeiou", op[0]) ? "n" : "",
                     op ? op : "unnamed", slot_op);
        goto out;
    }
    if (reference) {
        text = json_string_value(json_object_get(task, "reference_source"));
        l = json_string_value(json_object_get(task, "reference_lang"));
        snprintf(label, labeln, "run %lld's reference", id);
        if (!text) {
            snprintf(err, errlen, "run %lld has no reference source stored", id);
            goto out;
        }
    } else {
        json_t *best = json_object_get(rj, "best_iter");
        if (!json_is_integer(best)) {
            snprintf(err, errlen, "run %lld has no valid kernel (no iteration passed "
                     "validation) to taste", id);
            goto out;
        }
        int bi = (int)json_integer_value(best);
        if (store_iteration_get(s, id, bi, &it) != 0) {
            snprintf(err, errlen, "%s", store_errmsg(s));
            goto out;
        }
        text = json_string_value(json_object_get(it, "source"));
        l = json_string_value(json_object_get(it, "lang"));
        snprintf(label, labeln, "run %lld's best (iteration %d)", id, bi);
        if (!text) {
            snprintf(err, errlen, "run %lld's iteration %d has no source stored", id, bi);
            goto out;
        }
    }
    l = l && lang_find(l) ? lang_find(l)->tag : device_lang(device);
    if (strcmp(l, device_lang(device)) != 0) {
        char hint[64];
        device_hint(l, hint, sizeof hint);
        snprintf(err, errlen, "run %lld's kernels are %s; --device %s takes %s kernels%s", id,
                 lang_words(l), device, lang_words(device_lang(device)), hint);
        goto out;
    }
    if (dtype && strcmp(dtype, want) != 0) {
        snprintf(err, errlen, "run %lld's kernels take %s tensors; the %s engine's %s "
                 "slot passes %s", id, dtype, device, slot_op, want);
        goto out;
    }
    if (!(*src = strdup(text))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(lang, langn, "%s", l);
    rc = 0;
out:
    json_decref(it);
    json_decref(rj);
    store_close(s);
    return rc;
}

int taste_kernel_check(const char *spec, const char *device, char *err, size_t errlen)
{
    if (!spec || taste_kernel_is_run(spec))
        return 0;
    const char *want = device_lang(device), *ext = ext_of(spec);
    const engine_device_t *fd = device_taking(ext);
    const char *lang = fd ? fd->kernel_lang : NULL;
    if (strcmp(ext, ".so") != 0 && !lang) {
        char exts[128] = "";
        for (const backend_t *const *b = backend_all(); *b; b++) {
            const engine_device_t *ed = engine_device_find((*b)->name);
            const lang_t *l = ed ? lang_find(ed->kernel_lang) : NULL;
            size_t len = strlen(exts);
            if (l)
                snprintf(exts + len, sizeof exts - len, "%s%s", len ? ", " : "", l->src_ext);
        }
        snprintf(err, errlen, "%s: a kernel is a %s or .so file, or a run id", spec, exts);
        return TASTE_BAD_INPUT;
    }
    if (lang && strcmp(lang, want) != 0) {
        char hint[64];
        device_hint(lang, hint, sizeof hint);
        snprintf(err, errlen, "%s is a %s kernel; --device %s takes %s kernels%s", spec,
                 lang_words(lang), device, lang_words(want), hint);
        return TASTE_BAD_INPUT;
    }
    if (access(spec, R_OK) != 0) {
        snprintf(err, errlen, "%s: no such kernel file", spec);
        return TASTE_BAD_INPUT;
    }
    return 0;
}

int taste_kernel_prepare(const char *spec, int reference, const char *store_path,
                         const char *device, const char *dir, char *so, size_t so_n,
                         char *label, size_t labeln, char *err, size_t errlen)
{
    return taste_kernel_prepare_op(spec, "attention", reference, store_path, device, dir, so,
                                   so_n, label, labeln, err, errlen);
}

int taste_kernel_prepare_op(const char *spec, const char *op, int reference,
                            const char *store_path, const char *device, const char *dir,
                            char *so, size_t so_n, char *label, size_t labeln, char *err,
                            size_t errlen)
{
    so[0] = 0;
    snprintf(label, labeln, "builtin");
    if (!spec)
        return 0;
    int rc = taste_kernel_check(spec, device, err, errlen);
    if (rc != 0)
        return rc;
    const char *want = device_lang(device);
    int is_so = !taste_kernel_is_run(spec) && strcmp(ext_of(spec), ".so") == 0;
    /* dir and what is built in it stay readable (not writable) by the
     * sandbox's user, who loads the result. */
    if (fs_mkdir_p(dir, 0711) != 0 || chmod(dir, 0711) != 0) {
        snprintf(err, errlen, "cannot create %s", dir);
        return -1;
    }
    char lang[8], src_path[PATH_MAX + 16];
    if (is_so) {
        snprintf(label, labeln, "%s", spec);
        snprintf(so, so_n, "%s/kernel.so", dir);
        rc = fs_copy_file(spec, so) == 0 && chmod(so, 0755) == 0 ? 0 : -1;
        if (rc != 0)
            snprintf(err, errlen, "%s: cannot read the kernel library", spec);
        return rc;
    }
    if (taste_kernel_is_run(spec)) {
        char *src = NULL;
        rc = run_source(spec, op, reference, store_path, device, &src, lang, sizeof lang,
                        label, labeln, err, errlen);
        snprintf(src_path, sizeof src_path, "%s/kernel.%s", dir, lang);
        if (rc == 0 && fs_write_file(src_path, src, strlen(src)) != 0) {
            snprintf(err, errlen, "cannot write %s", src_path);
            rc = -1;
        }
        free(src);
    } else {
        snprintf(label, labeln, "%s", spec);
        snprintf(lang, sizeof lang, "%s", want);
        rc = realpath(spec, src_path) ? 0 : -1;   /* the compiler runs in dir */
        if (rc != 0)
            snprintf(err, errlen, "%s: no such kernel file", spec);
    }
    if (rc == 0)
        rc = compile_in(src_path, lang, dir, taste_kernel_is_run(spec), so, so_n, err, errlen);
    if (rc == 0 && chmod(so, 0755) != 0) {
        snprintf(err, errlen, "cannot make %s readable", so);
        rc = -1;
    }
    return rc;
}
