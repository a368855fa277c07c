/*
 * test_adversarial.c -- every adversarial CPU kernel in tests/kernels/cpu/
 * through the worker (worker_evaluate), against the verdicts listed in
 * tests/kernels/cpu/expected.json.
 *
 * Task: attention B=1 S=256 Hq=4 Hkv=2 D=32 causal f32, the reference
 * kernels/attention/cpu/reference.c inlined, time_limit_s 4,
 * memory_limit_mb 512, 5 timed runs.  One worker context serves every
 * kernel, so each case also checks that the previous one left the worker
 * usable; the control (well_behaved.c) is evaluated again at the end.
 *
 * Besides the status (and, where expected.json gives "error_contains",
 * the words the error must hold): the control is valid with a report (gflops > 0, the
 * FLOP model's count); every rejected kernel gets a non-empty error;
 * writes_outside.c leaves no file behind (../escaped.txt beside its working
 * directory, /tmp/emile_escaped_*); loads_library.c is refused for loading
 * code at run time; no process of a candidate outlives its evaluation.
 *
 * More kernels are written here (not in the folder, whose every file is a
 * documented case), each probing one defence: a library loaded and
 * unloaded again before returning, a library loaded by a constructor, the
 * reference's shared object where the worker actually puts it
 * (../ref-N/kernel.so), a file created with openat2, and the reference's
 * runner killed with tkill.
 *
 * Run from the repository root with build/emile-runner built (the test
 * runs a private copy of it).  Takes about 30-60 s (the infinite loop and
 * the unbounded allocation cost time_limit_s each).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <dlfcn.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "emile_test.h"
#include "util/fs.h"
#include "util/paths.h"
#include "worker/evaluate.h"

#define KDIR "tests/kernels/cpu"

/* B=1 S=256 Hq=4 Hkv=2 D=32 causal: 4*B*Hq*S*S*D/2 */
#define TASK_FLOPS (4.0 * 1 * 4 * 256 * 256 * 32 / 2)

static struct {
    worker_ctx_t *w;
    json_t *task;
    json_t *expected;
    json_t *options;
    char tmp[512];            /* $TMPDIR for the worker: the tree we search */
    glob_t tmp_before;        /* /tmp/emile_escaped_* before the run */
    double t0;
    json_t *reply;            /* the current test's reply (freed by teardown) */
    char *src;                /* the current test's source (freed by teardown) */
    json_t *task2;            /* another task, freed by teardown */
} G;

/* A secret in the worker's environment, as an API key would be: no reply
 * may ever hold it. */
#define SECRET_NAME "EMILE_TEST_API_KEY"
#define SECRET_VALUE "sk-test-4f1b2c3d5e6f7a8b9c0d"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- checks ---------------------------------------------------------------- */

/* A file named `name` anywhere under dir (depth-limited walk). */
static int find_file(const char *dir, const char *name, int depth, char *found, size_t n)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int hit = 0;
    while (!hit && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, name) == 0) {
            snprintf(found, n, "%s", path);
            hit = 1;
        } else if (depth > 0 && e->d_type == DT_DIR) {
            hit = find_file(path, name, depth - 1, found, n);
        }
    }
    closedir(d);
    return hit;
}

/* New /tmp/emile_escaped_* files since the start. */
static int new_escaped_files(char *found, size_t n)
{
    glob_t g;
    if (glob("/tmp/emile_escaped_*", 0, NULL, &g) != 0)
        return 0;
    int hit = 0;
    for (size_t i = 0; i < g.gl_pathc && !hit; i++) {
        int old = 0;
        for (size_t j = 0; j < G.tmp_before.gl_pathc; j++)
            old |= strcmp(g.gl_pathv[i], G.tmp_before.gl_pathv[j]) == 0;
        if (!old) {
            snprintf(found, n, "%s", g.gl_pathv[i]);
            hit = 1;
        }
    }
    globfree(&g);
    return hit;
}

/* A live process whose working directory is a candidate's directory under
 * our worker's tree (a candidate or one of its children that survived; the
 * reference's runner lives on in ref-N by design). */
static int survivor(char *found, size_t n)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    int hit = 0;
    size_t tl = strlen(G.tmp);
    while (!hit && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char link[300], cwd[PATH_MAX];
        snprintf(link, sizeof link, "/proc/%s/cwd", e->d_name);
        ssize_t len = readlink(link, cwd, sizeof cwd - 1);
        if (len <= 0)
            continue;
        cwd[len] = 0;
        if (strncmp(cwd, G.tmp, tl) == 0 && cwd[tl] == '/' && strstr(cwd + tl, "/cand-")) {
            /* A zombie waiting for its reaper is not a survivor. */
            char stat[300], buf[512] = "";
            snprintf(stat, sizeof stat, "/proc/%s/stat", e->d_name);
            FILE *f = fopen(stat, "r");
            if (f) {
                if (!fgets(buf, sizeof buf, f))
                    buf[0] = 0;
                fclose(f);
            }
            const char *rp = strrchr(buf, ')');
            if (rp && rp[1] == ' ' && rp[2] == 'Z')
                continue;
            snprintf(found, n, "pid %.32s (cwd %.3800s)", e->d_name, cwd);
            hit = 1;
        }
    }
    closedir(d);
    return hit;
}

