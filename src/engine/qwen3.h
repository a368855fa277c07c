/*
 * qwen3.h -- the Qwen3 model of the Tasting Room engine: configuration,
 * weights (from a Hugging Face checkpoint or drawn from a seed), and the
 * plain C forward pass (fp32) used by tests and by machines without a GPU.
 *
 * Layout follows llama2.c: qwen3_config_t (shapes), qwen3_weights_t (one
 * pointer per tensor, shape in a comment), qwen3_state_t (activations and
 * the KV cache).  Every matrix is stored as Hugging Face stores it,
 * [out_features, in_features], row-major.
 */
#ifndef EMILE_ENGINE_QWEN3_H
#define EMILE_ENGINE_QWEN3_H

#include <stddef.h>
#include <stdint.h>

/* sibling includes, so that nvcc (which gets no -Isrc) can include this too */
#include "attn_slot.h"
#include "safetensors.h"

typedef struct qwen3_config {
    int n_layers;          /* num_hidden_layers */
    int hidden;            /* hidden_size */
    int n_heads;           /* num_attention_heads (query heads) */
    int n_kv_heads;        /* num_key_value_heads */
    int head_dim;          /* head_dim */
    int intermediate;      /* intermediate_size (SwiGLU) */
    int vocab;             /* vocab_size */
    int max_pos;           /* max_position_embeddings */
    double rope_theta;     /* rope_theta, or rope_parameters.rope_theta */
    double rms_eps;        /* rms_norm_eps */
    int tie_embeddings;    /* tie_word_embeddings: lm_head = embed_tokens */
    int bos_id;            /* bos_token_id, -1 when absent */
    int eos_id;            /* eos_token_id (the first one), -1 when absent */
} qwen3_config_t;

/*
 * Fill *c from a Hugging Face config.json.  Only what the engine can run is
 * accepted: model_type qwen3 (or absent), hidden_act silu, no attention
 * bias, no sliding window, default RoPE; shapes must be positive and the
 * query heads a multiple of the KV heads.  Returns 0, or -1 with a message
 * naming the file and the key in err.
 */
int qwen3_config_load(qwen3_config_t *c, const char *path, char *err, size_t errlen);

/*
 * Fill *c with a named shape: "qwen3-4b", "qwen3-0.6b" or "tiny" (2 layers,
 * hidden 64, 4 query heads, 2 KV heads, head dim 16, intermediate 128,
 * vocab 512: small enough for sanitized tests).  Returns 0, or -1 for an
 * unknown name.
 */
int qwen3_config_named(qwen3_config_t *c, const char *name);

/* Check the invariants every loader relies on; 0 or -1 with err. */
int qwen3_config_check(const qwen3_config_t *c, char *err, size_t errlen);

/* Parameter count (embedding counted once when tied). */
int64_t qwen3_config_params(const qwen3_config_t *c);

typedef struct qwen3_layer {
    float *attn_norm;      /* [hidden] input_layernorm */
    float *wq;             /* [n_heads*head_dim, hidden] */
    float *wk;             /* [n_kv_heads*head_dim, hidden] */
    float *wv;             /* [n_kv_heads*head_dim, hidden] */
    float *q_norm;         /* [head_dim] per-head RMSNorm of q */
    float *k_norm;         /* [head_dim] per-head RMSNorm of k */
    float *wo;             /* [hidden, n_heads*head_dim] */
    float *mlp_norm;       /* [hidden] post_attention_layernorm */
    float *w_gate;         /* [intermediate, hidden] */
    float *w_up;           /* [intermediate, hidden] */
    float *w_down;         /* [hidden, intermediate] */
} qwen3_layer_t;

typedef struct qwen3_weights {
    float *embed;          /* [vocab, hidden] embed_tokens */
    qwen3_layer_t *layers; /* [n_layers] */
    float *final_norm;     /* [hidden] */
    float *lm_head;        /* [vocab, hidden]; == embed when tied */
    float *arena;          /* one allocation holding every tensor above */
    size_t arena_floats;
} qwen3_weights_t;

/* The Hugging Face name of each tensor, in the order the arena holds them.
 * Calls fn(user, name, dst, shape, ndim) for every tensor; stops at the
 * first non-zero return and returns it. */
typedef int (*qwen3_tensor_fn)(void *user, const char *name, float *dst,
                               const int64_t *shape, int ndim);
int qwen3_weights_foreach(const qwen3_config_t *c, qwen3_weights_t *w,
                          qwen3_tensor_fn fn, void *user);

