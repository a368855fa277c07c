/*
 * test_engine_generate.c -- sampler, generation loop, and the hot-swapped
 * attention slot (kernels from tests/data/engine built with cc into .so
 * files and loaded with dlopen, as `emile taste` will).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/attn_slot.h"
#include "engine/generate.h"
#include "engine/qwen3.h"
#include "engine/sampler.h"

#define DATA "tests/data/qwen3-tiny"

/* C, W: the transformers checkpoint (slot tests).  RC, RW: random weights
 * for the tiny shape, untied: the checkpoint's tied order-one embeddings make
 * every greedy step repeat the last token, which would test nothing. */
static qwen3_config_t C, RC;
static qwen3_weights_t W, RW;
static char tmpdir[64];

static int setup(void **st)
{
    (void)st;
    char err[256];
    if (qwen3_load_dir(&C, &W, DATA, err, sizeof err) != 0) {
        fprintf(stderr, "load: %s\n", err);
        return -1;
    }
    qwen3_config_named(&RC, "tiny");
    RC.tie_embeddings = 0;
    if (qwen3_weights_random(&RW, &RC, 2026, err, sizeof err) != 0)
        return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/emile-gen-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    qwen3_weights_free(&W);
    qwen3_weights_free(&RW);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- sampler ---------------------------------------------------------- */

static void test_sampler(void **st)
{
    (void)st;
    float lg[6] = { 0.0f, 2.0f, 5.0f, 5.0f, -1.0f, 4.9f };
    assert_int_equal(sampler_argmax(lg, 6), 2);                 /* first of a tie */
    sampler_t s;
    assert_int_equal(sampler_init(&s, 6, 0.0f, 1.0f, 1), 0);
    assert_int_equal(sampler_sample(&s, lg), 2);
    sampler_free(&s);

    /* T = 1 over logits (0, ln 3): token 1 three times in four */
    float two[2] = { 0.0f, logf(3.0f) };
    assert_int_equal(sampler_init(&s, 2, 1.0f, 1.0f, 42), 0);
    int ones = 0;
    for (int i = 0; i < 8000; i++)
        ones += sampler_sample(&s, two);
    assert_true(fabs(ones / 8000.0 - 0.75) < 0.02);
    sampler_free(&s);

    /* nucleus: p = (0.525, 0.475, tiny...) -> top_p 0.5 keeps token 0 only,
     * top_p 0.9 keeps tokens 0 and 1, never the tail */
    float nuc[5] = { 10.0f, 9.9f, 0.0f, 0.5f, 1.0f };
    assert_int_equal(sampler_init(&s, 5, 1.0f, 0.5f, 7), 0);
    for (int i = 0; i < 500; i++)
        assert_int_equal(sampler_sample(&s, nuc), 0);
    sampler_free(&s);
    assert_int_equal(sampler_init(&s, 5, 1.0f, 0.9f, 7), 0);
    int seen[5] = { 0 };
    for (int i = 0; i < 2000; i++)
        seen[sampler_sample(&s, nuc)]++;
    assert_true(seen[0] > 800 && seen[1] > 700);
    assert_int_equal(seen[2] + seen[3] + seen[4], 0);
    sampler_free(&s);

    /* same seed, same draws; another seed, other draws */
    float flat[64];
    for (int i = 0; i < 64; i++)
        flat[i] = 0.01f * i;
    sampler_t a, b, c;
    assert_int_equal(sampler_init(&a, 64, 1.0f, 0.95f, 5), 0);
    assert_int_equal(sampler_init(&b, 64, 1.0f, 0.95f, 5), 0);
    assert_int_equal(sampler_init(&c, 64, 1.0f, 0.95f, 6), 0);
    int diff = 0;
    for (int i = 0; i < 100; i++) {
        int x = sampler_sample(&a, flat);
        assert_int_equal(x, sampler_sample(&b, flat));
        diff += x != sampler_sample(&c, flat);
    }
    assert_true(diff > 50);
    sampler_free(&a);
    sampler_free(&b);
    sampler_free(&c);
    assert_int_equal(sampler_init(&a, 0, 1.0f, 1.0f, 1), -1);
}

/* ---- generation ------------------------------------------------------- */

static const int prompt[] = { 203, 290, 2, 239, 451, 239, 163, 54, 121, 360, 272, 272 };
#define NP ((int)(sizeof prompt / sizeof prompt[0]))

struct counter { int n, stop_at, last; };

static int count_cb(void *user, int token)
{
    struct counter *c = user;
    c->n++;
    c->last = token;
    return c->n == c->stop_at;
}

static int gen(int max_chunk, const engine_gen_opts_t *o, int *out, engine_token_fn cb,
               void *user, engine_gen_stats_t *stats)
{
    qwen3_state_t s;
    char err[256] = "";
    assert_int_equal(qwen3_state_init(&s, &RC, 64, max_chunk, err, sizeof err), 0);
    int n = engine_generate(&RC, &RW, &s, NULL, prompt, NP, o, out, cb, user, stats, err,
                            sizeof err);
    if (n < 0)
        fail_msg("generate: %s", err);
    qwen3_state_free(&s);
    return n;
}

static void test_generate_greedy(void **st)
{
    (void)st;
    engine_gen_opts_t o = engine_gen_defaults();
    assert_true(o.temperature <= 0.0f && o.stop_id == -1);
    o.max_new = 10;
    int out[10];
    struct counter cnt = { 0, 0, -1 };
    engine_gen_stats_t stats;
    assert_int_equal(gen(32, &o, out, count_cb, &cnt, &stats), 10);
    assert_int_equal(cnt.n, 10);                     /* streamed, one by one */
    assert_int_equal(cnt.last, out[9]);
    assert_int_equal(stats.n_prompt, NP);
    assert_int_equal(stats.n_new, 10);
    assert_true(stats.ttft_s > 0.0 && stats.decode_s > 0.0 && stats.decode_tok_s > 0.0);

    /* each token is the argmax of one forward pass over everything before */
    int seq[NP + 10];
    memcpy(seq, prompt, sizeof prompt);
    memcpy(seq + NP, out, sizeof out);
    qwen3_state_t s;
    char err[256];
    assert_int_equal(qwen3_state_init(&s, &RC, 64, 32, err, sizeof err), 0);
    assert_int_equal(qwen3_forward(&RC, &RW, &s, NULL, seq, NP + 9, 0, 1, err, sizeof err), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(out[i], sampler_argmax(s.logits + (size_t)(NP - 1 + i) * RC.vocab,
                                                RC.vocab));
    qwen3_state_free(&s);

    /* prefill in chunks of 5: the same tokens */
    int out5[10];
    assert_int_equal(gen(5, &o, out5, NULL, NULL, NULL), 10);
    assert_memory_equal(out, out5, sizeof out);

    /* stop token: ends before it, not emitted */
    int k = 0;
    while (k < 10) {
        int first = 1;
        for (int j = 0; j < k; j++)
            first &= out[j] != out[k];
        if (first && k >= 2)
            break;
        k++;
    }
    assert_true(k < 10);
    o.stop_id = out[k];
    assert_int_equal(gen(32, &o, out5, NULL, NULL, NULL), k);
    /* the callback stops it */
    o.stop_id = -1;
    cnt = (struct counter){ 0, 3, -1 };
    assert_int_equal(gen(32, &o, out5, count_cb, &cnt, NULL), 3);
    /* the context stops it: 12 + 52 = 64 */
    o.max_new = 100;
    int many[100];
    assert_int_equal(gen(32, &o, many, NULL, NULL, NULL), 64 - NP + 1);
}

static void test_generate_sampled(void **st)
{
    (void)st;
    engine_gen_opts_t o = engine_gen_defaults();
    o.max_new = 12;
    o.temperature = 1.5f;
    o.top_p = 0.95f;
    o.seed = 99;
    int a[12], b[12], c[12], g[12];
    assert_int_equal(gen(32, &o, a, NULL, NULL, NULL), 12);
    assert_int_equal(gen(32, &o, b, NULL, NULL, NULL), 12);
    assert_memory_equal(a, b, sizeof a);
    o.seed = 100;
    assert_int_equal(gen(32, &o, c, NULL, NULL, NULL), 12);
    o.temperature = 0.0f;
    assert_int_equal(gen(32, &o, g, NULL, NULL, NULL), 12);
    assert_true(memcmp(a, c, sizeof a) != 0);
    assert_true(memcmp(a, g, sizeof a) != 0);
}

/* ---- the attention slot ----------------------------------------------- */

static const char *build_so(const char *name)
{
    static char so[128];
    snprintf(so, sizeof so, "%s/%s.so", tmpdir, name);
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -std=c11 -O2 -shared -fPIC -Iinclude "
             "tests/data/engine/%s.c -o %s -lm", cc, name, so);
    if (system(cmd) != 0)
        fail_msg("could not build %s", cmd);
    return so;
}

/* Prefill the prompt through slot; 0 or -1, logits of every row. */
static int prefill(attn_slot_t *slot, float *logits, char *err, size_t errlen)
{
    qwen3_state_t s;
    assert_int_equal(qwen3_state_init(&s, &C, 64, 32, err, errlen), 0);
    int rc = qwen3_forward(&C, &W, &s, slot, prompt, NP, 0, 1, err, errlen);
    if (rc == 0)
        memcpy(logits, s.logits, (size_t)NP * C.vocab * sizeof(float));
    qwen3_state_free(&s);
    return rc;
}

static float max_diff(const float *a, const float *b, size_t n)
{
    float e = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= e))
            e = isnan(a[i] - b[i]) ? INFINITY : fabsf(a[i] - b[i]);
    return e;
}