static const char *status_of(const json_t *r)
{
    const char *s = json_string_value(json_object_get(r, "status"));
    return s ? s : "(none)";
}

static const char *error_of(const json_t *r)
{
    const char *s = json_string_value(json_object_get(r, "error"));
    return s ? s : "";
}

/* The reply is kept in G.reply until the test's teardown, so that a failing
 * assertion leaks nothing. */
static json_t *evaluate(const char *source)
{
    json_decref(G.reply);
    json_t *r = G.reply = worker_evaluate(G.w, G.task, source, G.options);
    assert_non_null(r);
    /* The reply is well formed JSON whatever the kernel did. */
    char *text = json_dumps(r, JSON_COMPACT);
    assert_non_null(text);
    json_t *back = json_loads(text, 0, NULL);
    assert_non_null(back);
    json_decref(back);
    free(text);
    assert_true(json_is_true(json_object_get(r, "ok")));
    return r;
}

static void assert_valid_control(const json_t *r, const char *when)
{
    if (strcmp(status_of(r), "valid") != 0)
        fail_msg("%s: well_behaved.c is %s: %s", when, status_of(r), error_of(r));
    assert_true(json_is_null(json_object_get(r, "error")));
    const json_t *rep = json_object_get(r, "report");
    assert_true(json_is_object(rep));
    double gflops = json_number_value(json_object_get(rep, "gflops"));
    if (!(gflops > 0))
        fail_msg("%s: the control's report has gflops %g", when, gflops);
    assert_near(json_number_value(json_object_get(rep, "flops")), TASK_FLOPS, 0);
    const json_t *tm = json_object_get(rep, "time_ms");
    assert_true(json_number_value(json_object_get(tm, "median")) > 0);
    assert_int_equal(json_integer_value(json_object_get(tm, "reps")), 5);
    /* The achieved rate is the model's FLOPs over the median time. */
    assert_rel(gflops, TASK_FLOPS / (json_number_value(json_object_get(tm, "median")) * 1e6), 1e-6);
    const json_t *val = json_object_get(r, "validation");
    assert_true(json_is_true(json_object_get(val, "ok")));
    /* task, ragged, small, repeat: all passed, none with NaN. */
    const json_t *checks = json_object_get(val, "checks");
    assert_true(json_array_size(checks) >= 4);
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c) {
        assert_true(json_is_true(json_object_get(c, "ok")));
        assert_int_equal(json_integer_value(json_object_get(c, "nan")), 0);
        assert_true(json_number_value(json_object_get(c, "max_err")) <= 1e-4);
    }
    /* The reference itself was checked against the float64 oracle. */
    const json_t *oracle = json_object_get(r, "oracle");
    assert_true(json_is_true(json_object_get(oracle, "checked")));
    assert_true(json_number_value(json_object_get(oracle, "max_err")) <= 1e-4);
}

/* ---- one test per kernel file ------------------------------------------------ */

