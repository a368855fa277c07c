/*
 * test_engine_loader.c -- safetensors validation and conversion, config.json
 * parsing and refusals, named shapes, seeded random weights.
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

#include "emile.h"
#include "engine/qwen3.h"
#include "engine/safetensors.h"

static char tmpdir[64];

static int setup(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/emile-loader-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write a safetensors file: header text as given (hlen_override > 0 lies
 * about its length), then nbytes of data. */
static const char *write_st(const char *name, const char *header, uint64_t hlen_override,
                            const void *data, size_t nbytes)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = hlen_override ? hlen_override : strlen(header);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(hl >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (nbytes)
        fwrite(data, 1, nbytes, f);
    fclose(f);
    return path;
}

static void test_scalar_conversions(void **st)
{
    (void)st;
    assert_true(st_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(st_bf16_to_f32(0xc040) == -3.0f);
    assert_true(st_f16_to_f32(0x3c00) == 1.0f);
    assert_true(st_f16_to_f32(0xc000) == -2.0f);
    assert_true(st_f16_to_f32(0x3555) == 0.333251953125f);
    assert_true(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24));     /* subnormal */
    assert_true(st_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));
    assert_true(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(st_f16_to_f32(0x7e00)));
    assert_true(st_f16_to_f32(0x7bff) == 65504.0f);
    /* f32 -> bf16 rounds to nearest even */
    assert_int_equal(st_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(st_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);      /* tie -> even */
    assert_int_equal(st_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);  /* tie -> even */
    assert_int_equal(st_f32_to_bf16(1.0f + ldexpf(1.0f, -7) + ldexpf(1.0f, -9)), 0x3f81);
    assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
}

static void test_read_f16_f32_bf16(void **st)
{
    (void)st;
    /* a: F16 [2,2] = 1, -2, 0.5, 65504; b: F32 [3] = 1.5, -0.25, 7; c: BF16 [1] = 2 */
    unsigned char data[8 + 12 + 2];
    uint16_t a[4] = { 0x3c00, 0xc000, 0x3800, 0x7bff };
    float b[3] = { 1.5f, -0.25f, 7.0f };
    uint16_t c = 0x4000;
    memcpy(data, a, 8);
    memcpy(data + 8, b, 12);
    memcpy(data + 20, &c, 2);
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]},"
                    "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                    "\"c\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[20,22]}}";
    const char *path = write_st("ok.safetensors", h, 0, data, sizeof data);
    st_file_t f;
    char err[256] = "";
    assert_int_equal(st_file_open(&f, path, err, sizeof err), 0);
    assert_int_equal(f.n_tensors, 3);
    const st_tensor_t *ta = st_file_find(&f, "a"), *tb = st_file_find(&f, "b");
    const st_tensor_t *tc = st_file_find(&f, "c");
    assert_non_null(ta);
    assert_non_null(tb);
    assert_non_null(tc);
    assert_null(st_file_find(&f, "__metadata__"));
    assert_int_equal(ta->dtype, EMILE_DTYPE_F16);
    assert_int_equal(ta->ndim, 2);
    assert_int_equal(ta->shape[1], 2);
    float out[4];
    assert_int_equal(st_tensor_to_f32(ta, 0, 4, out), 0);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f && out[3] == 65504.0f);
    assert_int_equal(st_tensor_to_f32(tb, 1, 2, out), 0);
    assert_true(out[0] == -0.25f && out[1] == 7.0f);
    assert_int_equal(st_tensor_to_f32(tc, 0, 1, out), 0);
    assert_true(out[0] == 2.0f);
    assert_int_equal(st_tensor_to_f32(tb, 2, 2, out), -1);     /* past the end */
    st_file_close(&f);
}

/* Each malformed file is refused with a message naming the problem. */
static void test_malformed(void **st)
{
    (void)st;
    struct { const char *header; uint64_t hlen; size_t nbytes; const char *expect; } cases[] = {
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 1u << 30, 8,
          "header length" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 0, 8,
          "not a JSON object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8,
          "outside the" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8,
          "12 bytes expected" },
        { "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
          "unsupported dtype 'Q4'" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 8, "data_offsets" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8,
          "bad shape" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 0, 8,
          "outside the" },
    };
    float data[4] = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_st("bad.safetensors", cases[i].header, cases[i].hlen, data,
                                    cases[i].nbytes);
        st_file_t f;
        char err[256] = "";
        assert_int_equal(st_file_open(&f, path, err, sizeof err), -1);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].expect);
        assert_non_null(strstr(err, "bad.safetensors"));
    }
    st_file_t f;
    char err[256] = "";
    assert_int_equal(st_file_open(&f, "/nonexistent/x.safetensors", err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
    st_checkpoint_t ck;
    assert_int_equal(st_checkpoint_open(&ck, tmpdir, err, sizeof err), -1);
    assert_non_null(strstr(err, "model.safetensors"));
}

static const char *write_text(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#define BASE "\"num_hidden_layers\":2,\"hidden_size\":64,\"num_attention_heads\":4," \
             "\"intermediate_size\":128,\"vocab_size\":512"

static void test_config_parse(void **st)
{
    (void)st;
    qwen3_config_t c;
    char err[256] = "";
    /* transformers 4.x / hub layout: theta at the top, no head_dim, no
     * num_key_value_heads (MHA), eos a list */
    const char *p = write_text("c1.json", "{\"model_type\":\"qwen3\"," BASE
                               ",\"rope_theta\":1000000,\"eos_token_id\":[151645,151643],"
                               "\"tie_word_embeddings\":true,\"rms_norm_eps\":1e-5}");
    assert_int_equal(qwen3_config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.eos_id, 151645);
    assert_true(c.rope_theta == 1e6 && c.rms_eps == 1e-5 && c.tie_embeddings == 1);
    /* absent tie_word_embeddings means untied, absent theta the default */
    p = write_text("c2.json", "{" BASE ",\"num_key_value_heads\":2}");
    assert_int_equal(qwen3_config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.tie_embeddings, 0);
    assert_true(c.rope_theta == 10000.0);

    struct { const char *json; const char *expect; } bad[] = {
        { "{" BASE ",\"attention_bias\":true}", "attention_bias" },
        { "{" BASE ",\"use_sliding_window\":true}", "use_sliding_window" },
        { "{" BASE ",\"hidden_act\":\"gelu\"}", "hidden_act" },
        { "{" BASE ",\"model_type\":\"llama\"}", "model_type" },
        { "{" BASE ",\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":1e6}}",
          "rope_type" },
        { "{" BASE ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}", "rope_type" },
        { "{" BASE ",\"num_key_value_heads\":3}", "not a multiple" },
        { "{\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":128,"
          "\"vocab_size\":512}", "missing \"hidden_size\"" },
        { "{" BASE ",\"head_dim\":\"x\"}", "\"head_dim\" is not an integer" },
        { "{" BASE ",\"head_dim\":15}", "odd" },
        { "{" BASE ",", "line" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_text("bad.json", bad[i].json);
        err[0] = '\0';
        assert_int_equal(qwen3_config_load(&c, p, err, sizeof err), -1);
        if (!strstr(err, bad[i].expect) || !strstr(err, "bad.json"))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].expect);
    }
}

