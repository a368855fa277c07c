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
#include "util/clock.h"

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
                      s->key_cache, s->value_cache, s->rope };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    memset(s, 0, sizeof *s);
}

/* The (cos, sin) table as transformers computes it in float32: inv_freq[i]
 * = 1 / theta^(2i/d) rounded to float, angle = float(pos) * inv_freq[i]
 * rounded to float, then cos/sin of that float. */
static void rope_tables(qwen3_state_t *s, const qwen3_config_t *c)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float inv = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / c->head_dim));
        for (int p = 0; p < s->max_seq; p++) {
            float ang = (float)p * inv;
            s->rope[((size_t)p * half + i) * 2] = (float)cos((double)ang);
            s->rope[((size_t)p * half + i) * 2 + 1] = (float)sin((double)ang);
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
    s->rope = calloc((size_t)max_seq * (c->head_dim / 2) * 2, sizeof(float));
    if (!s->x || !s->xb || !s->q || !s->att || !s->hb || !s->hb2 || !s->scores ||
        !s->logits || !s->key_cache || !s->value_cache || !s->rope) {
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
 * element i + d/2 (not with its neighbour, as in the original paper); cs
 * holds (cos, sin) pairs. */
static void rope(float *v, int head_dim, const float *cs)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half], c = cs[2 * i], sn = cs[2 * i + 1];
        v[i] = a * c - b * sn;
        v[i + half] = b * c + a * sn;
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
// one forward call, its op slots and its profile

typedef struct fwd {
    const qwen3_config_t *c;
    const qwen3_weights_t *w;
    qwen3_state_t *s;
    engine_ops_t *ops;
    int n, pos;
    int decode;                /* one token at a position > 0: the decode ops' slots */
    double mark;               /* profile: the clock at the end of the last section */
    char *err;
    size_t errlen;
} fwd_t;

/* Profile: the time since the last mark goes to row op. */
static void mark(fwd_t *f, int op)
{
    if (!f->ops || !f->ops->prof)
        return;
    double now = clock_mono_s();
    f->ops->prof->ms[f->decode][op] += (now - f->mark) * 1e3;
    f->mark = now;
}

/* The slot of op when it holds a loaded kernel that runs in this call. */
static op_slot_t *loaded(const fwd_t *f, int op)
{
    if (!f->ops || !f->ops->slot[op].handle)
        return NULL;
    if (op == ENGINE_OP_ATTENTION ? f->pos != 0 : !f->decode)
        return NULL;
    return &f->ops->slot[op];
}

/* Call the slot's kernel on host tensors; 0, or -1 with err. */
static int call(fwd_t *f, op_slot_t *sl, emile_tensor_t *t, int nt, const emile_param_t *p,
                int np, int layer)
{
    emile_args_t a = { .abi_version = EMILE_ABI_VERSION, .n_tensors = nt, .tensors = t,
                       .n_params = np, .params = p, .stream = NULL };
    sl->calls++;
    int rc = sl->fn(&a);
    if (rc != 0) {
        char where[48];
        if (layer < f->c->n_layers)
            snprintf(where, sizeof where, "in layer %d", layer);
        else
            snprintf(where, sizeof where, "after the last layer");
        snprintf(f->err, f->errlen, "forward: %s kernel %s returned %d %s",
                 engine_op_name(sl->op), sl->label, rc, where);
        return -1;
    }
    return 0;
}

#define SHAPE(...) ((const int64_t[]){ __VA_ARGS__ })

/* q into s->q, k and v into the cache rows at pos: projections, per-head
 * RMSNorm and RoPE of q and k. */
static int qkv(fwd_t *f, int l, float *k, float *v)
{
    const qwen3_config_t *c = f->c;
    const qwen3_layer_t *L = &f->w->layers[l];
    qwen3_state_t *s = f->s;
    int H = c->hidden, D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D;
    int half = D / 2, n = f->n;
    float eps = (float)c->rms_eps;
    op_slot_t *sl = loaded(f, ENGINE_OP_QKV_PROJ);
    if (sl) {
        /* the op's w stacks q, k and v: the arena holds them so */
        if (L->wk != L->wq + (size_t)qd * H || L->wv != L->wk + (size_t)kvd * H) {
            snprintf(f->err, f->errlen, "forward: q, k and v projections are not stacked");
            return -1;
        }
        int32_t pos = f->pos;
        emile_tensor_t t[9];
        engine_tensor(&t[0], "x", s->xb, EMILE_DTYPE_F32, 2, SHAPE(n, H));
        engine_tensor(&t[1], "w", L->wq, EMILE_DTYPE_F32, 2, SHAPE(qd + 2 * kvd, H));
        engine_tensor(&t[2], "q_norm", L->q_norm, EMILE_DTYPE_F32, 1, SHAPE(D));
        engine_tensor(&t[3], "k_norm", L->k_norm, EMILE_DTYPE_F32, 1, SHAPE(D));
        engine_tensor(&t[4], "rope", s->rope, EMILE_DTYPE_F32, 3, SHAPE(s->max_seq, half, 2));
        engine_tensor(&t[5], "pos", &pos, EMILE_DTYPE_I32, 1, SHAPE(1));
        engine_tensor(&t[6], "q", s->q, EMILE_DTYPE_F32, 3, SHAPE(n, c->n_heads, D));
        engine_tensor(&t[7], "k", k, EMILE_DTYPE_F32, 3, SHAPE(n, c->n_kv_heads, D));
        engine_tensor(&t[8], "v", v, EMILE_DTYPE_F32, 3, SHAPE(n, c->n_kv_heads, D));
        emile_param_t p[] = { { "n", n }, { "hidden", H }, { "q_heads", c->n_heads },
                              { "kv_heads", c->n_kv_heads }, { "head_dim", D },
                              { "rope_rows", s->max_seq }, { "eps", c->rms_eps } };
        return call(f, sl, t, 9, p, 7, l);
    }
    matmul(s->q, s->xb, L->wq, n, H, qd);
    matmul(k, s->xb, L->wk, n, H, kvd);
    matmul(v, s->xb, L->wv, n, H, kvd);
    /* Qwen3: RMSNorm per head on q and k, then RoPE */
    for (int t = 0; t < n; t++) {
        const float *cs = s->rope + (size_t)(f->pos + t) * half * 2;
        for (int h = 0; h < c->n_heads; h++) {
            float *qh = s->q + (size_t)t * qd + (size_t)h * D;
            rmsnorm(qh, qh, L->q_norm, D, eps);
            rope(qh, D, cs);
        }
        for (int h = 0; h < c->n_kv_heads; h++) {
            float *kh = k + (size_t)t * kvd + (size_t)h * D;
            rmsnorm(kh, kh, L->k_norm, D, eps);
            rope(kh, D, cs);
        }
    }
    return 0;
}

/* s->att from s->q over the layer's cache: prefill through the attention
 * slot, decode through the decode_attention slot or the engine's own. */
static int attention(fwd_t *f, int l, float *kc, float *vc)
{
    const qwen3_config_t *c = f->c;
    qwen3_state_t *s = f->s;
    int D = c->head_dim, kvd = c->n_kv_heads * D;
    if (f->pos == 0) {
        attn_slot_t builtin, *sl = f->ops ? &f->ops->slot[ENGINE_OP_ATTENTION] : NULL;
        if (!sl) {
            attn_slot_init_builtin(&builtin);
            sl = &builtin;
        }
        int krc = attn_slot_run(sl, s->q, kc, vc, s->att, f->n, c->n_heads, c->n_kv_heads, D,
                                kvd);
        if (krc != 0) {
            snprintf(f->err, f->errlen, "forward: attention kernel %s returned %d in layer %d",
                     sl->label, krc, l);
            return -1;
        }
        return 0;
    }
    op_slot_t *sl = loaded(f, ENGINE_OP_DECODE_ATTENTION);
    if (sl) {
        int32_t len = f->pos + 1;
        emile_tensor_t t[5];
        engine_tensor(&t[0], "q", s->q, EMILE_DTYPE_F32, 2, SHAPE(c->n_heads, D));
        engine_tensor(&t[1], "k", kc, EMILE_DTYPE_F32, 3, SHAPE(s->max_seq, c->n_kv_heads, D));
        engine_tensor(&t[2], "v", vc, EMILE_DTYPE_F32, 3, SHAPE(s->max_seq, c->n_kv_heads, D));
        engine_tensor(&t[3], "kv_len", &len, EMILE_DTYPE_I32, 1, SHAPE(1));
        engine_tensor(&t[4], "o", s->att, EMILE_DTYPE_F32, 2, SHAPE(c->n_heads, D));
        emile_param_t p[] = { { "q_heads", c->n_heads }, { "kv_heads", c->n_kv_heads },
                              { "head_dim", D }, { "seq", s->max_seq } };
        return call(f, sl, t, 5, p, 4, l);
    }
    attention_cached(c, s, kc, vc, f->n, f->pos);
    return 0;
}

/* y [n, rows] = x [n, cols] W^T through op's slot (o_proj, down_proj: param
 * names kdim for cols) or the engine's matmul. */
static int projection(fwd_t *f, int op, int l, float *y, const float *x, const float *W,
                      int cols, int rows, const char *kdim)
{
    op_slot_t *sl = loaded(f, op);
    if (!sl) {
        matmul(y, x, W, f->n, cols, rows);
        return 0;
    }
    emile_tensor_t t[3];
    engine_tensor(&t[0], "x", (void *)x, EMILE_DTYPE_F32, 2, SHAPE(f->n, cols));
    engine_tensor(&t[1], "w", (void *)W, EMILE_DTYPE_F32, 2, SHAPE(rows, cols));
    engine_tensor(&t[2], "y", y, EMILE_DTYPE_F32, 2, SHAPE(f->n, rows));
    emile_param_t p[] = { { "n", f->n }, { "hidden", rows }, { kdim, cols } };
    return call(f, sl, t, 3, p, 3, l);
}

/* s->hb = silu(xb Wg^T) * (xb Wu^T). */
static int gate_up(fwd_t *f, int l)
{
    const qwen3_config_t *c = f->c;
    const qwen3_layer_t *L = &f->w->layers[l];
    qwen3_state_t *s = f->s;
    int H = c->hidden, I = c->intermediate;
    op_slot_t *sl = loaded(f, ENGINE_OP_GATE_UP);
    if (sl) {
        if (L->w_up != L->w_gate + (size_t)I * H) {
            snprintf(f->err, f->errlen, "forward: gate and up projections are not stacked");
            return -1;
        }
        emile_tensor_t t[3];
        engine_tensor(&t[0], "x", s->xb, EMILE_DTYPE_F32, 2, SHAPE(f->n, H));
        engine_tensor(&t[1], "w", L->w_gate, EMILE_DTYPE_F32, 2, SHAPE(2 * I, H));
        engine_tensor(&t[2], "h", s->hb, EMILE_DTYPE_F32, 2, SHAPE(f->n, I));
        emile_param_t p[] = { { "n", f->n }, { "hidden", H }, { "inter", I } };
        return call(f, sl, t, 3, p, 3, l);
    }
    matmul(s->hb, s->xb, L->w_gate, f->n, H, I);
    matmul(s->hb2, s->xb, L->w_up, f->n, H, I);
    for (size_t i = 0; i < (size_t)f->n * I; i++)
        s->hb[i] = silu(s->hb[i]) * s->hb2[i];
    return 0;
}

/* Logits of rows rows of s->xb; in a decode step with a loaded lm_head
 * kernel, its argmax too (s->argmax). */
static int lm_head(fwd_t *f, int rows)
{
    const qwen3_config_t *c = f->c;
    qwen3_state_t *s = f->s;
    op_slot_t *sl = loaded(f, ENGINE_OP_LM_HEAD);
    if (!sl) {
        matmul(s->logits, s->xb, f->w->lm_head, rows, c->hidden, c->vocab);
        return 0;
    }
    int32_t idx = -1;
    emile_tensor_t t[4];
    engine_tensor(&t[0], "x", s->xb, EMILE_DTYPE_F32, 2, SHAPE(rows, c->hidden));
    engine_tensor(&t[1], "w", f->w->lm_head, EMILE_DTYPE_F32, 2, SHAPE(c->vocab, c->hidden));
    engine_tensor(&t[2], "logits", s->logits, EMILE_DTYPE_F32, 2, SHAPE(rows, c->vocab));
    engine_tensor(&t[3], "idx", &idx, EMILE_DTYPE_I32, 1, SHAPE(rows));
    emile_param_t p[] = { { "n", rows }, { "hidden", c->hidden }, { "vocab", c->vocab } };
    if (call(f, sl, t, 4, p, 3, c->n_layers) != 0)
        return -1;
    if (idx < 0 || idx >= c->vocab) {
        snprintf(f->err, f->errlen, "forward: lm_head kernel %s picked token %d (vocabulary %d)",
                 sl->label, idx, c->vocab);
        return -1;
    }
    s->argmax = idx;
    return 0;
}

int qwen3_forward_ops(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                      engine_ops_t *ops, const int *tokens, int n, int pos, int all_logits,
                      char *err, size_t errlen)
{
    if (n < 1 || n > s->max_chunk || pos < 0 || pos + n > s->max_seq) {
        snprintf(err, errlen, "forward: %d tokens at position %d do not fit (chunk %d, "
                 "context %d)", n, pos, s->max_chunk, s->max_seq);
        return -1;
    }
    fwd_t f = { .c = c, .w = w, .s = s, .ops = ops, .n = n, .pos = pos,
                .decode = n == 1 && pos > 0, .err = err, .errlen = errlen };
    double t0 = clock_mono_s();
    f.mark = t0;
    int H = c->hidden, D = c->head_dim, kvd = c->n_kv_heads * D;
    float eps = (float)c->rms_eps;
    s->argmax = -1;

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

        // attention: norm, projections (k and v straight into the cache), attention
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * H, s->x + (size_t)t * H, L->attn_norm, H, eps);
        mark(&f, ENGINE_PROF_OTHER);
        if (qkv(&f, l, kc + (size_t)pos * kvd, vc + (size_t)pos * kvd) != 0)
            return -1;
        mark(&f, ENGINE_OP_QKV_PROJ);
        if (attention(&f, l, kc, vc) != 0)
            return -1;
        mark(&f, f.decode ? ENGINE_OP_DECODE_ATTENTION : ENGINE_OP_ATTENTION);

        // output projection and residual
        if (projection(&f, ENGINE_OP_O_PROJ, l, s->xb, s->att, L->wo, c->n_heads * D, H,
                       "q_dim") != 0)
            return -1;
        mark(&f, ENGINE_OP_O_PROJ);
        for (size_t i = 0; i < (size_t)n * H; i++)
            s->x[i] += s->xb[i];

        // SwiGLU MLP and residual
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * H, s->x + (size_t)t * H, L->mlp_norm, H, eps);
        mark(&f, ENGINE_PROF_OTHER);
        if (gate_up(&f, l) != 0)
            return -1;
        mark(&f, ENGINE_OP_GATE_UP);
        if (projection(&f, ENGINE_OP_DOWN_PROJ, l, s->xb, s->hb, L->w_down, c->intermediate, H,
                       "inter") != 0)
            return -1;
        mark(&f, ENGINE_OP_DOWN_PROJ);
        for (size_t i = 0; i < (size_t)n * H; i++)
            s->x[i] += s->xb[i];
    }

    // final norm and lm_head (tied to the embeddings when the config says so)
    int first = all_logits ? 0 : n - 1, rows = n - first;
    for (int t = first; t < n; t++)
        rmsnorm(s->xb + (size_t)(t - first) * H, s->x + (size_t)t * H, w->final_norm, H, eps);
    mark(&f, ENGINE_PROF_OTHER);
    if (lm_head(&f, rows) != 0)
        return -1;
    mark(&f, ENGINE_OP_LM_HEAD);
    if (ops && ops->prof) {
        engine_profile_t *p = ops->prof;
        p->step_ms[f.decode] += (clock_mono_s() - t0) * 1e3;
        p->calls[f.decode]++;
        if (f.decode)
            p->kv_len_sum += pos + 1;
        else
            p->prefill_tokens = n;
    }
    return 0;
}

int qwen3_forward(const qwen3_config_t *c, const qwen3_weights_t *w, qwen3_state_t *s,
                  attn_slot_t *slot, const int *tokens, int n, int pos, int all_logits,
                  char *err, size_t errlen)
{
    engine_ops_t ops;
    engine_ops_init(&ops);
    if (slot)
        ops.slot[ENGINE_OP_ATTENTION] = *slot;
    int rc = qwen3_forward_ops(c, w, s, &ops, tokens, n, pos, all_logits, err, errlen);
    if (slot)
        slot->calls = ops.slot[ENGINE_OP_ATTENTION].calls;
    return rc;
}