static void test_kernel(void **state)
{
    const char *file = *state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, KDIR "/%s", file);
    char *src = test_read_file(path);
    assert_non_null(src);
    const json_t *exp = json_object_get(G.expected, file);
    if (!exp)
        fail_msg("%s has no entry in " KDIR "/expected.json", file);
    const json_t *allowed = json_object_get(exp, "status");
    assert_true(json_array_size(allowed) > 0);

    double t0 = now();
    json_t *r = evaluate(src);
    free(src);
    double dt = now() - t0;
    const char *st = status_of(r);
    print_message("%-24s %-16s %5.1f s  %.160s\n", file, st, dt, error_of(r));

    int ok = 0;
    size_t i;
    json_t *a;
    json_array_foreach(allowed, i, a) ok |= strcmp(st, json_string_value(a)) == 0;
    if (!ok) {
        char al[256] = "";
        json_array_foreach(allowed, i, a) snprintf(al + strlen(al), sizeof al - strlen(al), " %s", json_string_value(a));
        fail_msg("%s: status %s, expected one of%s; error: %s", file, st, al, error_of(r));
    }
    if (strcmp(st, "valid") != 0) {
        if (!error_of(r)[0])
            fail_msg("%s: rejected (%s) without an error message", file, st);
        assert_null(json_object_get(r, "report"));
    }

    /* The defence that caught it, where expected.json names it (e.g. the
     * forbidden call), not just any crash. */
    const char *want = json_string_value(json_object_get(exp, "error_contains"));
    if (want && !strstr(error_of(r), want))
        fail_msg("%s: the error does not name \"%s\": %s", file, want, error_of(r));

    char found[PATH_MAX];
    if (strcmp(file, "well_behaved.c") == 0)
        assert_valid_control(r, "first run");
    if (strcmp(file, "writes_outside.c") == 0) {
        if (find_file(G.tmp, "escaped.txt", 4, found, sizeof found))
            fail_msg("writes_outside.c escaped its directory: %s exists", found);
        if (new_escaped_files(found, sizeof found))
            fail_msg("writes_outside.c wrote %s", found);
    }
    if (strcmp(file, "loads_library.c") == 0) {
        assert_contains(error_of(r), "loaded code at run time");
        assert_contains(error_of(r), "libz");
    }
    /* Nothing of the user's files or environment in a reply, whatever the
     * kernel printed or included. */
    char *text = json_dumps(r, JSON_COMPACT);
    assert_non_null(text);
    int leaked = strstr(text, SECRET_VALUE) || strstr(text, "root:x:0:0");
    char leak_at[200] = "";
    if (leaked) {
        const char *at = strstr(text, SECRET_VALUE) ? strstr(text, SECRET_VALUE) : strstr(text, "root:x:0:0");
        snprintf(leak_at, sizeof leak_at, "%.120s", at > text + 40 ? at - 40 : text);
    }
    free(text);
    if (leaked)
        fail_msg("%s: the reply holds a secret or a line of /etc/passwd: ...%s", file, leak_at);
    if (strcmp(file, "includes_passwd.c") == 0)
        assert_contains(json_string_value(json_object_get(json_object_get(r, "compile"), "log")), "/etc/passwd");
    if (strcmp(file, "does_not_compile.c") == 0) {
        const json_t *comp = json_object_get(r, "compile");
        assert_true(json_is_false(json_object_get(comp, "ok")));
        assert_true(strlen(json_string_value(json_object_get(comp, "log"))) > 0);
    }
    if (strcmp(st, "timeout") == 0)
        assert_contains(error_of(r), "timed out");
    if (strcmp(file, "segfault.c") == 0)
        assert_true(strstr(error_of(r), "Segmentation fault") || strstr(error_of(r), "SIGSEGV"));
    if (strcmp(file, "aborts.c") == 0 && strcmp(st, "crashed") == 0)
        assert_true(strstr(error_of(r), "Abort") || strstr(error_of(r), "SIGABRT") || strstr(error_of(r), "signal 6"));

    /* Nothing of the candidate survives its evaluation. */
    if (survivor(found, sizeof found))
        fail_msg("%s: a process outlived the evaluation: %s", file, found);
}

/* Every kernel in the folder has an expectation and the reverse. */
static void test_expectations_complete(void **state)
{
    (void)state;
    const char *k;
    json_t *v;
    json_object_foreach(G.expected, k, v) {
        if (k[0] == '_')
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, KDIR "/%s", k);
        if (!fs_exists(path))
            fail_msg("expected.json lists %s, which does not exist", k);
    }
    assert_non_null(json_object_get(G.expected, "loads_library.c"));
}

static void test_worker_still_works(void **state)
{
    (void)state;
    char *src = test_read_file(KDIR "/well_behaved.c");
    assert_non_null(src);
    json_t *r = evaluate(src);
    free(src);
    assert_valid_control(r, "after every adversarial kernel");
    double total = now() - G.t0;
    print_message("all kernels and the control again in %.1f s\n", total);
    assert_true(total < 150);
}

/* ---- kernels written here ----------------------------------------------------- */

/* well_behaved.c with `cheat` inserted before its final computation. */
static char *variant(const char *cheat_includes, const char *cheat)
{
    char *src = test_read_file(KDIR "/well_behaved.c");
    assert_non_null(src);
    const char *anchor = "    return attn_rows(&a, 0, a.S);\n}";
    char *at = strstr(src, anchor);
    assert_non_null(at);
    size_t n = strlen(src) + strlen(cheat) + strlen(cheat_includes) + 16;
    char *out = malloc(n);
    *at = 0;
    snprintf(out, n, "%s%s%s%s", cheat_includes, src, cheat, anchor);
    snprintf(out + strlen(out), n - strlen(out), "%s", at + strlen(anchor));
    free(src);
    return out;
}

/* Loading a library, calling it and unloading it again before returning
 * is still loading code at run time; the check must not depend on the
 * mapping being left behind. */
static void test_library_loaded_and_unloaded(void **state)
{
    (void)state;
    char *src = variant("#include <dlfcn.h>\n",
                        "    void *h = dlopen(\"libz.so.1\", RTLD_NOW | RTLD_LOCAL);\n"
                        "    if (!h)\n"
                        "        return 7;\n"
                        "    typedef unsigned long (*crc32_fn)(unsigned long, const unsigned char *, unsigned);\n"
                        "    crc32_fn crc = (crc32_fn)dlsym(h, \"crc32\");\n"
                        "    if (!crc || crc(0, (const unsigned char *)\"a\", 1) != 0xe8b7be43UL)\n"
                        "        return 8;\n"
                        "    dlclose(h);\n");
    json_t *r = evaluate(src);
    free(src);
    print_message("load+unload: %s %.200s\n", status_of(r), error_of(r));
    /* 7/8 would mean the library was not loadable at all: then the test
     * proves nothing. */
    if (strstr(error_of(r), "returned 7") || strstr(error_of(r), "returned 8"))
        fail_msg("libz.so.1 could not be loaded by the kernel: %s", error_of(r));
    if (strcmp(status_of(r), "valid") == 0)
        fail_msg("a kernel that dlopen()s libz, calls crc32 and dlclose()s it before returning is accepted as "
                 "valid: the run-time code check only looks at the mappings left after the call");
    assert_contains(error_of(r), "loaded code at run time");
}