static void test_named_shapes(void **st)
{
    (void)st;
    qwen3_config_t c;
    char err[128];
    assert_int_equal(qwen3_config_named(&c, "qwen3-4b"), 0);
    assert_int_equal(qwen3_config_check(&c, err, sizeof err), 0);
    assert_int_equal(c.n_layers, 36);
    assert_int_equal(c.n_heads / c.n_kv_heads, 4);
    /* the published parameter counts of Qwen3-4B and Qwen3-0.6B */
    assert_true(qwen3_config_params(&c) == 4022468096LL);
    assert_int_equal(qwen3_config_named(&c, "qwen3-0.6b"), 0);
    assert_true(qwen3_config_params(&c) == 596049920LL);
    assert_int_equal(c.hidden, 1024);
    assert_true(c.rope_theta == 1e6 && c.rms_eps == 1e-6 && c.tie_embeddings);
    assert_int_equal(qwen3_config_named(&c, "tiny"), 0);
    assert_int_equal(qwen3_config_check(&c, err, sizeof err), 0);
    assert_true(c.n_kv_heads < c.n_heads);
    assert_int_equal(qwen3_config_named(&c, "qwen3-7b"), -1);
}

static void test_random_weights(void **st)
{
    (void)st;
    /* pinned against an independent Python version of the formula in
     * qwen3.h, so numpy and the GPU can draw the same weights */
    uint64_t k = qwen3_random_key(42, "model.layers.1.mlp.up_proj.weight");
    assert_true(k == 0x7a7a9409ac0901a3ull);
    assert_true(qwen3_random_uniform(k, 0) == -0.7825279235839844f);
    assert_true(qwen3_random_uniform(k, 12345) == 0.35127413272857666f);

    qwen3_config_t c;
    assert_int_equal(qwen3_config_named(&c, "tiny"), 0);
    qwen3_weights_t a, b;
    char err[128];
    assert_int_equal(qwen3_weights_random(&a, &c, 42, err, sizeof err), 0);
    assert_int_equal(qwen3_weights_random(&b, &c, 43, err, sizeof err), 0);
    assert_true(a.arena_floats == (size_t)qwen3_config_params(&c));
    assert_true(a.lm_head == a.embed);
    assert_true(a.layers[1].w_up[0] == -0.027107562869787216f);
    assert_true(fabsf(a.final_norm[7] - 0.9410580396652222f) < 1e-7f);
    /* a different seed draws different weights; all within the bounds */
    size_t same = 0;
    double sum2 = 0;
    for (size_t i = 0; i < a.arena_floats; i++) {
        same += a.arena[i] == b.arena[i];
        if (!(fabsf(a.arena[i]) < 1.11f))
            fail_msg("weight %zu = %g out of bounds", i, a.arena[i]);
    }
    assert_true(same < a.arena_floats / 100);
    for (int i = 0; i < c.vocab * c.hidden; i++)
        sum2 += (double)a.embed[i] * a.embed[i];
    double std = sqrt(sum2 / (c.vocab * c.hidden));
    assert_true(std > 0.019 && std < 0.021);
    qwen3_weights_free(&a);
    qwen3_weights_free(&b);

    /* the random model runs and gives finite logits */
    qwen3_state_t s;
    assert_int_equal(qwen3_weights_random(&a, &c, 7, err, sizeof err), 0);
    assert_int_equal(qwen3_state_init(&s, &c, 16, 8, err, sizeof err), 0);
    int toks[3] = { 1, 200, 511 };
    assert_int_equal(qwen3_forward(&c, &a, &s, NULL, toks, 3, 0, 0, err, sizeof err), 0);
    for (int j = 0; j < c.vocab; j++)
        assert_true(isfinite(s.logits[j]));
    toks[0] = 512;
    assert_int_equal(qwen3_forward(&c, &a, &s, NULL, toks, 1, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside the vocabulary"));
    qwen3_state_free(&s);
    assert_int_equal(qwen3_state_init(&s, &c, 8, 16, err, sizeof err), -1);
    qwen3_weights_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_conversions),
        cmocka_unit_test(test_read_f16_f32_bf16),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_named_shapes),
        cmocka_unit_test(test_random_weights),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
