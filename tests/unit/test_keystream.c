/*
 * test_keystream.c -- the mask over a held-back set's inputs
 * (src/util/keystream.c) and the runner's side of it: the keystream is
 * splitmix64's mixer where the reference values are known, one plaintext
 * word does not give the key away as one lane would, the key's text is
 * exactly 32 hex digits, XOR is its own inverse, only whole words inside a
 * range change, key 0, 0 changes nothing; and a CPU
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
     * its first outputs are mix(G0), mix(2 G0) (Vigna's reference). */
    const uint64_t g = 0x9E3779B97F4A7C15ull;
    assert_true(keystream_mix(g) == 0xE220A8397B1DCDAFull);
    assert_true(keystream_mix(2 * g) == 0x6E789E6AA1B965F4ull);
    /* a word is the XOR of the two lanes; the key 0, 0 gives 0 */
    keystream_key_t k = {5, 9};
    assert_true(keystream_word(k, 3) == (keystream_mix(5 + 3 * g) ^ keystream_mix(9 ^ (3 * 0xD1B54A32D192ED03ull))));
    keystream_key_t zero = {0, 0};
    assert_true(keystream_word(zero, 5) == 0);
}

/* One lane alone would give the key away to a kernel that knows one
 * plaintext word: mix is a bijection, so keystream word = mix(k0 + w G0)
 * could be inverted.  With the second lane, the key read off one word by
 * inverting lane 0 alone (as if lane 1 were absent) is wrong. */
static uint64_t unmix(uint64_t z)
{
    /* the inverse of keystream_mix, step by step */
    z ^= z >> 31 ^ z >> 62;
    z *= 0x319642B2D24D8EC3ull;   /* inverse of 0x94D049BB133111EB mod 2^64 */
    z ^= z >> 27 ^ z >> 54;
    z *= 0x96DE1B173F119089ull;   /* inverse of 0xBF58476D1CE4E5B9 */
    z ^= z >> 30 ^ z >> 60;
    return z;
}

static void test_one_lane_does_not_give_the_key(void **state)
{
    (void)state;
    const uint64_t g = 0x9E3779B97F4A7C15ull;
    for (uint64_t x = 1; x < 1000000; x = x * 7 + 3)
        assert_true(unmix(keystream_mix(x)) == x);   /* the attack works on one lane */
    keystream_key_t k = {0x1122334455667788ull, 0x99aabbccddeeff00ull};
    uint64_t word = 12345, ks = keystream_word(k, word);
    uint64_t guess_k0 = unmix(ks) - word * g;
    assert_true(guess_k0 != k.k0);
}

static void test_key_text(void **state)
{
    (void)state;
    keystream_key_t k = {0x0123456789abcdefull, 0xfedcba9876543210ull}, back;
    char hex[33];
    keystream_format(k, hex);
    assert_string_equal(hex, "0123456789abcdeffedcba9876543210");
    assert_int_equal(keystream_parse(hex, &back), 0);
    assert_true(back.k0 == k.k0 && back.k1 == k.k1);
    assert_int_equal(keystream_parse("0123456789ABCDEFfedcba9876543210", &back), 0);
    assert_true(back.k0 == k.k0);
    /* anything but 32 hex digits */
    assert_int_equal(keystream_parse("0123456789abcdeffedcba987654321", &back), -1);
    assert_int_equal(keystream_parse("-123456789abcdeffedcba9876543210", &back), -1);
    assert_int_equal(keystream_parse("0x23456789abcdeffedcba9876543210", &back), -1);
    assert_int_equal(keystream_parse("0123456789abcdeffedcba987654321g", &back), -1);
    assert_int_equal(keystream_parse(NULL, &back), -1);
}

static void test_xor_is_its_own_inverse(void **state)
{
    (void)state;
    uint8_t a[256], b[256];
    for (int i = 0; i < 256; i++)
        a[i] = b[i] = (uint8_t)(i * 37 + 11);
    keystream_key_t k = {0x1234567890abcdefull, 77};
    /* a range with ragged ends: bytes 13 .. 13+200 */
    keystream_xor(a, 13, 200, k);
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
    keystream_xor(a, 13, 200, k);
    assert_memory_equal(a, b, sizeof a);
    keystream_key_t zero = {0, 0};
    keystream_xor(a, 0, 256, zero);
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
    const keystream_key_t key = {0x0123456789abcdefull, 0x5555aaaa5555aaaaull};
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
    const keystream_key_t zero = {0, 0};
    assert_int_equal(runner_run_keyed(&r, 0, zero, &res), RUNNER_OK);
    assert_int_equal(runner_cmd(&r, NULL, 0, 4, "run", "0 12345"), RUNNER_ERR);
    assert_non_null(strstr(r.msg, "bad run command"));
    assert_int_equal(runner_cmd(&r, NULL, 0, 4, "run", "0 -0000000000000010000000000000001"), RUNNER_ERR);
    assert_int_equal(runner_cmd(&r, NULL, 0, 4, "run", "0 0123456789abcdef0123456789abcdef junk"), RUNNER_ERR);
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
        cmocka_unit_test(test_one_lane_does_not_give_the_key),
        cmocka_unit_test(test_key_text),
        cmocka_unit_test(test_xor_is_its_own_inverse),
        cmocka_unit_test(test_cpu_runner_unmasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