/* The reference's shared object must be out of the candidate's reach.  The
 * worker builds it in <base>/ref-<n>/kernel.so, beside the candidate's
 * <base>/cand-<m>/, both owned by the sandbox user: this kernel tries the
 * names the worker actually uses, calls the reference and unloads it. */
static void test_reference_unreachable(void **state)
{
    (void)state;
    char *src = variant("#include <dlfcn.h>\n#include <stdio.h>\n",
                        "    for (int n = 1; n < 64; n++) {\n"
                        "        char p[64];\n"
                        "        snprintf(p, sizeof p, \"../ref-%d/kernel.so\", n);\n"
                        "        void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);\n"
                        "        if (!h)\n"
                        "            continue;\n"
                        "        emile_kernel_fn ref = (emile_kernel_fn)dlsym(h, EMILE_ENTRY_SYMBOL);\n"
                        "        int rrc = ref && ref != emile_kernel ? ref(args) : 9;\n"
                        "        dlclose(h);\n"
                        "        return rrc;\n"
                        "    }\n"
                        "    return 5;\n");
    json_t *r = evaluate(src);
    free(src);
    print_message("reference by path: %s %.200s\n", status_of(r), error_of(r));
    if (strcmp(status_of(r), "valid") == 0)
        fail_msg("a candidate dlopen()ed the reference at ../ref-N/kernel.so, called it and was accepted: the "
                 "sandbox leaks the reference");
}

/* Code loaded by a constructor, when the runner dlopen()s the kernel, joins
 * the runner's baseline of mappings and is never flagged, although the
 * kernel then calls it during every run exactly like loads_library.c. */
static void test_library_loaded_by_constructor(void **state)
{
    (void)state;
    char *src = variant("#include <dlfcn.h>\n"
                        "static void *g_lib;\n"
                        "__attribute__((constructor)) static void grab(void)\n"
                        "{\n"
                        "    g_lib = dlopen(\"libz.so.1\", RTLD_NOW | RTLD_LOCAL);\n"
                        "}\n",
                        "    if (!g_lib)\n"
                        "        return 7;\n"
                        "    typedef unsigned long (*crc32_fn)(unsigned long, const unsigned char *, unsigned);\n"
                        "    crc32_fn crc = (crc32_fn)dlsym(g_lib, \"crc32\");\n"
                        "    if (!crc || crc(0, (const unsigned char *)\"a\", 1) != 0xe8b7be43UL)\n"
                        "        return 8;\n");
    json_t *r = evaluate(src);
    free(src);
    print_message("constructor load: %s %.200s\n", status_of(r), error_of(r));
    if (strstr(error_of(r), "returned 7") || strstr(error_of(r), "returned 8"))
        fail_msg("libz.so.1 could not be loaded by the kernel's constructor: %s", error_of(r));
    if (strcmp(status_of(r), "valid") == 0)
        fail_msg("a kernel whose constructor dlopen()s libz and which calls crc32 during every run is accepted: "
                 "libraries loaded while the runner loads the kernel join the baseline unchecked");
}

/* The libraries a kernel may bring in while being loaded are recognised by
 * name; the names must be matched whole, not as prefixes: "librt" must not
 * admit librtmp.so.1 (an RTMP client library, present wherever curl is). */
static void test_runtime_library_names_matched_whole(void **state)
{
    (void)state;
    char *src = variant("#include <dlfcn.h>\n"
                        "static void *g_lib;\n"
                        "__attribute__((constructor)) static void grab(void)\n"
                        "{\n"
                        "    g_lib = dlopen(\"librtmp.so.1\", RTLD_NOW | RTLD_LOCAL);\n"
                        "}\n",
                        "    if (!g_lib)\n"
                        "        return 7;\n"
                        "    int (*ver)(void) = (int (*)(void))dlsym(g_lib, \"RTMP_LibVersion\");\n"
                        "    if (!ver || ver() <= 0)\n"
                        "        return 8;\n");
    json_t *r = evaluate(src);
    free(src);
    print_message("librtmp by constructor: %s %.200s\n", status_of(r), error_of(r));
    if (strstr(error_of(r), "returned 7"))
        skip();                                  /* no librtmp here */
    if (strcmp(status_of(r), "valid") == 0)
        fail_msg("a kernel whose constructor dlopen()s librtmp.so.1 and calls it during every run is accepted: "
                 "\"librtmp\" passes as the runtime library \"librt\"");
}

