/*
 * test_engine_ops.c -- the engine's op slots on the cpu: every decode op
 * (decode_attention, qkv_proj, o_proj, gate_up, down_proj, lm_head) swapped
 * for its reference kernel (kernels/<op>/cpu/reference.c) and for the
 * builtin agent's first rung (kernels/gemv/cpu/v1_parallel.c,
 * kernels/decode_attention/cpu/v1_parallel.c), one at a time and all at
 * once, built with cc and loaded with dlopen as `emile taste` does: the
 * logits of every decode step match the engine's own ops, each kernel ran
 * once a layer a step, a failing kernel is named, a wrong pick changes the
 * generation; and the breakdown's bookkeeping (op_slot.h's profile,
 * breakdown.h's floors).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/breakdown.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/op_slot.h"
#include "engine/qwen3.h"

#define DATA "tests/data/qwen3-tiny"

/* C, W: the transformers checkpoint; RC, RW: random untied weights of the
 * tiny shape (the checkpoint's greedy steps repeat the last token). */
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
    if (qwen3_weights_random(&RW, &RC, 7, err, sizeof err) != 0)
        return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/emile-ops-XXXXXX");
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

/* Build src (repository path) into tmpdir/name.so once; its path. */
static const char *build(const char *src, const char *name)
{
    static char so[16][160];
    static int n;
    char *out = so[n++ % 16];
    snprintf(out, 160, "%s/%s.so", tmpdir, name);
    FILE *f = fopen(out, "r");
    if (f) {
        fclose(f);
        return out;
    }
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    char cmd[768];
    snprintf(cmd, sizeof cmd, "%s -std=gnu11 -O2 -fopenmp -shared -fPIC -Iinclude %s -o %s -lm",
             cc, src, out);
    if (system(cmd) != 0)
        fail_msg("could not build %s", cmd);
    return out;
}

static const char *reference_of(int op)
{
    char src[160], name[64];
    const char *nm = engine_op_name(op);
    assert_non_null(nm);
    snprintf(src, sizeof src, "kernels/%s/cpu/reference.c", nm ? nm : "");
    snprintf(name, sizeof name, "ref_%s", nm ? nm : "");
    return build(src, name);
}

static const char *rung_of(int op)
{
    return op == ENGINE_OP_DECODE_ATTENTION
         ? build("kernels/decode_attention/cpu/v1_parallel.c", "decode_v1")
         : build("kernels/gemv/cpu/v1_parallel.c", "gemv_v1");
}

static const int prompt[] = { 203, 290, 2, 239, 451, 239, 163, 54, 121, 360, 272, 272 };
#define NP ((int)(sizeof prompt / sizeof prompt[0]))
#define STEPS 6

/* Prefill the prompt with the engine's own ops, then STEPS decode steps
 * feeding fixed tokens through ops; the logits of every step into out
 * [STEPS][vocab].  0, or -1 with err. */
static int decode_logits(engine_ops_t *ops, float *out, char *err, size_t errlen)
{
    qwen3_state_t s;
    assert_int_equal(qwen3_state_init(&s, &C, 64, 32, err, errlen), 0);
    int rc = qwen3_forward_ops(&C, &W, &s, NULL, prompt, NP, 0, 0, err, errlen);
    for (int t = 0; t < STEPS && rc == 0; t++) {
        int tok = (t * 97 + 11) % C.vocab;
        rc = qwen3_forward_ops(&C, &W, &s, ops, &tok, 1, NP + t, 0, err, errlen);
        if (rc == 0)
            memcpy(out + (size_t)t * C.vocab, s.logits, (size_t)C.vocab * sizeof(float));
    }
    qwen3_state_free(&s);
    return rc;
}

/* max |a - b| / max |a| */
static float rel_diff(const float *a, const float *b, size_t n)
{
    float e = 0.0f, m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= e))
            e = isnan(d) ? INFINITY : d;
        if (fabsf(a[i]) > m)
            m = fabsf(a[i]);
    }
    return m > 0 ? e / m : e;
}

