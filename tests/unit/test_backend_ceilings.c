/*
 * test_backend_ceilings.c -- the ceilings cache keeps the best this
 * machine has shown: a re-measurement that reads lower (a loaded machine)
 * keeps the earlier figure, one that reads higher replaces it, nested
 * objects too; a first measurement is stored as measured.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "util/fs.h"

/* The fake device's next measurement. */
static double next_f32, next_bw;

static int fake_available(char *why, size_t n)
{
    (void)why; (void)n;
    return 0;
}

static int fake_describe(json_t **device, char *err, size_t n)
{
    (void)err; (void)n;
    *device = json_pack("{ss ss}", "key", "fake:test", "name", "a fake device");
    return 0;
}

static int fake_measure(const char *workdir, json_t **ceilings, char *err, size_t n)
{
    (void)workdir; (void)err; (void)n;
    *ceilings = json_pack("{s{sf} sf}", "peak_gflops", "f32", next_f32, "bandwidth_gbs", next_bw);
    return 0;
}

static const backend_t fake = {
    .name = "fake",
    .available = fake_available,
    .describe = fake_describe,
    .measure_ceilings = fake_measure,
};

static void measure(int remeasure, double *f32, double *bw)
{
    json_t *dev = NULL;
    char err[256];
    assert_int_equal(backend_device(&fake, remeasure, &dev, err, sizeof err), 0);
    json_t *c = json_object_get(dev, "ceilings");
    *f32 = json_number_value(json_object_get(json_object_get(c, "peak_gflops"), "f32"));
    *bw = json_number_value(json_object_get(c, "bandwidth_gbs"));
    json_decref(dev);
}

static void test_ceilings_keep_the_best(void **st)
{
    (void)st;
    char dir[512];
    assert_int_equal(fs_mkdtemp("emile-ceil-test-", dir, sizeof dir), 0);
    setenv("XDG_CACHE_HOME", dir, 1);
    double f32, bw;
    next_f32 = 200.0, next_bw = 20.0;
    measure(0, &f32, &bw);                 /* first: stored as measured */
    assert_true(f32 == 200.0 && bw == 20.0);
    next_f32 = 20.0, next_bw = 2.0;        /* a loaded machine reads 10x low */
    measure(1, &f32, &bw);
    assert_true(f32 == 200.0 && bw == 20.0);
    measure(0, &f32, &bw);                 /* and the cache says the same */
    assert_true(f32 == 200.0 && bw == 20.0);
    next_f32 = 250.0, next_bw = 10.0;      /* a better peak replaces, a worse copy does not */
    measure(1, &f32, &bw);
    assert_true(f32 == 250.0 && bw == 20.0);
    fs_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceilings_keep_the_best),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
