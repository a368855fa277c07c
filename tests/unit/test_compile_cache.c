/*
 * test_compile_cache.c -- src/worker/compile_cache.c: the key covers the
 * source, the command (not the work directory), the compiler's identity,
 * the headers and the device; a miss, then a hit that gives back the
 * object and its log; a directory others may write, or one inside a
 * folder others may change, is refused; the least recently used objects
 * go first when it is full; a hit is a copy (what is done to the builder's
 * or the candidate's file later is not the cache's); only regular files
 * are kept; the files and folders the command names count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fs.h"
#include "worker/compile_cache.h"

static char dir[512], cc[700], hdr[700];

static int setup(void **state)
{
    (void)state;
    if (fs_mkdtemp("emile-test-ccache-", dir, sizeof dir) != 0)
        return -1;
    snprintf(cc, sizeof cc, "%s/fakecc", dir);
    snprintf(hdr, sizeof hdr, "%s/emile.h", dir);
    if (fs_write_file(cc, "#!/bin/sh\nexit 0\n", 17) != 0 || chmod(cc, 0755) != 0)
        return -1;
    return fs_write_file(hdr, "#define EMILE_ABI 1\n", 20);
}

static int teardown(void **state)
{
    (void)state;
    return fs_rm_rf(dir);
}

/* The key of a build of source in work, with flag, on device. */
static compile_key_t key_of(const char *source, const char *work, const char *flag, const char *device)
{
    char src[600], out[600];
    snprintf(src, sizeof src, "%s/kernel.c", work);
    snprintf(out, sizeof out, "%s/kernel.so", work);
    char *argv[] = {cc, (char *)flag, "-shared", src, "-o", out, NULL};
    const char *headers[] = {hdr, NULL};
    compile_key_t k;
    char err[512];
    assert_int_equal(compile_cache_key(source, argv, work, headers, device, &k, err, sizeof err), 0);
    assert_int_equal(strlen(k.hex), 64);
    return k;
}

static void test_key_covers_what_the_object_depends_on(void **state)
{
    (void)state;
    const char *src = "int emile_kernel(void) { return 0; }";
    compile_key_t a = key_of(src, "/tmp/emile-w-1/cand-3", "-O3", "cpu:h:x");
    compile_key_t same = key_of(src, "/tmp/emile-w-9/cand-7", "-O3", "cpu:h:x");
    assert_string_equal(a.hex, same.hex);                   /* the work dir does not count */
    assert_string_not_equal(a.hex, key_of("int x;", "/tmp/w", "-O3", "cpu:h:x").hex);
    assert_string_not_equal(a.hex, key_of(src, "/tmp/w", "-O2", "cpu:h:x").hex);
    assert_string_not_equal(a.hex, key_of(src, "/tmp/w", "-O3", "cuda:h:H100").hex);
    /* Another ABI header: another key. */
    assert_int_equal(fs_write_file(hdr, "#define EMILE_ABI 2\n", 20), 0);
    assert_string_not_equal(a.hex, key_of(src, "/tmp/w", "-O3", "cpu:h:x").hex);
    assert_int_equal(fs_write_file(hdr, "#define EMILE_ABI 1\n", 20), 0);
    assert_string_equal(a.hex, key_of(src, "/tmp/w", "-O3", "cpu:h:x").hex);
    /* A new compiler binary (here: a newer modification time). */
    struct timespec t[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, cc, t, 0), 0);
    assert_string_not_equal(a.hex, key_of(src, "/tmp/w", "-O3", "cpu:h:x").hex);
}

