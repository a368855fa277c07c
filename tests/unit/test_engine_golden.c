/*
 * test_engine_golden.c -- the CPU engine against logits from transformers.
 *
 * tests/data/qwen3-tiny holds a random Qwen3 (2 layers, hidden 64, 4 query
 * heads over 2 KV heads, head dim 16, RoPE theta 1e6, tied embeddings) that
 * transformers 5.17 saved as bf16 safetensors, and golden.bin, its float32
 * logits for 24 tokens (scripts/golden_qwen3.py).  Tolerance: every logit
 * within 1e-5 * max(1, max |golden logit|) (the logits reach about 55, so
 * about 5.5e-4 absolute; measured 1.7e-5: only the fp32 summation order differs).
 *
 * The same logits must come out of: prefill through the attention slot,
 * token-by-token decode through the KV cache, prefill then decode, the same
 * weights re-written as shards with an index, and an untied copy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emile.h"
#include "engine/qwen3.h"

#define DATA "tests/data/qwen3-tiny"
#define REL_TOL 1e-5

typedef struct golden {
    int n, vocab;
    int *tokens;
    float *logits;
} golden_t;

static int golden_read(golden_t *g, const char *path)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char magic[4];
    uint32_t hdr[3];
    int rc = -1;
    if (fread(magic, 1, 4, f) == 4 && memcmp(magic, "EMGL", 4) == 0 &&
        fread(hdr, 4, 3, f) == 3 && hdr[0] == 1 && hdr[1] > 0 && hdr[1] < 4096 &&
        hdr[2] > 0 && hdr[2] < (1u << 20)) {
        g->n = (int)hdr[1];
        g->vocab = (int)hdr[2];
        g->tokens = malloc((size_t)g->n * sizeof(int));
        g->logits = malloc((size_t)g->n * g->vocab * sizeof(float));
        if (g->tokens && g->logits &&
            fread(g->tokens, 4, (size_t)g->n, f) == (size_t)g->n &&
            fread(g->logits, 4, (size_t)g->n * g->vocab, f) == (size_t)g->n * g->vocab)
            rc = 0;
    }
    fclose(f);
    return rc;
}

static void golden_free(golden_t *g)
{
    free(g->tokens);
    free(g->logits);
}

static float golden_tol(const golden_t *g)
{
    float mx = 1.0f;
    for (size_t i = 0; i < (size_t)g->n * g->vocab; i++)
        if (fabsf(g->logits[i]) > mx)
            mx = fabsf(g->logits[i]);
    return (float)REL_TOL * mx;
}

/* Largest |got - golden| for position t. */
static float row_err(const golden_t *g, int t, const float *got)
{
    float e = 0.0f;
    for (int j = 0; j < g->vocab; j++) {
        float d = fabsf(got[j] - g->logits[(size_t)t * g->vocab + j]);
        if (!(d <= e))          /* NaN counts as an infinite error */
            e = isnan(d) ? INFINITY : d;
    }
    return e;
}

typedef struct model {
    qwen3_config_t c;
    qwen3_weights_t w;
    qwen3_state_t s;
} model_t;

static void model_load(model_t *m, const char *dir)
{
    char err[512] = "";
    int rc = qwen3_load_dir(&m->c, &m->w, dir, err, sizeof err);
    if (rc != 0)
        fail_msg("load %s: %s", dir, err);
    rc = qwen3_state_init(&m->s, &m->c, 64, 32, err, sizeof err);
    if (rc != 0)
        fail_msg("state: %s", err);
}

static void model_free(model_t *m)
{
    qwen3_state_free(&m->s);
    qwen3_weights_free(&m->w);
}

/* Prefill all golden tokens at once; every position must match. */
static void check_prefill(model_t *m, const golden_t *g, float tol)
{
    char err[512] = "";
    attn_slot_t slot;
    attn_slot_init_builtin(&slot);
    int rc = qwen3_forward(&m->c, &m->w, &m->s, &slot, g->tokens, g->n, 0, 1, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(slot.calls, m->c.n_layers);
    for (int t = 0; t < g->n; t++) {
        float e = row_err(g, t, m->s.logits + (size_t)t * g->vocab);
        if (!(e <= tol))
            fail_msg("prefill position %d: max error %g > %g", t, e, tol);
    }
}

static void test_config_from_transformers(void **st)
{
    (void)st;
    qwen3_config_t c;
    char err[512] = "";
    assert_int_equal(qwen3_config_load(&c, DATA "/config.json", err, sizeof err), 0);
    assert_int_equal(c.n_layers, 2);
    assert_int_equal(c.hidden, 64);
    assert_int_equal(c.n_heads, 4);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.intermediate, 128);
    assert_int_equal(c.vocab, 512);
    assert_int_equal(c.tie_embeddings, 1);
    assert_int_equal(c.eos_id, 2);
    /* transformers 5 writes theta under rope_parameters */
    assert_true(c.rope_theta == 1e6);
    assert_true(c.rms_eps == 1e-6);
}