/* The seccomp filter checks the flags of open and openat, but openat2
 * (syscall 437) opens for writing as well.  The kernel tries to create
 * /tmp/emile_escaped_openat2_<pid>.txt through it, then computes the right
 * answer: any status but an escaped file is acceptable. */
static void test_openat2_cannot_write(void **state)
{
    (void)state;
    char *src = variant("#include <fcntl.h>\n#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n"
                        "#include <sys/syscall.h>\n#include <linux/openat2.h>\n",
                        "    struct open_how how;\n"
                        "    memset(&how, 0, sizeof how);\n"
                        "    how.flags = O_WRONLY | O_CREAT | O_TRUNC;\n"
                        "    how.mode = 0644;\n"
                        "    char path[96];\n"
                        "    snprintf(path, sizeof path, \"/tmp/emile_escaped_openat2_%ld.txt\", (long)getpid());\n"
                        "    long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);\n"
                        "    if (fd >= 0) {\n"
                        "        if (write((int)fd, \"escaped\\n\", 8) < 0) {}\n"
                        "        close((int)fd);\n"
                        "    }\n");
    json_t *r = evaluate(src);
    free(src);
    print_message("openat2: %s %.200s\n", status_of(r), error_of(r));
    char found[PATH_MAX];
    if (new_escaped_files(found, sizeof found)) {
        unlink(found);
        fail_msg("a candidate created %s with openat2: the seccomp filter only checks open and openat", found);
    }
}

/* A candidate must not be able to sabotage later evaluations: this one
 * finds the reference's runner of its own worker (/proc/PID/cmdline names
 * <base>/ref-N/kernel.so; both run as the same user) and sends it SIGKILL
 * with tkill, which the filter does not restrict (kill and tgkill are
 * restricted to the runner itself).  The control must still be valid
 * afterwards in the same worker. */
static void test_candidate_cannot_kill_reference(void **state)
{
    (void)state;
    char *src = variant("#include <dirent.h>\n#include <fcntl.h>\n#include <signal.h>\n#include <stdio.h>\n"
                        "#include <string.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n",
                        "    char cwd[512];\n"
                        "    char *slash = getcwd(cwd, sizeof cwd) ? strrchr(cwd, '/') : NULL;\n"
                        "    if (slash) {\n"
                        "        *slash = 0;\n"
                        "        char needle[600];\n"
                        "        snprintf(needle, sizeof needle, \"%s/ref-\", cwd);\n"
                        "        DIR *d = opendir(\"/proc\");\n"
                        "        struct dirent *e;\n"
                        "        while (d && (e = readdir(d))) {\n"
                        "            if (e->d_name[0] < '0' || e->d_name[0] > '9')\n"
                        "                continue;\n"
                        "            char path[300], buf[4096];\n"
                        "            snprintf(path, sizeof path, \"/proc/%s/cmdline\", e->d_name);\n"
                        "            int fd = open(path, O_RDONLY);\n"
                        "            if (fd < 0)\n"
                        "                continue;\n"
                        "            ssize_t n = read(fd, buf, sizeof buf - 1);\n"
                        "            close(fd);\n"
                        "            if (n <= 0)\n"
                        "                continue;\n"
                        "            for (ssize_t i = 0; i < n; i++)\n"
                        "                if (!buf[i]) buf[i] = ' ';\n"
                        "            buf[n] = 0;\n"
                        "            if (strstr(buf, needle))\n"
                        "                syscall(SYS_tkill, atoi(e->d_name), SIGKILL);\n"
                        "        }\n"
                        "        if (d)\n"
                        "            closedir(d);\n"
                        "    }\n");
    /* A worker of its own, so the main one is not harmed if it works. */
    char err[512];
    worker_ctx_t *w = worker_ctx_new(err, sizeof err);
    assert_non_null(w);
    json_t *r = worker_evaluate(w, G.task, src, G.options);
    free(src);
    print_message("kills the reference: %s %.200s\n", status_of(r), error_of(r));
    json_decref(r);
    char *ctl = test_read_file(KDIR "/well_behaved.c");
    r = worker_evaluate(w, G.task, ctl, G.options);
    free(ctl);
    char st[32], msg[300];
    snprintf(st, sizeof st, "%s", status_of(r));
    snprintf(msg, sizeof msg, "%s", error_of(r));
    json_decref(r);
    worker_ctx_free(w);
    if (strcmp(st, "valid") != 0)
        fail_msg("after a candidate killed the reference's runner (tkill), the control is %s: %s", st, msg);
}

/* A value of the worker's secret-looking environment printed by a kernel
 * (as if it had got hold of it) never reaches the reply: the crash message
 * quotes the runner's output filtered. */