/* Load the kernels of which (NULL: the engine's own) and compare. */
static void check_swap(const float *ref, float *got, const char *const *which, const char *what)
{
    engine_ops_t ops;
    engine_ops_init(&ops);
    char err[512] = "";
    for (int op = 0; op < ENGINE_OP_COUNT; op++)
        if (which[op])
            assert_int_equal(op_slot_load(&ops.slot[op], which[op], err, sizeof err), 0);
    if (decode_logits(&ops, got, err, sizeof err) != 0)
        fail_msg("%s: %s", what, err);
    float d = rel_diff(ref, got, (size_t)STEPS * C.vocab);
    if (!(d < 1e-4f))
        fail_msg("%s: logits off by %g of their largest", what, d);
    for (int op = 0; op < ENGINE_OP_COUNT; op++) {
        /* once a layer a step (lm_head once a step); nothing for the
         * prefill's attention slot in decode */
        long want = !which[op] || op == ENGINE_OP_ATTENTION ? 0
                  : op == ENGINE_OP_LM_HEAD ? STEPS : (long)STEPS * C.n_layers;
        if (ops.slot[op].calls != want)
            fail_msg("%s: %s ran %ld times, not %ld", what, engine_op_name(op),
                     ops.slot[op].calls, want);
    }
    engine_ops_close(&ops);
}

static void test_decode_ops_match_the_engine(void **st)
{
    (void)st;
    size_t n = (size_t)STEPS * C.vocab;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    assert_non_null(ref);
    assert_non_null(got);
    char err[512] = "";
    assert_int_equal(decode_logits(NULL, ref, err, sizeof err), 0);
    const char *which[ENGINE_OP_COUNT];
    char what[128];
    /* each op alone: its reference, then the ladder's first rung */
    for (int kind = 0; kind < 2; kind++)
        for (int op = ENGINE_OP_DECODE_ATTENTION; op < ENGINE_OP_COUNT; op++) {
            memset(which, 0, sizeof which);
            which[op] = kind == 0 ? reference_of(op) : rung_of(op);
            snprintf(what, sizeof what, "%s %s", which[op], kind ? "v1" : "reference");
            check_swap(ref, got, which, what);
        }
    /* all at once */
    for (int kind = 0; kind < 2; kind++) {
        memset(which, 0, sizeof which);
        for (int op = ENGINE_OP_DECODE_ATTENTION; op < ENGINE_OP_COUNT; op++)
            which[op] = kind == 0 ? reference_of(op) : rung_of(op);
        check_swap(ref, got, which, kind ? "every op, v1" : "every op, reference");
    }
    free(ref);
    free(got);
}

static void test_failing_and_wrong_kernels(void **st)
{
    (void)st;
    size_t n = (size_t)STEPS * C.vocab;
    float *got = malloc(n * sizeof(float));
    assert_non_null(got);
    char err[512] = "";
    const char *fail = build("tests/data/engine/op_fail.c", "op_fail");
    for (int op = ENGINE_OP_DECODE_ATTENTION; op < ENGINE_OP_COUNT; op++) {
        engine_ops_t ops;
        engine_ops_init(&ops);
        assert_int_equal(op_slot_load(&ops.slot[op], fail, err, sizeof err), 0);
        assert_int_equal(decode_logits(&ops, got, err, sizeof err), -1);
        char want[96];
        const char *nm = engine_op_name(op);
        snprintf(want, sizeof want, "%s kernel", nm ? nm : "?");
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, "returned 9"));
        assert_non_null(strstr(err, "op_fail.so"));
        assert_non_null(strstr(err, op == ENGINE_OP_LM_HEAD ? "after the last layer"
                                                            : "in layer 0"));
        engine_ops_close(&ops);
    }

    /* an lm_head kernel's pick is the engine's greedy pick: a wrong one
     * changes the generation (random weights: the tokens move) */
    engine_model_t m;
    qwen3_state_t s;
    assert_int_equal(qwen3_state_init(&s, &RC, 64, 32, err, sizeof err), 0);
    assert_int_equal(engine_model_wrap_cpu(&m, &RC, &RW, &s, err, sizeof err), 0);
    engine_gen_opts_t o = engine_gen_defaults();
    o.max_new = 16;
    int a[16], b[16], c[16];
    engine_ops_t ops;
    engine_ops_init(&ops);
    assert_int_equal(engine_generate_model(&m, &ops, prompt, NP, &o, a, NULL, NULL, NULL, err,
                                           sizeof err), 16);
    assert_int_equal(op_slot_load(&ops.slot[ENGINE_OP_LM_HEAD], reference_of(ENGINE_OP_LM_HEAD),
                                  err, sizeof err), 0);
    assert_int_equal(engine_generate_model(&m, &ops, prompt, NP, &o, b, NULL, NULL, NULL, err,
                                           sizeof err), 16);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(op_slot_load(&ops.slot[ENGINE_OP_LM_HEAD],
                                  build("tests/data/engine/lm_head_off_by_one.c", "lm_off"), err,
                                  sizeof err), 0);
    assert_int_equal(engine_generate_model(&m, &ops, prompt, NP, &o, c, NULL, NULL, NULL, err,
                                           sizeof err), 16);
    assert_int_equal(c[0], a[0]);              /* the first pick is the prefill's */
    assert_true(c[1] != a[1]);
    engine_ops_close(&ops);
    engine_model_close(&m);
    qwen3_state_free(&s);
    free(got);
}

