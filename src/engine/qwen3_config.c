/*
 * qwen3_config.c -- Qwen3 shapes: config.json parsing, named shapes, checks.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "engine/qwen3.h"

int qwen3_config_check(const qwen3_config_t *c, char *err, size_t errlen)
{
    struct { const char *name; int v; } dims[] = {
        { "num_hidden_layers", c->n_layers }, { "hidden_size", c->hidden },
        { "num_attention_heads", c->n_heads }, { "num_key_value_heads", c->n_kv_heads },
        { "head_dim", c->head_dim }, { "intermediate_size", c->intermediate },
        { "vocab_size", c->vocab }, { "max_position_embeddings", c->max_pos },
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v <= 0 || dims[i].v > (1 << 24)) {
            snprintf(err, errlen, "%s = %d is out of range", dims[i].name, dims[i].v);
            return -1;
        }
    if (c->n_heads % c->n_kv_heads != 0) {
        snprintf(err, errlen, "num_attention_heads %d is not a multiple of "
                 "num_key_value_heads %d", c->n_heads, c->n_kv_heads);
        return -1;
    }
    if (c->head_dim % 2 != 0) {
        snprintf(err, errlen, "head_dim %d is odd (RoPE rotates pairs)", c->head_dim);
        return -1;
    }
    if (!(c->rope_theta > 1.0) || !(c->rms_eps > 0.0) || !(c->rms_eps < 1.0)) {
        snprintf(err, errlen, "rope_theta %g or rms_norm_eps %g out of range",
                 c->rope_theta, c->rms_eps);
        return -1;
    }
    return 0;
}

int64_t qwen3_config_params(const qwen3_config_t *c)
{
    int64_t h = c->hidden, qd = (int64_t)c->n_heads * c->head_dim;
    int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t layer = 2 * h + qd * h + 2 * kvd * h + 2 * c->head_dim + h * qd +
                    3 * (int64_t)c->intermediate * h;
    int64_t emb = (int64_t)c->vocab * h;
    return emb * (c->tie_embeddings ? 1 : 2) + layer * c->n_layers + h;
}

int qwen3_config_named(qwen3_config_t *c, const char *name)
{
    memset(c, 0, sizeof *c);
    c->rope_theta = 1e6;
    c->rms_eps = 1e-6;
    c->tie_embeddings = 1;
    c->head_dim = 128;
    c->vocab = 151936;
    c->max_pos = 40960;
    c->bos_id = -1;
    c->eos_id = 151645;           /* <|im_end|>, what the chat models stop on */
    if (strcmp(name, "qwen3-4b") == 0) {
        c->n_layers = 36; c->hidden = 2560; c->n_heads = 32; c->n_kv_heads = 8;
        c->intermediate = 9728;
    } else if (strcmp(name, "qwen3-0.6b") == 0) {
        c->n_layers = 28; c->hidden = 1024; c->n_heads = 16; c->n_kv_heads = 8;
        c->intermediate = 3072;
    } else if (strcmp(name, "tiny") == 0) {
        c->n_layers = 2; c->hidden = 64; c->n_heads = 4; c->n_kv_heads = 2;
        c->head_dim = 16; c->intermediate = 128; c->vocab = 512; c->max_pos = 256;
        c->eos_id = -1;
    } else {
        return -1;
    }
    return 0;
}