static void test_secret_redacted(void **state)
{
    (void)state;
    char *src = G.src = variant("#include <stdio.h>\n#include <stdlib.h>\n",
                                "    fprintf(stderr, \"leak: \" \"" SECRET_VALUE "\" \"\\n\");\n"
                                "    fflush(stderr);\n"
                                "    abort();\n");
    json_t *r = evaluate(src);
    print_message("prints a secret: %s %.200s\n", status_of(r), error_of(r));
    assert_string_equal(status_of(r), "crashed");
    assert_null(strstr(error_of(r), SECRET_VALUE));
    assert_contains(error_of(r), "[redacted " SECRET_NAME "]");
}

/* A kernel's named return code is named in the message. */
static void test_return_code_named(void **state)
{
    (void)state;
    char *src = G.src = variant("", "    return EMILE_ERR_DTYPE;\n");
    json_t *r = evaluate(src);
    assert_string_equal(status_of(r), "invalid");
    assert_contains(error_of(r), "returned 4 (EMILE_ERR_DTYPE");
}

/* Compile errors name the file the user gave (source_name), never the
 * sandbox's path. */
static void test_compile_error_names_source(void **state)
{
    (void)state;
    json_t *opts = json_pack("{s:i, s:s}", "reps", 5, "source_name", "attn_v9.c");
    json_decref(G.reply);
    G.reply = worker_evaluate(G.w, G.task, "#include \"emile.h\"\nint broken(void) { return undeclared_thing; }\n",
                              opts);
    json_decref(opts);
    assert_string_equal(status_of(G.reply), "compile_error");
    const char *log = json_string_value(json_object_get(json_object_get(G.reply, "compile"), "log"));
    assert_contains(log, "attn_v9.c:2");
    assert_contains(log, "undeclared_thing");
    if (strstr(log, G.tmp) || strstr(log, "emile-w-"))
        fail_msg("the compile log names the sandbox's path: %s", log);
}

/* A reference runner that dies between evaluations (killed from outside:
 * no candidate can reach it) is started again; the next candidate is not
 * blamed. */
static void test_dead_reference_restarted(void **state)
{
    (void)state;
    char *src = G.src = test_read_file(KDIR "/well_behaved.c");
    assert_non_null(src);
    json_t *r = evaluate(src);
    assert_string_equal(status_of(r), "valid");
    /* The reference's runner: its command line names <tmp>/.../ref-N. */
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    int killed = 0;
    char needle[600];
    snprintf(needle, sizeof needle, "%s/", G.tmp);
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = 0;
        if (strstr(buf, "emile-runner") && strstr(buf, needle) && strstr(buf, "/ref-"))
            killed += kill(atoi(e->d_name), SIGKILL) == 0;
    }
    closedir(d);
    assert_true(killed >= 1);
    usleep(100000);
    r = evaluate(src);
    if (strcmp(status_of(r), "valid") != 0)
        fail_msg("after the reference's runner died, the control is %s: %s", status_of(r), error_of(r));
}

/* Parallelism is right at 100 us: one thread of about 100 us reads about
 * 1.0 cores; two such threads read about 2 when they overlap -- on a
 * loaded machine they wait for a core, so what is asserted is the CPU the
 * reading stands for: about 100 us per thread (each thread's own CPU clock
 * and the process clock for threads that ended, no CPU-time rlimit to make
 * the clocks tick-coarse, which read 0.00 or 2.35 cores at this size). */
static void check_parallelism(int threads, double lo, double hi)
{
    char cheat[1200];
    snprintf(cheat, sizeof cheat,
             "    {\n"
             "        int rc0 = attn_rows(&a, 0, a.S);\n"
             "        if (rc0)\n"
             "            return rc0;\n"
             "        pthread_t t;\n"
             "        int two = %d == 2;\n"
             "        if (two && pthread_create(&t, NULL, spin_100us, NULL) != 0)\n"
             "            return 9;\n"
             "        spin_100us(NULL);\n"
             "        if (two)\n"
             "            pthread_join(t, NULL);\n"
             "        return 0;\n"
             "    }\n",
             threads);
    char *src = G.src = variant("#include <pthread.h>\n#include <time.h>\n"
                                "/* 100 us of this thread's own CPU. */\n"
                                "static void *spin_100us(void *x)\n"
                                "{\n"
                                "    struct timespec t0, t;\n"
                                "    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);\n"
                                "    do\n"
                                "        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);\n"
                                "    while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 100000);\n"
                                "    return x;\n"
                                "}\n",
                                cheat);
    /* A task small enough that the attention itself takes a few us. */
    G.task2 = json_deep_copy(G.task);
    json_object_set_new(G.task2, "params", json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "batch", 1, "seq", 16,
                                                     "q_heads", 2, "kv_heads", 1, "head_dim", 8, "causal", 1));
    json_t *opts = json_pack("{s:i}", "reps", 30);
    json_decref(G.reply);
    G.reply = worker_evaluate(G.w, G.task2, src, opts);
    json_decref(opts);
    const json_t *rep = json_object_get(G.reply, "report");
    double par = json_number_value(json_object_get(rep, "parallelism"));
    double med = json_number_value(json_object_get(json_object_get(rep, "time_ms"), "median"));
    print_message("%d thread(s) of 100 us: %s, median %.3f ms, parallelism %.2f\n", threads, status_of(G.reply), med,
                  par);
    if (strcmp(status_of(G.reply), "valid") != 0)
        fail_msg("the %d-thread kernel is %s: %s", threads, status_of(G.reply), error_of(G.reply));
    double cpu_ms = par * med;
    if (!(cpu_ms >= lo && cpu_ms <= hi))
        fail_msg("%d thread(s) of 100 us read parallelism %.2f over %.3f ms: %.3f ms of CPU, expected %.2f..%.2f ms",
                 threads, par, med, cpu_ms, lo, hi);
    /* A loaded machine stretches the call's time (the threads wait for a
     * core), never its CPU: the ratio can only fall below 1 and 2.  A clock
     * that moves in ticks read 0.00 or 2.35 for one thread of 100 us. */
    if (threads == 1 && !(par >= 0.3 && par <= 1.25))
        fail_msg("one thread of 100 us reads parallelism %.2f, expected about 1", par);
    if (threads == 2 && !(par > 0 && par <= 2.3))
        fail_msg("two threads of 100 us read parallelism %.2f, expected up to 2", par);
}