/* The generation with every op swapped is the engine's own, token for
 * token, and the profile counts what ran. */
static void test_profile_bookkeeping(void **st)
{
    (void)st;
    char err[512] = "";
    engine_model_t m;
    qwen3_state_t s;
    assert_int_equal(qwen3_state_init(&s, &RC, 64, 32, err, sizeof err), 0);
    assert_int_equal(engine_model_wrap_cpu(&m, &RC, &RW, &s, err, sizeof err), 0);
    engine_gen_opts_t o = engine_gen_defaults();
    o.max_new = 10;
    int a[10], b[10];
    engine_ops_t ops;
    engine_ops_init(&ops);
    engine_profile_t prof;
    memset(&prof, 0, sizeof prof);
    ops.prof = &prof;
    assert_int_equal(engine_generate_model(&m, &ops, prompt, NP, &o, a, NULL, NULL, NULL, err,
                                           sizeof err), 10);
    /* one prefill of NP tokens, 9 decode steps at positions NP..NP+8 */
    assert_int_equal(prof.calls[0], 1);
    assert_int_equal(prof.calls[1], 9);
    assert_int_equal(prof.prefill_tokens, NP);
    double kv = 0;
    for (int i = 0; i < 9; i++)
        kv += NP + i + 1;
    assert_true(fabs(prof.kv_len_sum - kv) < 1e-9);
    for (int ph = 0; ph < 2; ph++) {
        double sum = 0;
        for (int op = 0; op < ENGINE_PROF_N; op++) {
            assert_true(prof.ms[ph][op] >= 0);
            sum += prof.ms[ph][op];
        }
        /* the sections cover the forward: their sum is its time */
        assert_true(prof.step_ms[ph] > 0);
        assert_true(fabs(sum - prof.step_ms[ph]) <= 0.05 * prof.step_ms[ph] + 1e-3);
    }
    assert_true(prof.ms[0][ENGINE_OP_ATTENTION] > 0 && prof.ms[1][ENGINE_OP_ATTENTION] == 0);
    assert_true(prof.ms[1][ENGINE_OP_DECODE_ATTENTION] > 0 &&
                prof.ms[0][ENGINE_OP_DECODE_ATTENTION] == 0);
    for (int op = ENGINE_OP_QKV_PROJ; op < ENGINE_OP_COUNT; op++)
        assert_true(prof.ms[0][op] > 0 && prof.ms[1][op] > 0);

    /* every decode op swapped: same tokens, and they ran */
    for (int op = ENGINE_OP_DECODE_ATTENTION; op < ENGINE_OP_COUNT; op++)
        assert_int_equal(op_slot_load(&ops.slot[op], reference_of(op), err, sizeof err), 0);
    ops.prof = NULL;
    assert_int_equal(engine_generate_model(&m, &ops, prompt, NP, &o, b, NULL, NULL, NULL, err,
                                           sizeof err), 10);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(ops.slot[ENGINE_OP_QKV_PROJ].calls, 9L * RC.n_layers);
    assert_int_equal(ops.slot[ENGINE_OP_LM_HEAD].calls, 9);
    engine_ops_close(&ops);
    engine_model_close(&m);
    qwen3_state_free(&s);
}