/*
 * Allocate w for c and copy every tensor from checkpoint ck, converted to
 * fp32.  Shapes must match c exactly; lm_head.weight is required unless
 * tied.  Returns 0, or -1 with the first missing or mismatched tensor named
 * in err (w is then empty).
 */
int qwen3_weights_from_checkpoint(qwen3_weights_t *w, const qwen3_config_t *c,
                                  const st_checkpoint_t *ck, char *err, size_t errlen);

/*
 * Allocate w for c and draw every tensor from seed: element i of the tensor
 * named N is u(i) = 2 * (splitmix64(seed ^ fnv1a64(N) + i) >> 40) / 2^24 - 1,
 * uniform in [-1, 1); matrices get 0.02 * sqrt(3) * u (std 0.02, as Hugging
 * Face initialises), norms get 1 + 0.1 * u.  Counter-based so any device
 * and numpy can draw the same weights.  Returns 0, or -1 with err.
 */
int qwen3_weights_random(qwen3_weights_t *w, const qwen3_config_t *c, uint64_t seed,
                         char *err, size_t errlen);

/* The draw above, for one tensor (exposed for the CUDA path and tests). */
uint64_t qwen3_random_key(uint64_t seed, const char *name);
float qwen3_random_uniform(uint64_t key, uint64_t i);

void qwen3_weights_free(qwen3_weights_t *w);

/*
 * Load a checkpoint directory (config.json + safetensors) into *c and *w.
 * Returns 0, or -1 with err.
 */
int qwen3_load_dir(qwen3_config_t *c, qwen3_weights_t *w, const char *dir,
                   char *err, size_t errlen);

/* Activations and KV cache for up to max_seq positions, processed in chunks
 * of at most max_chunk tokens per forward call. */
typedef struct qwen3_state {
    int max_seq, max_chunk;
    float *x;              /* [max_chunk, hidden] residual stream */
    float *xb;             /* [max_chunk, hidden] normed input of a block */
    float *q;              /* [max_chunk, n_heads*head_dim] */
    float *att;            /* [max_chunk, n_heads*head_dim] attention output */
    float *hb;             /* [max_chunk, intermediate] gate, then SwiGLU */
    float *hb2;            /* [max_chunk, intermediate] up */
    float *scores;         /* [n_heads, max_seq] softmax scratch */
    float *logits;         /* [max_chunk, vocab] */
    float *key_cache;      /* [n_layers, max_seq, n_kv_heads*head_dim] */
    float *value_cache;    /* [n_layers, max_seq, n_kv_heads*head_dim] */
    float *rope;           /* [max_seq, head_dim/2, 2] (cos, sin) */
    int argmax;            /* the last decode step's pick by a loaded lm_head
                              kernel, -1 when none picked */
} qwen3_state_t;

/* Allocate s; 0, or -1 with err (s then empty). */
int qwen3_state_init(qwen3_state_t *s, const qwen3_config_t *c, int max_seq,
                     int max_chunk, char *err, size_t errlen);
void qwen3_state_free(qwen3_state_t *s);

/*
 * Run n tokens at positions pos..pos+n-1 (1 <= n <= max_chunk, pos+n <=
 * max_seq), appending their keys and values to the cache.  When pos is 0
 * the attention goes through slot (prefill: the hot-swappable kernel;
 * NULL means the engine's built-in one); otherwise through the engine's
 * own cached attention (decode).  Logits land in s->logits: for all n rows
 * when all_logits, else only for the last token (row 0).  Returns 0, or -1
 * with err (a kernel in the slot that failed, bad arguments).
 */
int qwen3_forward(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                  attn_slot_t *slot, const int *tokens, int n, int pos, int all_logits,
                  char *err, size_t errlen);

/*
 * qwen3_forward with a slot for every op (op_slot.h; NULL: the engine's
 * own): the prefill's attention through ops->slot[attention]; in a decode
 * step (n == 1, pos > 0) the decode ops through theirs (a loaded lm_head
 * kernel's pick in s->argmax, else -1).  With ops->prof, each op's time is
 * added to it (the clock around each section: cpu kernels finish their
 * work before they return).  A kernel's non-zero return fails the call,
 * naming the op, the kernel and the layer.
 */
int qwen3_forward_ops(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                      engine_ops_t *ops, const int *tokens, int n, int pos, int all_logits,
                      char *err, size_t errlen);

#endif /* EMILE_ENGINE_QWEN3_H */