static void test_key_needs_a_compiler_and_headers(void **state)
{
    (void)state;
    char *argv[] = {"no-such-compiler-emile", "x.c", NULL};
    compile_key_t k;
    char err[512];
    assert_int_equal(compile_cache_key("x", argv, "/tmp", NULL, "d", &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot find the compiler no-such-compiler-emile"));
    char *argv2[] = {cc, "x.c", NULL};
    const char *missing[] = {"/nonexistent/emile.h", NULL};
    assert_int_equal(compile_cache_key("x", argv2, "/tmp", missing, "d", &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read /nonexistent/emile.h"));
    /* A compiler named without a path is found on PATH. */
    char *argv3[] = {"sh", "x.c", NULL};
    assert_int_equal(compile_cache_key("x", argv3, "/tmp", NULL, "d", &k, err, sizeof err), 0);
}

static void test_miss_then_hit(void **state)
{
    (void)state;
    char cdir[700], so[700], got[700], err[512];
    snprintf(cdir, sizeof cdir, "%s/cache", dir);
    snprintf(so, sizeof so, "%s/built.so", dir);
    snprintf(got, sizeof got, "%s/got.so", dir);
    compile_cache_t c;
    assert_int_equal(compile_cache_open(&c, cdir, 0, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(cdir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    compile_key_t k = key_of("int k;", "/tmp/w", "-O3", "cpu:h:x");
    char *log = (char *)1;
    assert_int_equal(compile_cache_get(&c, &k, got, NULL, &log, err, sizeof err), 1);
    assert_null(log);
    assert_false(fs_exists(got));
    assert_int_equal(fs_write_file(so, "\177ELF object bytes", 17), 0);
    assert_int_equal(compile_cache_put(&c, &k, so, NULL, "kernel.c:1: warning: unused", err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k, got, NULL, &log, err, sizeof err), 0);
    size_t len;
    char *bytes = fs_read_file(got, 1 << 20, &len);
    assert_int_equal(len, 17);
    assert_memory_equal(bytes, "\177ELF object bytes", 17);
    free(bytes);
    assert_string_equal(log, "kernel.c:1: warning: unused");
    free(log);
    assert_int_equal(stat(got, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    /* Another key still misses. */
    compile_key_t other = key_of("int other;", "/tmp/w", "-O3", "cpu:h:x");
    assert_int_equal(compile_cache_get(&c, &other, got, NULL, NULL, err, sizeof err), 1);
}

/* A language's side files (Triton's .cubin, which the profile reads for
 * the kernel's machine code) come back with the object on a hit, and go
 * with it when the cache is trimmed. */
static void test_side_files_kept_with_the_object(void **state)
{
    (void)state;
    char cdir[700], so[700], cubin[700], got[700], got_cubin[700], err[512];
    snprintf(cdir, sizeof cdir, "%s/cache-side", dir);
    snprintf(so, sizeof so, "%s/side.so", dir);
    snprintf(cubin, sizeof cubin, "%s/side.cubin", dir);
    snprintf(got, sizeof got, "%s/side-got.so", dir);
    snprintf(got_cubin, sizeof got_cubin, "%s/side-got.cubin", dir);
    static const char *const sides[] = {".cubin", ".absent", NULL};
    compile_cache_t c;
    assert_int_equal(compile_cache_open(&c, cdir, 80, err, sizeof err), 0);
    assert_int_equal(fs_write_file(so, "\177ELF 24 bytes of object", 24), 0);
    assert_int_equal(fs_write_file(cubin, "cubin: HGMMA.64x128x16", 22), 0);
    compile_key_t k = key_of("@triton.jit", "/tmp/w", "triton_aot.py", "cuda:h:x");
    assert_int_equal(compile_cache_put(&c, &k, so, sides, "", err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k, got, sides, NULL, err, sizeof err), 0);
    size_t len;
    char *bytes = fs_read_file(got_cubin, 1 << 20, &len);
    assert_non_null(bytes);
    assert_int_equal(len, 22);
    assert_memory_equal(bytes, "cubin: HGMMA.64x128x16", 22);
    free(bytes);
    char kept[900], absent[900];
    snprintf(kept, sizeof kept, "%s/%s.cubin", cdir, k.hex);
    snprintf(absent, sizeof absent, "%s/%s.absent", cdir, k.hex);
    assert_true(fs_exists(kept));
    assert_false(fs_exists(absent));      /* the build left none: none kept */
    /* Without side extensions a hit brings the object alone. */
    unlink(got_cubin);
    assert_int_equal(compile_cache_get(&c, &k, got, NULL, NULL, err, sizeof err), 0);
    assert_false(fs_exists(got_cubin));
    /* A second object (the limit is 80 bytes; an entry, object and cubin,
     * is 46: two are 92) evicts the first, side file and all (later by the file system's clock, whose
     * ticks can be milliseconds apart: the eviction goes by last use). */
    usleep(20000);
    compile_key_t k2 = key_of("@triton.jit 2", "/tmp/w", "triton_aot.py", "cuda:h:x");
    assert_int_equal(compile_cache_put(&c, &k2, so, sides, "", err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k, got, sides, NULL, err, sizeof err), 1);
    assert_false(fs_exists(kept));
    char kept2[900];
    snprintf(kept2, sizeof kept2, "%s/%s.cubin", cdir, k2.hex);
    assert_true(fs_exists(kept2));
}

static void test_open_refuses_a_shared_directory(void **state)
{
    (void)state;
    char cdir[700], err[512];
    snprintf(cdir, sizeof cdir, "%s/open", dir);
    assert_int_equal(mkdir(cdir, 0777), 0);
    assert_int_equal(chmod(cdir, 0777), 0);
    compile_cache_t c;
    assert_int_equal(compile_cache_open(&c, cdir, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "closed to others"));
}

static void test_least_recently_used_go_first(void **state)
{
    (void)state;
    char cdir[700], so[700], got[700], err[512];
    snprintf(cdir, sizeof cdir, "%s/lru", dir);
    snprintf(so, sizeof so, "%s/obj.so", dir);
    snprintf(got, sizeof got, "%s/got.so", dir);
    char blob[1000];
    memset(blob, 'x', sizeof blob);
    assert_int_equal(fs_write_file(so, blob, sizeof blob), 0);
    compile_cache_t c;
    assert_int_equal(compile_cache_open(&c, cdir, 3500, err, sizeof err), 0);
    compile_key_t k[4];
    const char *srcs[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 3; i++) {
        k[i] = key_of(srcs[i], "/w", "-O3", "d");
        assert_int_equal(compile_cache_put(&c, &k[i], so, NULL, "", err, sizeof err), 0);
        usleep(20000);
    }
    /* "a" used again: "b" is now the least recently used. */
    assert_int_equal(compile_cache_get(&c, &k[0], got, NULL, NULL, err, sizeof err), 0);
    usleep(20000);
    k[3] = key_of(srcs[3], "/w", "-O3", "d");
    assert_int_equal(compile_cache_put(&c, &k[3], so, NULL, "", err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k[1], got, NULL, NULL, err, sizeof err), 1);
    assert_int_equal(compile_cache_get(&c, &k[0], got, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k[2], got, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k[3], got, NULL, NULL, err, sizeof err), 0);
}

static void test_a_hit_is_a_copy(void **state)
{
    (void)state;
    char cdir[700], so[700], got[700], err[512];
    snprintf(cdir, sizeof cdir, "%s/copy", dir);
    snprintf(so, sizeof so, "%s/built.so", dir);
    snprintf(got, sizeof got, "%s/got.so", dir);
    compile_cache_t c;
    assert_int_equal(compile_cache_open(&c, cdir, 0, err, sizeof err), 0);
    compile_key_t k = key_of("int k;", "/tmp/w", "-O3", "cpu:h:x");
    assert_int_equal(fs_write_file(so, "the object", 10), 0);
    assert_int_equal(compile_cache_put(&c, &k, so, NULL, "", err, sizeof err), 0);
    /* What the builder's directory holds later is not the cache's. */
    assert_int_equal(fs_write_file(so, "tampered!!", 10), 0);
    assert_int_equal(compile_cache_get(&c, &k, got, NULL, NULL, err, sizeof err), 0);
    /* Nor what a candidate does to its own copy. */
    assert_int_equal(fs_write_file(got, "poisoned!!", 10), 0);
    assert_int_equal(compile_cache_get(&c, &k, got, NULL, NULL, err, sizeof err), 0);
    size_t len;
    char *bytes = fs_read_file(got, 1 << 20, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(bytes, "the object", 10);
    free(bytes);
    struct stat a, b;
    char entry[1200];
    snprintf(entry, sizeof entry, "%s/%s.so", cdir, k.hex);
    assert_int_equal(stat(entry, &a), 0);
    assert_int_equal(stat(got, &b), 0);
    assert_true(a.st_ino != b.st_ino);                      /* no link */
    assert_int_equal(a.st_mode & 077, 0);
}

static void test_only_regular_files_are_kept(void **state)
{
    (void)state;
    char cdir[700], fifo[700], err[512];
    snprintf(cdir, sizeof cdir, "%s/fifo", dir);
    snprintf(fifo, sizeof fifo, "%s/kernel.so", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    compile_cache_t c;
    assert_int_equal(compile_cache_open(&c, cdir, 0, err, sizeof err), 0);
    compile_key_t k = key_of("int f;", "/tmp/w", "-O3", "cpu:h:x");
    assert_int_equal(compile_cache_put(&c, &k, fifo, NULL, "", err, sizeof err), -1);
    assert_int_equal(compile_cache_get(&c, &k, fifo, NULL, NULL, err, sizeof err), 1);
}

static void test_key_covers_the_files_its_arguments_name(void **state)
{
    (void)state;
    char script[700], work[700], site[700], venv_py[800], cfg[800], err[512];
    snprintf(script, sizeof script, "%s/build_script.py", dir);
    snprintf(work, sizeof work, "%s/work", dir);
    assert_int_equal(fs_write_file(script, "print(1)\n", 9), 0);
    char *argv[] = {cc, script, work, NULL};
    compile_key_t a, b, c;
    assert_int_equal(compile_cache_key("s", argv, work, NULL, "d", &a, err, sizeof err), 0);
    assert_int_equal(fs_write_file(script, "print(2)\n", 9), 0);       /* same size, new content */
    assert_int_equal(compile_cache_key("s", argv, work, NULL, "d", &b, err, sizeof err), 0);
    assert_string_not_equal(a.hex, b.hex);
    /* A folder of its own (work) counts by name only; made or changed, the key stays. */
    assert_int_equal(mkdir(work, 0700), 0);
    assert_int_equal(compile_cache_key("s", argv, work, NULL, "d", &c, err, sizeof err), 0);
    assert_string_equal(b.hex, c.hex);
    /* A venv's interpreter: a package installed there changes the key. */
    snprintf(site, sizeof site, "%s/venv/lib/python3.99/site-packages", dir);
    assert_int_equal(fs_mkdir_p(site, 0700), 0);
    snprintf(cfg, sizeof cfg, "%s/venv/pyvenv.cfg", dir);
    assert_int_equal(fs_write_file(cfg, "home = /usr/bin\n", 16), 0);
    snprintf(venv_py, sizeof venv_py, "%s/venv/bin", dir);
    assert_int_equal(mkdir(venv_py, 0700), 0);
    snprintf(venv_py, sizeof venv_py, "%s/venv/bin/python3", dir);
    assert_int_equal(symlink(cc, venv_py), 0);
    char *pargv[] = {venv_py, "-B", "x.py", NULL};
    assert_int_equal(compile_cache_key("s", pargv, work, NULL, "d", &a, err, sizeof err), 0);
    char pkg[800];
    snprintf(pkg, sizeof pkg, "%s/triton-9.9.dist-info", site);
    usleep(10000);
    assert_int_equal(mkdir(pkg, 0700), 0);
    assert_int_equal(compile_cache_key("s", pargv, work, NULL, "d", &b, err, sizeof err), 0);
    assert_string_not_equal(a.hex, b.hex);
}

static void test_open_refuses_a_folder_others_may_change(void **state)
{
    (void)state;
    char open_dir[700], cdir[800], err[512];
    snprintf(open_dir, sizeof open_dir, "%s/anyones", dir);
    assert_int_equal(mkdir(open_dir, 0700), 0);
    assert_int_equal(chmod(open_dir, 0777), 0);              /* not sticky: anyone may rename in it */
    snprintf(cdir, sizeof cdir, "%s/cache", open_dir);
    compile_cache_t c;
    assert_int_equal(compile_cache_open(&c, cdir, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "which others may change"));
    assert_int_equal(chmod(open_dir, 01777), 0);             /* sticky, like /tmp */
    assert_int_equal(compile_cache_open(&c, cdir, 0, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_covers_what_the_object_depends_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_needs_a_compiler_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_miss_then_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_side_files_kept_with_the_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_a_shared_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_least_recently_used_go_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_hit_is_a_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_regular_files_are_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_covers_the_files_its_arguments_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_a_folder_others_may_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