static void test_breakdown_floors(void **st)
{
    (void)st;
    qwen3_config_t c;
    assert_int_equal(qwen3_config_named(&c, "qwen3-4b"), 0);
    engine_profile_t p;
    memset(&p, 0, sizeof p);
    /* two decode steps of 4 ms, lm_head 0.6 ms a step, caches of 99 and 101 */
    p.calls[1] = 2;
    p.step_ms[1] = 8.0;
    p.ms[1][ENGINE_OP_LM_HEAD] = 1.2;
    p.ms[1][ENGINE_OP_GATE_UP] = 3.0;
    p.ms[1][ENGINE_PROF_OTHER] = 0.5;
    p.kv_len_sum = 200;
    engine_ceilings_t ce = { .gbs = 3000, .gflops = 800e3, .elem = 2 };
    engine_breakdown_t b;
    engine_breakdown_compute(&c, &p, &ce, &b);
    assert_false(b.has[0]);
    assert_true(b.has[1]);
    assert_true(fabs(b.step_ms[1] - 4.0) < 1e-12);
    assert_true(fabs(b.kv_len - 100) < 1e-12);
    /* lm_head: bf16 [vocab, hidden] + the fp32 logits over 3 TB/s */
    double lm = (2.0 * (151936.0 * 2560 + 2560) + 4.0 * 151936) / 3000e9 * 1e3;
    assert_true(fabs(b.row[1][ENGINE_OP_LM_HEAD].ms - 0.6) < 1e-12);
    assert_true(fabs(b.row[1][ENGINE_OP_LM_HEAD].floor_ms - lm) < 1e-9);
    assert_true(fabs(b.row[1][ENGINE_OP_LM_HEAD].of_floor - lm / 0.6) < 1e-9);
    assert_true(fabs(b.row[1][ENGINE_OP_LM_HEAD].share - 0.15) < 1e-12);
    /* gate_up: 36 layers of [2 x 9728, 2560] */
    double gu = 36 * 2.0 * (2.0 * 9728 * 2560 + 2560 + 9728) / 3000e9 * 1e3;
    assert_true(fabs(b.row[1][ENGINE_OP_GATE_UP].floor_ms - gu) < 1e-9);
    /* other: the step less what the ops account for; no floor */
    assert_true(fabs(b.row[1][ENGINE_PROF_OTHER].ms - (4.0 - 0.6 - 1.5)) < 1e-9);
    assert_true(b.row[1][ENGINE_PROF_OTHER].floor_ms == 0);
    /* an op that did not run has no floor */
    assert_true(b.row[1][ENGINE_OP_O_PROJ].floor_ms == 0);
    /* no ceilings: no floors */
    ce.gbs = 0;
    engine_breakdown_compute(&c, &p, &ce, &b);
    assert_true(b.row[1][ENGINE_OP_LM_HEAD].floor_ms == 0);

    /* the JSON a child sends comes back whole; a forged one is refused */
    json_t *j = engine_profile_to_json(&p);
    engine_profile_t q;
    assert_int_equal(engine_profile_from_json(j, &q), 0);
    assert_memory_equal(&p, &q, sizeof p);
    json_array_set_new(json_array_get(json_object_get(j, "ms"), 1), 0, json_real(-1));
    assert_int_equal(engine_profile_from_json(j, &q), -1);
    json_decref(j);
    json_t *empty = json_object();
    assert_int_equal(engine_profile_from_json(empty, &q), -1);
    json_decref(empty);
}

static void test_op_names(void **st)
{
    (void)st;
    for (int op = 0; op < ENGINE_OP_COUNT; op++) {
        assert_int_equal(engine_op_from_name(engine_op_name(op)), op);
        /* every slot is an op spec in kernels/ (attention is a builtin op) */
        char path[128];
        const char *nm = engine_op_name(op);
        assert_non_null(nm);
        snprintf(path, sizeof path, "kernels/%s/cpu/reference.c", nm ? nm : "");
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        fclose(f);
    }
    assert_int_equal(engine_op_from_name("softmax"), -1);
    assert_null(engine_op_name(ENGINE_OP_COUNT));
    assert_false(engine_op_is_decode(ENGINE_OP_ATTENTION));
    assert_true(engine_op_is_decode(ENGINE_OP_LM_HEAD));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_names),
        cmocka_unit_test(test_decode_ops_match_the_engine),
        cmocka_unit_test(test_failing_and_wrong_kernels),
        cmocka_unit_test(test_profile_bookkeeping),
        cmocka_unit_test(test_breakdown_floors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