static void test_parallelism_one_thread(void **state)
{
    (void)state;
    check_parallelism(1, 0.08, 0.16);
}

static void test_parallelism_two_threads(void **state)
{
    (void)state;
    check_parallelism(2, 0.20, 0.45);
}

/* Class 6 at the size where the runner's own work per command is most of
 * a run (attention S=64 Hq=2 D=16: an honest run of about 0.08 ms, the
 * runner's command about 0.04-0.09 ms): the content caches lied 12-15x and
 * were valid while the held-back allowance was 30% of the whole median +
 * 100 us; the honest control stays valid under the tighter bound.
 * content_cache.c's misses exceed the new bound by 45 us or more on the
 * 2-core VM (docs/SECURITY.md); content_cache_2x.c's by as little as 16 us,
 * which a faster CPU shrinks, so its verdict is printed, not asserted. */
static void test_tiny_caches_caught(void **state)
{
    (void)state;
    G.task2 = json_deep_copy(G.task);
    json_object_set_new(G.task2, "params", json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "batch", 1, "seq", 64,
                                                     "q_heads", 2, "kv_heads", 1, "head_dim", 16, "causal", 1));
    const char *files[] = {"content_cache.c", "content_cache_2x.c", "well_behaved.c"};
    for (int i = 0; i < 3; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, KDIR "/%s", files[i]);
        char *src = test_read_file(path);
        assert_non_null(src);
        json_decref(G.reply);
        G.reply = worker_evaluate(G.w, G.task2, src, G.options);
        free(src);
        assert_non_null(G.reply);
        const json_t *h = json_object_get(json_object_get(json_object_get(G.reply, "report"), "trust"), "held_back");
        print_message("%-20s S=64: %s %.200s\n", files[i], status_of(G.reply), error_of(G.reply));
        if (i == 1)
            continue;
        if (i == 0) {
            if (strcmp(status_of(G.reply), "invalid") != 0)
                fail_msg("%s at S=64 is %s: a content cache must fail the held-back sets", files[i],
                         status_of(G.reply));
            assert_contains(error_of(G.reply), "held-back");
            assert_contains(error_of(G.reply), "above the harness's own");
        } else {
            if (strcmp(status_of(G.reply), "valid") != 0)
                fail_msg("well_behaved.c at S=64 is %s: %s", status_of(G.reply), error_of(G.reply));
            /* judged on the runner's CPU, against the null runner's share */
            assert_string_equal(json_string_value(json_object_get(h, "clock")), "runner cpu");
            assert_true(json_number_value(json_object_get(h, "null_proc_cpu_ms")) > 0);
        }
    }
}

/* The runner binary replaced on disk while the worker runs (a rebuild, a
 * package upgrade): the reference's runner, started before, now sees its own
 * executable mapped as "PATH (deleted)" in /proc/self/maps.  That is not
 * code loaded by a kernel; the control must stay valid.  (Seen for real:
 * "the reference failed on set task: the kernel loaded code at run time:
 * .../build/emile-runner (deleted)" while build/ was being rebuilt.) */
static void test_runner_replaced_on_disk(void **state)
{
    (void)state;
    /* The source stays in G.src until the teardown: a failing assertion
     * (a longjmp) leaks nothing. */
    char *src = G.src = test_read_file(KDIR "/well_behaved.c");
    assert_non_null(src);
    json_t *r = evaluate(src);
    if (strcmp(status_of(r), "valid") != 0)
        fail_msg("the control before the replacement: %s: %s", status_of(r), error_of(r));
    assert_int_equal(test_private_runner(G.tmp), 0);      /* a new inode at the same path */
    r = evaluate(src);
    if (strcmp(status_of(r), "valid") != 0)
        fail_msg("after the runner binary was replaced on disk, the control is %s: %s", status_of(r), error_of(r));
}