static void test_golden_prefill(void **st)
{
    (void)st;
    golden_t g;
    assert_int_equal(golden_read(&g, DATA "/golden.bin"), 0);
    assert_int_equal(g.n, 24);
    model_t m;
    model_load(&m, DATA);
    assert_int_equal(g.vocab, m.c.vocab);
    float tol = golden_tol(&g);
    check_prefill(&m, &g, tol);
    /* The check can fail: one changed norm weight moves the logits. */
    m.w.final_norm[3] += 0.5f;
    char err[512];
    assert_int_equal(qwen3_forward(&m.c, &m.w, &m.s, NULL, g.tokens, g.n, 0, 1, err,
                                   sizeof err), 0);
    assert_true(row_err(&g, g.n - 1, m.s.logits + (size_t)(g.n - 1) * g.vocab) > tol);
    model_free(&m);
    golden_free(&g);
}

static void test_golden_decode(void **st)
{
    (void)st;
    golden_t g;
    assert_int_equal(golden_read(&g, DATA "/golden.bin"), 0);
    model_t m;
    model_load(&m, DATA);
    float tol = golden_tol(&g);
    char err[512] = "";
    /* one token at a time: position 0 through the slot, the rest through
     * the engine's cached attention */
    for (int t = 0; t < g.n; t++) {
        assert_int_equal(qwen3_forward(&m.c, &m.w, &m.s, NULL, &g.tokens[t], 1, t, 0, err,
                                       sizeof err), 0);
        float e = row_err(&g, t, m.s.logits);
        if (!(e <= tol))
            fail_msg("decode position %d: max error %g > %g", t, e, tol);
    }
    /* prefill 10, then decode chunks of 5 and 9 (all logits of the chunk) */
    assert_int_equal(qwen3_forward(&m.c, &m.w, &m.s, NULL, g.tokens, 10, 0, 0, err,
                                   sizeof err), 0);
    assert_true(row_err(&g, 9, m.s.logits) <= tol);
    assert_int_equal(qwen3_forward(&m.c, &m.w, &m.s, NULL, g.tokens + 10, 5, 10, 1, err,
                                   sizeof err), 0);
    for (int t = 0; t < 5; t++)
        assert_true(row_err(&g, 10 + t, m.s.logits + (size_t)t * g.vocab) <= tol);
    assert_int_equal(qwen3_forward(&m.c, &m.w, &m.s, NULL, g.tokens + 15, 9, 15, 0, err,
                                   sizeof err), 0);
    assert_true(row_err(&g, 23, m.s.logits) <= tol);
    /* beyond the context: an error, not a write past the cache */
    assert_int_equal(qwen3_forward(&m.c, &m.w, &m.s, NULL, g.tokens, 2, 63, 0, err,
                                   sizeof err), -1);
    assert_non_null(strstr(err, "do not fit"));
    model_free(&m);
    golden_free(&g);
}

/* ---- re-writing the checkpoint: shards, untied ------------------------ */

static const char *dtype_name(int dt)
{
    return dt == EMILE_DTYPE_BF16 ? "BF16" : dt == EMILE_DTYPE_F16 ? "F16" : "F32";
}

/* Write tensors [from, to) of src (plus extra, if any) as one file. */
static void write_file(const char *path, const st_file_t *src, int from, int to,
                       const st_tensor_t *extra)
{
    json_t *h = json_object();
    size_t off = 0;
    int n = to - from + (extra ? 1 : 0);
    for (int i = 0; i < n; i++) {
        const st_tensor_t *t = i < to - from ? &src->tensors[from + i] : extra;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        json_object_set_new(h, t->name, json_pack("{s:s, s:o, s:[I,I]}", "dtype",
                            dtype_name(t->dtype), "shape", shape, "data_offsets",
                            (json_int_t)off, (json_int_t)(off + t->nbytes)));
        off += t->nbytes;
    }
    char *hs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = strlen(hs);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(hl >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(hs, 1, hl, f), hl);
    for (int i = 0; i < n; i++) {
        const st_tensor_t *t = i < to - from ? &src->tensors[from + i] : extra;
        assert_int_equal(fwrite(t->data, 1, t->nbytes, f), t->nbytes);
    }
    fclose(f);
    free(hs);
}

