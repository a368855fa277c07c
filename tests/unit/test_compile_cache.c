/*
 * test_compile_cache.c -- src/worker/compile_cache.c: the key covers the
 * source, the command (not the work directory), the compiler's identity,
 * the headers and the device; a miss, then a hit that gives back the
 * object and its log; a directory others may write is refused; the least
 * recently used objects go first when it is full.
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
    assert_int_equal(compile_cache_get(&c, &k, got, &log, err, sizeof err), 1);
    assert_null(log);
    assert_false(fs_exists(got));
    assert_int_equal(fs_write_file(so, "\177ELF object bytes", 17), 0);
    assert_int_equal(compile_cache_put(&c, &k, so, "kernel.c:1: warning: unused", err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k, got, &log, err, sizeof err), 0);
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
    assert_int_equal(compile_cache_get(&c, &other, got, NULL, err, sizeof err), 1);
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
        assert_int_equal(compile_cache_put(&c, &k[i], so, "", err, sizeof err), 0);
        usleep(20000);
    }
    /* "a" used again: "b" is now the least recently used. */
    assert_int_equal(compile_cache_get(&c, &k[0], got, NULL, err, sizeof err), 0);
    usleep(20000);
    k[3] = key_of(srcs[3], "/w", "-O3", "d");
    assert_int_equal(compile_cache_put(&c, &k[3], so, "", err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k[1], got, NULL, err, sizeof err), 1);
    assert_int_equal(compile_cache_get(&c, &k[0], got, NULL, err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k[2], got, NULL, err, sizeof err), 0);
    assert_int_equal(compile_cache_get(&c, &k[3], got, NULL, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_covers_what_the_object_depends_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_needs_a_compiler_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_miss_then_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_a_shared_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_least_recently_used_go_first, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