/* Integer key: required ones must be present, optional ones keep *out. */
static int get_int(json_t *root, const char *key, int required, int *out,
                   const char *path, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        snprintf(err, errlen, "%s: missing \"%s\"", path, key);
        return -1;
    }
    if (json_is_array(v) && json_array_size(v) > 0)   /* eos_token_id: [a, b] */
        v = json_array_get(v, 0);
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "%s: \"%s\" is not an integer", path, key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < -1 || x > (1 << 30)) {
        snprintf(err, errlen, "%s: \"%s\" = %lld is out of range", path, key, (long long)x);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int get_num(json_t *root, const char *key, double *out)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

/* Refuse a feature the engine does not implement, naming it. */
static int refuse(const char *path, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: unsupported: %s", path, what);
    return -1;
}

/* rope_theta lives at the top level (transformers 4.x, the hub's Qwen3
 * configs) or in rope_parameters (transformers 5.x). */
static int parse_rope(json_t *root, qwen3_config_t *c, const char *path, char *err,
                      size_t errlen)
{
    json_t *rp = json_object_get(root, "rope_parameters");
    json_t *rs = json_object_get(root, "rope_scaling");
    json_t *src = json_is_object(rp) ? rp : json_is_object(rs) ? rs : NULL;
    if (src) {
        json_t *ty = json_object_get(src, "rope_type");
        if (!ty)
            ty = json_object_get(src, "type");
        if (json_is_string(ty) && strcmp(json_string_value(ty), "default") != 0)
            return refuse(path, "rope_type other than \"default\"", err, errlen);
        get_num(src, "rope_theta", &c->rope_theta);
    }
    get_num(root, "rope_theta", &c->rope_theta);
    return 0;
}

int qwen3_config_load(qwen3_config_t *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
        return -1;
    }
    int rc = 0;
    json_t *mt = json_object_get(root, "model_type");
    if (json_is_string(mt) && strcmp(json_string_value(mt), "qwen3") != 0)
        rc = refuse(path, "model_type is not \"qwen3\"", err, errlen);
    json_t *act = json_object_get(root, "hidden_act");
    if (rc == 0 && json_is_string(act) && strcmp(json_string_value(act), "silu") != 0)
        rc = refuse(path, "hidden_act other than silu", err, errlen);
    if (rc == 0 && json_is_true(json_object_get(root, "attention_bias")))
        rc = refuse(path, "attention_bias", err, errlen);
    if (rc == 0 && json_is_true(json_object_get(root, "use_sliding_window")))
        rc = refuse(path, "use_sliding_window", err, errlen);

    c->rope_theta = 10000.0;       /* transformers' Qwen3Config default */
    c->rms_eps = 1e-6;
    c->max_pos = 32768;
    c->bos_id = c->eos_id = -1;
    c->tie_embeddings = 0;
    if (rc == 0) rc = get_int(root, "num_hidden_layers", 1, &c->n_layers, path, err, errlen);
    if (rc == 0) rc = get_int(root, "hidden_size", 1, &c->hidden, path, err, errlen);
    if (rc == 0) rc = get_int(root, "num_attention_heads", 1, &c->n_heads, path, err, errlen);
    if (rc == 0) {
        c->n_kv_heads = c->n_heads;
        rc = get_int(root, "num_key_value_heads", 0, &c->n_kv_heads, path, err, errlen);
    }
    if (rc == 0) {
        c->head_dim = c->n_heads > 0 ? c->hidden / c->n_heads : 0;
        rc = get_int(root, "head_dim", 0, &c->head_dim, path, err, errlen);
    }
    if (rc == 0) rc = get_int(root, "intermediate_size", 1, &c->intermediate, path, err, errlen);
    if (rc == 0) rc = get_int(root, "vocab_size", 1, &c->vocab, path, err, errlen);
    if (rc == 0) rc = get_int(root, "max_position_embeddings", 0, &c->max_pos, path, err, errlen);
    if (rc == 0) rc = get_int(root, "bos_token_id", 0, &c->bos_id, path, err, errlen);
    if (rc == 0) rc = get_int(root, "eos_token_id", 0, &c->eos_id, path, err, errlen);
    if (rc == 0) rc = parse_rope(root, c, path, err, errlen);
    if (rc == 0) {
        get_num(root, "rms_norm_eps", &c->rms_eps);
        c->tie_embeddings = json_is_true(json_object_get(root, "tie_word_embeddings"));
    }
    json_decref(root);
    if (rc == 0 && qwen3_config_check(c, err, errlen) != 0) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s", err);
        snprintf(err, errlen, "%s: %s", path, inner);
        rc = -1;
    }
    return rc;
}