static void copy_text(const char *from, const char *to, const char *find, const char *repl)
{
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char out[8400];
    char *p = find ? strstr(buf, find) : NULL;
    if (p)
        snprintf(out, sizeof out, "%.*s%s%s", (int)(p - buf), buf, repl, p + strlen(find));
    else
        snprintf(out, sizeof out, "%s", buf);
    assert_true(!find || p);
    f = fopen(to, "wb");
    assert_non_null(f);
    fputs(out, f);
    fclose(f);
}

static void rm_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_golden_sharded(void **st)
{
    (void)st;
    char dir[] = "/tmp/emile-shards-XXXXXX", err[512] = "", path[600];
    assert_non_null(mkdtemp(dir));
    st_file_t one;
    assert_int_equal(st_file_open(&one, DATA "/model.safetensors", err, sizeof err), 0);
    /* three shards and the index transformers would write */
    int cut[4] = { 0, one.n_tensors / 3, 2 * one.n_tensors / 3, one.n_tensors };
    json_t *wm = json_object();
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-00003.safetensors", s + 1);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        write_file(path, &one, cut[s], cut[s + 1], NULL);
        for (int i = cut[s]; i < cut[s + 1]; i++)
            json_object_set_new(wm, one.tensors[i].name, json_string(name));
    }
    json_t *idx = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 0, "weight_map", wm);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    assert_int_equal(json_dump_file(idx, path, 0), 0);
    json_decref(idx);
    snprintf(path, sizeof path, "%s/config.json", dir);
    copy_text(DATA "/config.json", path, NULL, NULL);

    golden_t g;
    assert_int_equal(golden_read(&g, DATA "/golden.bin"), 0);
    model_t m;
    model_load(&m, dir);
    check_prefill(&m, &g, golden_tol(&g));
    model_free(&m);

    /* an index naming a tensor its shard lacks is refused by name */
    json_t *bad = json_pack("{s:{s:s}}", "weight_map", "model.norm.weight",
                            "model-00001-of-00003.safetensors");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    assert_int_equal(json_dump_file(bad, path, 0), 0);
    json_decref(bad);
    st_checkpoint_t ck;
    assert_int_equal(st_checkpoint_open(&ck, dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "model.norm.weight"));

    st_file_close(&one);
    golden_free(&g);
    rm_dir(dir);
}

static void test_golden_untied(void **st)
{
    (void)st;
    char dir[] = "/tmp/emile-untied-XXXXXX", err[512] = "", path[600];
    assert_non_null(mkdtemp(dir));
    st_file_t one;
    assert_int_equal(st_file_open(&one, DATA "/model.safetensors", err, sizeof err), 0);
    const st_tensor_t *emb = st_file_find(&one, "model.embed_tokens.weight");
    assert_non_null(emb);
    st_tensor_t head = *emb;
    head.name = "lm_head.weight";
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_file(path, &one, 0, one.n_tensors, &head);
    snprintf(path, sizeof path, "%s/config.json", dir);
    copy_text(DATA "/config.json", path, "\"tie_word_embeddings\": true",
              "\"tie_word_embeddings\": false");

    golden_t g;
    assert_int_equal(golden_read(&g, DATA "/golden.bin"), 0);
    model_t m;
    model_load(&m, dir);
    assert_int_equal(m.c.tie_embeddings, 0);
    assert_true(m.w.lm_head != m.w.embed);
    check_prefill(&m, &g, golden_tol(&g));
    model_free(&m);

    /* untied but without lm_head.weight: refused, naming the tensor */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_file(path, &one, 0, one.n_tensors, NULL);
    qwen3_config_t c;
    qwen3_weights_t w;
    assert_int_equal(qwen3_load_dir(&c, &w, dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "lm_head.weight"));

    st_file_close(&one);
    golden_free(&g);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_from_transformers),
        cmocka_unit_test(test_golden_prefill),
        cmocka_unit_test(test_golden_decode),
        cmocka_unit_test(test_golden_sharded),
        cmocka_unit_test(test_golden_untied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
