/*
 * test_keystream.c -- the mask over a held-back set's inputs
 * (src/util/keystream.c) and the runner's side of it: the keystream is
 * splitmix64 where the reference values are known, XOR is its own inverse,
 * only whole words inside a range change, key 0 changes nothing; and a CPU
 * runner given "run SLOT KEY" removes exactly that mask from the slot's
 * inputs before the call (the CUDA runner's PTX does the same arithmetic:
 * `make test-gpu`'s held-back sets fail if it does not), while a malformed
 * key is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emile_test.h"
#include "backend/backend.h"
#include "task/task.h"
#include "util/fs.h"
#include "util/keystream.h"
#include "util/paths.h"
#include "worker/layout.h"
#include "worker/runner_client.h"

static void test_splitmix_values(void **state)
{
    (void)state;
    /* splitmix64 seeded with 0: its state steps by the golden gamma, and
     * its first outputs are these (Vigna's reference implementation). */
    const uint64_t g = 0x9E3779B97F4A7C15ull;
    assert_true(keystream_word(g, 0) == 0xE220A8397B1DCDAFull);
    assert_true(keystream_word(g, 1) == 0x6E789E6AA1B965F4ull);
    assert_true(keystream_word(0, 5) == 0);
}

static void test_xor_is_its_own_inverse(void **state)
{
    (void)state;
    uint8_t a[256], b[256];
    for (int i = 0; i < 256; i++)
        a[i] = b[i] = (uint8_t)(i * 37 + 11);
    /* a range with ragged ends: bytes 13 .. 13+200 */
    keystream_xor(a, 13, 200, 0x1234567890abcdefull);
    size_t first, count;
    keystream_words(13, 200, &first, &count);
    assert_int_equal(first, 2);             /* bytes 16.. */
    assert_int_equal(count, 24);            /* up to byte 208 (213 rounded down) */
    for (int i = 0; i < 16; i++)
        assert_int_equal(a[i], b[i]);
    for (int i = 208; i < 256; i++)
        assert_int_equal(a[i], b[i]);
    int changed = 0;
    for (int i = 16; i < 208; i++)
        changed += a[i] != b[i];
    assert_true(changed > 180);
    keystream_xor(a, 13, 200, 0x1234567890abcdefull);
    assert_memory_equal(a, b, sizeof a);
    keystream_xor(a, 0, 256, 0);
    assert_memory_equal(a, b, sizeof a);
}

/* The runner next to this test binary's build directory. */
static void use_built_runner(void)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    snprintf(self, sizeof self, "%s", emile_self_path());
    snprintf(path, sizeof path, "%s/../emile-runner", dirname(self));
    setenv("EMILE_RUNNER", path, 1);
}

static void test_cpu_runner_unmasks(void **state)
{
    (void)state;
    use_built_runner();
    task_t t;
    char err[512];
    task_init(&t);
    assert_int_equal(task_load_file(&t, "examples/cpu_attention.json", err, sizeof err), 0);
    assert_int_equal(task_finalize(&t, err, sizeof err), 0);
    arena_layout_t lay;
    memset(&lay, 0, sizeof lay);
    assert_int_equal(layout_add_slot(&lay, "task", &t.op, &t.params, t.dtype, err, sizeof err), 0);
    char dir[] = "/tmp/emile-keystream-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.wall_s = 60;
    l.drop_uid = -1;
    runner_t r;
    int rc = runner_start(&r, backend_find("cpu"), dir, NULL, lay.total, &l);
    assert_int_equal(rc, RUNNER_OK);
    assert_int_equal(r.can_unmask, 1);
    assert_int_equal(r.unmask_pass, 0);    /* the CPU backend's runs are unkeyed */
    char *line = layout_bind_line(&lay, 0, "");
    assert_int_equal(runner_cmd(&r, NULL, 0, 0, "bind", line + strlen("bind  ")), RUNNER_OK);
    free(line);
    const slot_layout_t *sl = &lay.slots[0];
    size_t n = sl->end - sl->begin;
    uint8_t *plain = malloc(n);
    assert_non_null(plain);
    for (size_t i = 0; i < n; i++)
        plain[i] = (uint8_t)(i * 131 + 7);
    memcpy(r.arena + sl->begin, plain, n);
    const uint64_t key = 0x0123456789abcdefull;
    for (int k = 0; k < sl->n_tensors; k++)
        if (!sl->is_out[k])
            keystream_xor(r.arena, sl->off[k], sl->bytes[k], key);
    assert_true(memcmp(r.arena + sl->begin, plain, n) != 0);
    run_result_t res;
    assert_int_equal(runner_run_keyed(&r, 0, key, &res), RUNNER_OK);
    /* every input is plain again (the null kernel wrote nothing) */
    for (int k = 0; k < sl->n_tensors; k++)
        if (!sl->is_out[k])
            assert_memory_equal(r.arena + sl->off[k], plain + (sl->off[k] - sl->begin), sl->bytes[k]);
    /* key 0 changes nothing; a malformed key is an error, not a run */
    assert_int_equal(runner_run_keyed(&r, 0, 0, &res), RUNNER_OK);
    assert_int_equal(runner_cmd(&r, NULL, 0, 4, "run", "0 12345"), RUNNER_ERR);
    assert_non_null(strstr(r.msg, "bad run command"));
    assert_int_equal(runner_cmd(&r, NULL, 0, 4, "run", "0 0123456789abcdeg"), RUNNER_ERR);
    for (int k = 0; k < sl->n_tensors; k++)
        if (!sl->is_out[k])
            assert_memory_equal(r.arena + sl->off[k], plain + (sl->off[k] - sl->begin), sl->bytes[k]);
    runner_stop(&r);
    free(plain);
    fs_rm_rf(dir);
    task_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splitmix_values),
        cmocka_unit_test(test_xor_is_its_own_inverse),
        cmocka_unit_test(test_cpu_runner_unmasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
