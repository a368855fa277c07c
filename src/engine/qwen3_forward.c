/*
 * qwen3_forward.c -- the plain C (fp32) Qwen3 forward pass, llama2.c style:
 * state, then the blocks (rmsnorm, matmul, rope, attention, swiglu), then
 * the forward pass reading top to bottom like the model.
 *
 * It processes a chunk of n tokens at once so that prefill hands the whole
 * prompt's q, k, v to the attention slot in the ABI's layout; decode is the
 * same code with n = 1.  OpenMP parallelises the matmuls when the build
 * enables it (-fopenmp); without it the pragmas vanish.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/qwen3.h"

#ifdef _OPENMP
#define OMP_FOR _Pragma("omp parallel for schedule(static)")
#else
#define OMP_FOR
#endif

// ----------------------------------------------------------------------------
// state

void qwen3_state_free(qwen3_state_t *s)
{
    if (!s)
        return;
    float *bufs[] = { s->x, s->xb, s->q, s->att, s->hb, s->hb2, s->scores, s->logits,
                      s->key_cache, s->value_cache, s->rope_cos, s->rope_sin };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    memset(s, 0, sizeof *s);
}

/* cos/sin tables as transformers computes them in float32: inv_freq[i] =
 * 1 / theta^(2i/d) rounded to float, angle = float(pos) * inv_freq[i]
 * rounded to float, then cos/sin of that float. */
static void rope_tables(qwen3_state_t *s, const qwen3_config_t *c)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float inv = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / c->head_dim));
        for (int p = 0; p < s->max_seq; p++) {
            float ang = (float)p * inv;
            s->rope_cos[(size_t)p * half + i] = (float)cos((double)ang);
            s->rope_sin[(size_t)p * half + i] = (float)sin((double)ang);
        }
    }
}

int qwen3_state_init(qwen3_state_t *s, const qwen3_config_t *c, int max_seq,
                     int max_chunk, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (max_seq <= 0 || max_chunk <= 0 || max_chunk > max_seq) {
        snprintf(err, errlen, "state: need 0 < max_chunk (%d) <= max_seq (%d)", max_chunk,
                 max_seq);
        return -1;
    }
    s->max_seq = max_seq;
    s->max_chunk = max_chunk;
    size_t T = (size_t)max_chunk, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t cache = (size_t)c->n_layers * max_seq * kvd;
    s->x = calloc(T * c->hidden, sizeof(float));
    s->xb = calloc(T * c->hidden, sizeof(float));
    s->q = calloc(T * qd, sizeof(float));
    s->att = calloc(T * qd, sizeof(float));
    s->hb = calloc(T * c->intermediate, sizeof(float));
    s->hb2 = calloc(T * c->intermediate, sizeof(float));
    s->scores = calloc((size_t)c->n_heads * max_seq, sizeof(float));
    s->logits = calloc(T * c->vocab, sizeof(float));
    s->key_cache = calloc(cache, sizeof(float));
    s->value_cache = calloc(cache, sizeof(float));
    s->rope_cos = calloc((size_t)max_seq * (c->head_dim / 2), sizeof(float));
    s->rope_sin = calloc((size_t)max_seq * (c->head_dim / 2), sizeof(float));
    if (!s->x || !s->xb || !s->q || !s->att || !s->hb || !s->hb2 || !s->scores ||
        !s->logits || !s->key_cache || !s->value_cache || !s->rope_cos || !s->rope_sin) {
        qwen3_state_free(s);
        snprintf(err, errlen, "state: out of memory (KV cache %.1f MB)",
                 2.0 * cache * 4 / 1e6);
        return -1;
    }
    rope_tables(s, c);
    return 0;
}

// ----------------------------------------------------------------------------
// blocks

/* o = x / rms(x) * w over size elements, accumulated in float as HF does. */
static void rmsnorm(float *o, const float *x, const float *w, int size, float eps)
{
    float ss = 0.0f;
    for (int j = 0; j < size; j++)
        ss += x[j] * x[j];
    float r = 1.0f / sqrtf(ss / (float)size + eps);
    for (int j = 0; j < size; j++)
        o[j] = w[j] * (x[j] * r);
}

/* out[t, o] = sum_i x[t, i] * W[o, i] for n rows: W is [d, m] (HF layout).
 * Output features outermost so each weight row is read once per chunk. */
static void matmul(float *out, const float *x, const float *W, int n, int m, int d)
{
    OMP_FOR
    for (int o = 0; o < d; o++) {
        const float *wr = W + (size_t)o * m;
        for (int t = 0; t < n; t++) {
            const float *xr = x + (size_t)t * m;
            float acc = 0.0f;
            for (int i = 0; i < m; i++)
                acc += wr[i] * xr[i];
            out[(size_t)t * d + o] = acc;
        }
    }
}

/* RoPE with Hugging Face's rotate_half pairing: element i turns with
 * element i + d/2 (not with its neighbour, as in the original paper). */
static void rope(float *v, int head_dim, const float *cos_p, const float *sin_p)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * cos_p[i] - b * sin_p[i];
        v[i + half] = b * cos_p[i] + a * sin_p[i];
    }
}

/* Decode attention over the cache: query t of the chunk sits at position
 * pos + t and sees positions 0..pos+t of its KV head. */