/* ---- setup ------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    G.t0 = now();
    /* A private $TMPDIR that the sandbox user may traverse, with a private
     * copy of the runner in it. */
    snprintf(G.tmp, sizeof G.tmp, "/tmp/emile-test-adv-XXXXXX");
    if (!mkdtemp(G.tmp) || chmod(G.tmp, 0711) != 0)
        return -1;
    setenv("TMPDIR", G.tmp, 1);
    /* A private ceilings cache too: worker_evaluate measures the device
     * (backend_device) and reads/writes $XDG_CACHE_HOME/emile, which must
     * not be the user's ~/.cache/emile (a stale or foreign cache there would
     * change what we test, and we must not write to it).  emile_cache_dir()
     * remembers the first answer, so check it is ours before any call. */
    char cache[sizeof G.tmp + 16];
    snprintf(cache, sizeof cache, "%s/cache", G.tmp);
    setenv("XDG_CACHE_HOME", cache, 1);
    if (strncmp(emile_cache_dir(), cache, strlen(cache)) != 0) {
        fprintf(stderr, "the ceilings cache is %s, not under %s\n", emile_cache_dir(), cache);
        return -1;
    }
    if (test_private_runner(G.tmp) != 0)
        return -1;
    if (glob("/tmp/emile_escaped_*", 0, NULL, &G.tmp_before) != 0)
        memset(&G.tmp_before, 0, sizeof G.tmp_before);

    json_error_t je;
    G.expected = json_load_file(KDIR "/expected.json", 0, &je);
    if (!G.expected) {
        fprintf(stderr, "expected.json: %s (line %d)\n", je.text, je.line);
        return -1;
    }
    char *ref = test_read_file("kernels/attention/cpu/reference.c");
    if (!ref) {
        fprintf(stderr, "kernels/attention/cpu/reference.c is missing (run from the repository root)\n");
        return -1;
    }
    G.task = json_pack("{s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:i}",
                       "op", "attention", "params", "batch", 1, "seq", 256, "q_heads", 4, "kv_heads", 2, "head_dim",
                       32, "causal", 1, "dtype", "f32", "backend", "cpu", "reference_source", ref,
                       "reference_lang", "c", "time_limit_s", 4.0, "memory_limit_mb", 512.0, "compile_limit_s", 60.0,
                       "seed", 1234);
    free(ref);
    G.options = json_pack("{s:i}", "reps", 5);
    setenv(SECRET_NAME, SECRET_VALUE, 1);
    char err[512];
    G.w = worker_ctx_new(err, sizeof err);
    if (!G.w) {
        fprintf(stderr, "worker_ctx_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    json_decref(G.reply);
    G.reply = NULL;
    free(G.src);
    G.src = NULL;
    json_decref(G.task2);
    G.task2 = NULL;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    worker_ctx_free(G.w);
    json_decref(G.task);
    json_decref(G.expected);
    json_decref(G.options);
    globfree(&G.tmp_before);
    fs_rm_rf(G.tmp);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    /* One test per kernel file, the control first. */
    DIR *d = opendir(KDIR);
    if (!d) {
        fprintf(stderr, "cannot open " KDIR " (run from the repository root)\n");
        return 1;
    }
    char *files[128];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 128) {
        size_t len = strlen(e->d_name);
        if (len > 2 && strcmp(e->d_name + len - 2, ".c") == 0)
            files[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(files, (size_t)n, sizeof files[0], cmp_str);
    for (int i = 0; i < n; i++)
        if (strcmp(files[i], "well_behaved.c") == 0) {
            char *t = files[i];
            memmove(files + 1, files, (size_t)i * sizeof files[0]);
            files[0] = t;
        }

    struct CMUnitTest *tests = calloc((size_t)n + 20, sizeof *tests);
    int k = 0;
    tests[k++] = (struct CMUnitTest)cmocka_unit_test(test_expectations_complete);
    for (int i = 0; i < n; i++)
        tests[k++] = (struct CMUnitTest){files[i], test_kernel, NULL, test_teardown, files[i]};
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_library_loaded_and_unloaded, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_reference_unreachable, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_library_loaded_by_constructor, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_runtime_library_names_matched_whole, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_openat2_cannot_write, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_candidate_cannot_kill_reference, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_worker_still_works, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_runner_replaced_on_disk, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_secret_redacted, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_return_code_named, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_compile_error_names_source, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_dead_reference_restarted, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_parallelism_one_thread, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_parallelism_two_threads, test_teardown);
    tests[k++] = (struct CMUnitTest)cmocka_unit_test_teardown(test_tiny_caches_caught, test_teardown);
    int rc = _cmocka_run_group_tests("adversarial", tests, (size_t)k, group_setup, group_teardown);
    free(tests);
    for (int i = 0; i < n; i++)
        free(files[i]);
    return rc;
}
