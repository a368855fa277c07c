/*
 * emile_test.h -- small helpers shared by the unit tests (header only;
 * include after <cmocka.h>).
 *
 *   assert_near(a, b, tol)     |a - b| <= tol, doubles, values printed
 *   assert_rel(a, b, rel)      |a - b| <= rel * |b|
 *   assert_contains(s, needle) strstr, both strings printed on failure
 *   test_use_built_runner()    EMILE_RUNNER = realpath(build/emile-runner)
 *   test_private_runner(dir)   a copy of build/emile-runner in dir (0755) as
 *                              EMILE_RUNNER, so that a rebuild of build/
 *                              during the test cannot disturb it
 *   test_read_file(path)       whole file (malloc'd) or NULL
 */
#ifndef EMILE_TEST_H
#define EMILE_TEST_H

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define assert_near(a, b, tol)                                                                       \
    do {                                                                                             \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                               \
        if (!(fabs(a_ - b_) <= t_))                                                                  \
            fail_msg("%s = %.17g, expected %s = %.17g (tolerance %g)", #a, a_, #b, b_, t_);          \
    } while (0)

#define assert_rel(a, b, rel)                                                                        \
    do {                                                                                             \
        double a_ = (double)(a), b_ = (double)(b), r_ = (double)(rel);                               \
        if (!(fabs(a_ - b_) <= r_ * fabs(b_)))                                                       \
            fail_msg("%s = %.17g, expected %s = %.17g (relative tolerance %g)", #a, a_, #b, b_, r_); \
    } while (0)

#define assert_contains(s, needle)                                                                   \
    do {                                                                                             \
        const char *s_ = (s), *n_ = (needle);                                                        \
        if (!s_ || !strstr(s_, n_))                                                                  \
            fail_msg("%s = \"%s\" does not contain \"%s\"", #s, s_ ? s_ : "(null)", n_);             \
    } while (0)

/* Point the worker at the runner built beside the tests (run from the repo
 * root).  Returns 0, or -1 when build/emile-runner is missing. */
static inline int test_use_built_runner(void)
{
    char path[PATH_MAX];
    if (!realpath("build/emile-runner", path)) {
        fprintf(stderr, "build/emile-runner is missing: run `make build/emile-runner` and run the test "
                        "from the repository root\n");
        return -1;
    }
    setenv("EMILE_RUNNER", path, 1);
    return 0;
}

static inline char *test_read_file_n(const char *path, size_t *len);

/* Copy build/emile-runner to dir/emile-runner (mode 0755, through a
 * temporary name and a rename, so an existing copy is replaced, not
 * rewritten) and point EMILE_RUNNER at it.  0, or -1. */
static inline int test_private_runner(const char *dir)
{
    size_t len = 0;
    char *bin = test_read_file_n("build/emile-runner", &len);
    if (!bin) {
        fprintf(stderr, "build/emile-runner is missing: run `make build/emile-runner` from the repository root\n");
        return -1;
    }
    char tmp[PATH_MAX], dst[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/emile-runner.new", dir);
    snprintf(dst, sizeof dst, "%s/emile-runner", dir);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(bin, 1, len, f) == len;
    if (f)
        ok &= fclose(f) == 0;
    free(bin);
    if (!ok || chmod(tmp, 0755) != 0 || rename(tmp, dst) != 0)
        return -1;
    setenv("EMILE_RUNNER", dst, 1);
    return 0;
}

static inline char *test_read_file(const char *path)
{
    return test_read_file_n(path, NULL);
}

static inline char *test_read_file_n(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf)
        buf[got] = 0;
    if (len)
        *len = got;
    return buf;
}

#endif