static void test_attention_hot_swap(void **st)
{
    (void)st;
    size_t n = (size_t)NP * C.vocab;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    assert_non_null(ref);
    assert_non_null(got);
    char err[512] = "";
    attn_slot_t slot;
    attn_slot_init_builtin(&slot);
    assert_string_equal(slot.label, "builtin");
    assert_int_equal(prefill(&slot, ref, err, sizeof err), 0);

    /* a correct kernel from a .so: same logits, and it was really called */
    const char *so = build_so("attn_online");
    assert_int_equal(attn_slot_load(&slot, so, err, sizeof err), 0);
    assert_string_equal(slot.label, so);
    long before = slot.calls;
    assert_int_equal(prefill(&slot, got, err, sizeof err), 0);
    assert_int_equal(slot.calls - before, C.n_layers);
    assert_true(max_diff(ref, got, n) < 1e-3f);

    /* a wrong kernel changes the logits: the swap is real */
    assert_int_equal(attn_slot_load(&slot, build_so("attn_zero"), err, sizeof err), 0);
    assert_int_equal(prefill(&slot, got, err, sizeof err), 0);
    assert_true(max_diff(ref, got, n) > 0.1f);

    /* a failing kernel is reported, naming it */
    so = build_so("attn_fail");
    assert_int_equal(attn_slot_load(&slot, so, err, sizeof err), 0);
    assert_int_equal(prefill(&slot, got, err, sizeof err), -1);
    assert_non_null(strstr(err, "returned 7"));
    assert_non_null(strstr(err, "attn_fail.so"));

    /* back to the built-in kernel */
    attn_slot_close(&slot);
    assert_string_equal(slot.label, "builtin");
    assert_int_equal(prefill(&slot, got, err, sizeof err), 0);
    assert_true(max_diff(ref, got, n) == 0.0f);

    /* objects that are not kernels are refused, leaving the built-in one */
    so = build_so("nosym");
    assert_int_equal(attn_slot_load(&slot, so, err, sizeof err), -1);
    assert_non_null(strstr(err, "no symbol emile_kernel"));
    assert_int_equal(attn_slot_load(&slot, "/nonexistent/k.so", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/k.so"));
    assert_string_equal(slot.label, "builtin");
    assert_true(slot.fn == engine_attention_builtin);
    free(ref);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_generate_greedy),
        cmocka_unit_test(test_generate_sampled),
        cmocka_unit_test(test_attention_hot_swap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