static void attention_cached(const qwen3_config_t *c, qwen3_state_t *s, const float *kc,
                             const float *vc, int n, int pos)
{
    int D = c->head_dim, kvd = c->n_kv_heads * D, group = c->n_heads / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)D);
    OMP_FOR
    for (int h = 0; h < c->n_heads; h++) {
        float *sc = s->scores + (size_t)h * s->max_seq;
        for (int t = 0; t < n; t++) {
            const float *q = s->q + ((size_t)t * c->n_heads + h) * D;
            float *o = s->att + ((size_t)t * c->n_heads + h) * D;
            int last = pos + t;
            float mx = -INFINITY;
            for (int j = 0; j <= last; j++) {
                const float *k = kc + (size_t)j * kvd + (size_t)(h / group) * D;
                float dot = 0.0f;
                for (int d = 0; d < D; d++)
                    dot += q[d] * k[d];
                sc[j] = dot * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            float sum = 0.0f;
            for (int j = 0; j <= last; j++) {
                sc[j] = expf(sc[j] - mx);
                sum += sc[j];
            }
            memset(o, 0, (size_t)D * sizeof *o);
            for (int j = 0; j <= last; j++) {
                const float *v = vc + (size_t)j * kvd + (size_t)(h / group) * D;
                float p = sc[j] / sum;
                for (int d = 0; d < D; d++)
                    o[d] += p * v[d];
            }
        }
    }
}

static float silu(float x)
{
    return x / (1.0f + expf(-x));
}

// ----------------------------------------------------------------------------
// forward

int qwen3_forward(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                  attn_slot_t *slot, const int *tokens, int n, int pos, int all_logits,
                  char *err, size_t errlen)
{
    if (n < 1 || n > s->max_chunk || pos < 0 || pos + n > s->max_seq) {
        snprintf(err, errlen, "forward: %d tokens at position %d do not fit (chunk %d, "
                 "context %d)", n, pos, s->max_chunk, s->max_seq);
        return -1;
    }
    int H = c->hidden, D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D;
    int half = D / 2;
    float eps = (float)c->rms_eps;

    // token embeddings
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab) {
            snprintf(err, errlen, "forward: token %d outside the vocabulary (%d)",
                     tokens[t], c->vocab);
            return -1;
        }
        memcpy(s->x + (size_t)t * H, w->embed + (size_t)tokens[t] * H, H * sizeof(float));
    }

    for (int l = 0; l < c->n_layers; l++) {
        const qwen3_layer_t *L = &w->layers[l];
        size_t loff = (size_t)l * s->max_seq * kvd;
        float *kc = s->key_cache + loff, *vc = s->value_cache + loff;
        float *k = kc + (size_t)pos * kvd, *v = vc + (size_t)pos * kvd;

        // attention: norm, projections straight into the cache
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * H, s->x + (size_t)t * H, L->attn_norm, H, eps);
        matmul(s->q, s->xb, L->wq, n, H, qd);
        matmul(k, s->xb, L->wk, n, H, kvd);
        matmul(v, s->xb, L->wv, n, H, kvd);

        // Qwen3: RMSNorm per head on q and k, then RoPE
        for (int t = 0; t < n; t++) {
            const float *cs = s->rope_cos + (size_t)(pos + t) * half;
            const float *sn = s->rope_sin + (size_t)(pos + t) * half;
            for (int h = 0; h < c->n_heads; h++) {
                float *qh = s->q + (size_t)t * qd + (size_t)h * D;
                rmsnorm(qh, qh, L->q_norm, D, eps);
                rope(qh, D, cs, sn);
            }
            for (int h = 0; h < c->n_kv_heads; h++) {
                float *kh = k + (size_t)t * kvd + (size_t)h * D;
                rmsnorm(kh, kh, L->k_norm, D, eps);
                rope(kh, D, cs, sn);
            }
        }

        // prefill through the slot, decode through the engine's own kernel
        if (pos == 0) {
            attn_slot_t builtin;
            attn_slot_t *sl = slot;
            if (!sl) {
                attn_slot_init_builtin(&builtin);
                sl = &builtin;
            }
            int krc = attn_slot_run(sl, s->q, kc, vc, s->att, n, c->n_heads, c->n_kv_heads,
                                    D, kvd);
            if (krc != 0) {
                snprintf(err, errlen, "forward: attention kernel %s returned %d in layer %d",
                         sl->label, krc, l);
                return -1;
            }
        } else {
            attention_cached(c, s, kc, vc, n, pos);
        }

        // output projection and residual
        matmul(s->xb, s->att, L->wo, n, qd, H);
        for (size_t i = 0; i < (size_t)n * H; i++)
            s->x[i] += s->xb[i];

        // SwiGLU MLP and residual
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * H, s->x + (size_t)t * H, L->mlp_norm, H, eps);
        matmul(s->hb, s->xb, L->w_gate, n, H, c->intermediate);
        matmul(s->hb2, s->xb, L->w_up, n, H, c->intermediate);
        for (size_t i = 0; i < (size_t)n * c->intermediate; i++)
            s->hb[i] = silu(s->hb[i]) * s->hb2[i];
        matmul(s->xb, s->hb, L->w_down, n, c->intermediate, H);
        for (size_t i = 0; i < (size_t)n * H; i++)
            s->x[i] += s->xb[i];
    }

    // final norm and lm_head (tied to the embeddings when the config says so)
    int first = all_logits ? 0 : n - 1, rows = n - first;
    for (int t = first; t < n; t++)
        rmsnorm(s->xb + (size_t)(t - first) * H, s->x + (size_t)t * H, w->final_norm, H, eps);
    matmul(s->logits, s->xb, w->lm_head, rows, H, c->vocab);
    return 0;
}
