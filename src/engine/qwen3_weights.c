/*
 * qwen3_weights.c -- fp32 weights for the CPU path: one arena, filled from a
 * safetensors checkpoint or drawn from a seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/qwen3.h"

/* Walk every tensor in arena order.  With w->arena NULL this only counts
 * (dst pointers are then offsets from NULL and never dereferenced). */
static int walk(const qwen3_config_t *c, qwen3_weights_t *w, qwen3_tensor_fn fn,
                void *user, size_t *total)
{
    int64_t h = c->hidden, qd = (int64_t)c->n_heads * c->head_dim;
    int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim, in = c->intermediate;
    size_t off = 0;
    int rc = 0;
    char name[128];
#define TENSOR(field, nm, d0, d1, nd) do { \
        int64_t shp[2] = { (d0), (d1) }; \
        float *p = w->arena ? w->arena + off : NULL; \
        (field) = p; \
        off += (size_t)((d0) * ((nd) == 2 ? (d1) : 1)); \
        if (fn && rc == 0) rc = fn(user, (nm), p, shp, (nd)); \
    } while (0)

    TENSOR(w->embed, "model.embed_tokens.weight", c->vocab, h, 2);
    for (int l = 0; l < c->n_layers; l++) {
        qwen3_layer_t dummy, *L = w->layers ? &w->layers[l] : &dummy;
        const char *pre = "model.layers";
#define LNAME(suffix) (snprintf(name, sizeof name, "%s.%d.%s", pre, l, suffix), name)
        TENSOR(L->attn_norm, LNAME("input_layernorm.weight"), h, 1, 1);
        TENSOR(L->wq, LNAME("self_attn.q_proj.weight"), qd, h, 2);
        TENSOR(L->wk, LNAME("self_attn.k_proj.weight"), kvd, h, 2);
        TENSOR(L->wv, LNAME("self_attn.v_proj.weight"), kvd, h, 2);
        TENSOR(L->q_norm, LNAME("self_attn.q_norm.weight"), c->head_dim, 1, 1);
        TENSOR(L->k_norm, LNAME("self_attn.k_norm.weight"), c->head_dim, 1, 1);
        TENSOR(L->wo, LNAME("self_attn.o_proj.weight"), h, qd, 2);
        TENSOR(L->mlp_norm, LNAME("post_attention_layernorm.weight"), h, 1, 1);
        TENSOR(L->w_gate, LNAME("mlp.gate_proj.weight"), in, h, 2);
        TENSOR(L->w_up, LNAME("mlp.up_proj.weight"), in, h, 2);
        TENSOR(L->w_down, LNAME("mlp.down_proj.weight"), h, in, 2);
#undef LNAME
    }
    TENSOR(w->final_norm, "model.norm.weight", h, 1, 1);
    if (c->tie_embeddings)
        w->lm_head = w->embed;
    else
        TENSOR(w->lm_head, "lm_head.weight", c->vocab, h, 2);
#undef TENSOR
    if (total)
        *total = off;
    return rc;
}

int qwen3_weights_foreach(const qwen3_config_t *c, qwen3_weights_t *w,
                          qwen3_tensor_fn fn, void *user)
{
    return walk(c, w, fn, user, NULL);
}

void qwen3_weights_free(qwen3_weights_t *w)
{
    if (!w)
        return;
    free(w->arena);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

/* Size the arena and point every field into it. */
static int alloc_weights(qwen3_weights_t *w, const qwen3_config_t *c, char *err,
                         size_t errlen)
{
    memset(w, 0, sizeof *w);
    if (qwen3_config_check(c, err, errlen) != 0)
        return -1;
    size_t n = 0;
    walk(c, w, NULL, NULL, &n);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    w->arena = malloc(n * sizeof(float));
    if (!w->layers || !w->arena) {
        snprintf(err, errlen, "out of memory for %zu weights (%.1f GB fp32)", n,
                 (double)n * 4 / 1e9);
        qwen3_weights_free(w);
        return -1;
    }
    w->arena_floats = n;
    walk(c, w, NULL, NULL, NULL);
    return 0;
}

struct copy_ctx {
    const st_checkpoint_t *ck;
    char *err;
    size_t errlen;
};

static int copy_one(void *user, const char *name, float *dst, const int64_t *shape, int nd)
{
    struct copy_ctx *x = user;
    const st_tensor_t *t = st_checkpoint_find(x->ck, name);
    if (!t) {
        snprintf(x->err, x->errlen, "checkpoint has no tensor %s", name);
        return -1;
    }
    int ok = t->ndim == nd;
    for (int d = 0; ok && d < nd; d++)
        ok = t->shape[d] == shape[d];
    if (!ok) {
        snprintf(x->err, x->errlen, "tensor %s: shape [%lld%s%lld] in the checkpoint, "
                 "[%lld%s%lld] from config.json", name, (long long)t->shape[0],
                 t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                 (long long)shape[0], nd > 1 ? ", " : "", nd > 1 ? (long long)shape[1] : 0LL);
        return -1;
    }
    if (st_tensor_to_f32(t, 0, t->numel, dst) != 0) {
        snprintf(x->err, x->errlen, "tensor %s: dtype the engine cannot read "
                 "(F32, F16 and BF16 only)", name);
        return -1;
    }
    return 0;
}

int qwen3_weights_from_checkpoint(qwen3_weights_t *w, const qwen3_config_t *c,
                                  const st_checkpoint_t *ck, char *err, size_t errlen)
{
    if (alloc_weights(w, c, err, errlen) != 0)
        return -1;
    struct copy_ctx x = { ck, err, errlen };
    if (walk(c, w, copy_one, &x, NULL) != 0) {
        qwen3_weights_free(w);
        return -1;
    }
    return 0;
}

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t qwen3_random_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;          /* FNV-1a 64 */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return seed ^ h;
}

float qwen3_random_uniform(uint64_t key, uint64_t i)
{
    uint64_t z = splitmix64(key + i);
    return (float)((double)(z >> 40) * (2.0 / 16777216.0) - 1.0);
}

struct rand_ctx {
    uint64_t seed;
};

static int draw_one(void *user, const char *name, float *dst, const int64_t *shape, int nd)
{
    const struct rand_ctx *x = user;
    uint64_t key = qwen3_random_key(x->seed, name);
    int64_t n = shape[0] * (nd == 2 ? shape[1] : 1);
    /* 0.02 * sqrt(3): a uniform of that half-width has std 0.02. */
    const float amp = 0.034641016f;
    for (int64_t i = 0; i < n; i++) {
        float u = qwen3_random_uniform(key, (uint64_t)i);
        dst[i] = nd == 2 ? amp * u : 1.0f + 0.1f * u;
    }
    return 0;
}

int qwen3_weights_random(qwen3_weights_t *w, const qwen3_config_t *c, uint64_t seed,
                         char *err, size_t errlen)
{
    if (alloc_weights(w, c, err, errlen) != 0)
        return -1;
    struct rand_ctx x = { seed };
    walk(c, w, draw_one, &x, NULL);
    return 0;
}

int qwen3_load_dir(qwen3_config_t *c, qwen3_weights_t *w, const char *dir, char *err,
                   size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (qwen3_config_load(c, path, err, errlen) != 0)
        return -1;
    st_checkpoint_t ck;
    if (st_checkpoint_open(&ck, dir, err, errlen) != 0)
        return -1;
    int rc = qwen3_weights_from_checkpoint(w, c, &ck, err, errlen);
    st_checkpoint_close(&ck);
    return rc;
}
