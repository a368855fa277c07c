/*
 * taste.c -- the Tasting Room run: same model, same prompt, reference
 * attention then candidate kernel, side by side (see taste.h).
 */
#include "engine/taste.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/attn_slot.h"
#include "engine/qwen3.h"
#include "engine/tokenizer.h"

taste_opts_t taste_defaults(void)
{
    taste_opts_t o;
    memset(&o, 0, sizeof o);
    o.random_shape = "tiny";
    o.weight_seed = 1;
    o.chat = 1;
    o.prompt_tokens = 32;
    o.gen = engine_gen_defaults();
    o.gen.max_new = 64;
    return o;
}

void taste_report_free(taste_report_t *rep)
{
    for (int i = 0; i < 2; i++)
        free(rep->side[i].tokens);
    memset(rep, 0, sizeof *rep);
}

/* Put the kernel at path (a .so, or a .c compiled here) into slot. */
static int load_kernel(attn_slot_t *slot, const char *path, char *err, size_t errlen)
{
    size_t n = strlen(path);
    if (n < 2 || strcmp(path + n - 2, ".c") != 0)
        return attn_slot_load(slot, path, err, errlen);
    char dir[] = "/tmp/emile-taste-XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "mkdtemp failed");
        return -1;
    }
    const char *cc = getenv("CC") && getenv("CC")[0] ? getenv("CC") : "cc";
    const char *inc = getenv("EMILE_INCLUDE_DIR") ? getenv("EMILE_INCLUDE_DIR") : "include";
    char so[64], cmd[4096];
    snprintf(so, sizeof so, "%s/kernel.so", dir);
    snprintf(cmd, sizeof cmd, "%s -std=c11 -O3 -march=native -fopenmp -shared -fPIC -I'%s' "
             "'%s' -o '%s' -lm", cc, inc, path, so);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(err, errlen, "compiling %s failed (%s)", path, cmd);
        rc = -1;
    } else {
        rc = attn_slot_load(slot, so, err, errlen);
        snprintf(slot->label, sizeof slot->label, "%s", path);
    }
    unlink(so);        /* the mapping stays valid after the unlink */
    rmdir(dir);
    return rc;
}

/* The model: a checkpoint directory or random weights of a named shape. */
static int load_model(const taste_opts_t *o, qwen3_config_t *c, qwen3_weights_t *w,
                      char *err, size_t errlen)
{
    if (o->model_dir)
        return qwen3_load_dir(c, w, o->model_dir, err, errlen);
    if (!o->random_shape || qwen3_config_named(c, o->random_shape) != 0) {
        snprintf(err, errlen, "unknown shape '%s' (qwen3-4b, qwen3-0.6b, tiny)",
                 o->random_shape ? o->random_shape : "");
        return -1;
    }
    return qwen3_weights_random(w, c, o->weight_seed, err, errlen);
}

/* The prompt's ids: the text through the tokenizer (in the chat template
 * when asked), or prompt_tokens ids drawn from the weight seed. */
static int make_prompt(const taste_opts_t *o, const qwen3_config_t *c, tokenizer_t *tok,
                       int **ids, char *err, size_t errlen)
{
    if (o->prompt) {
        if (!tok) {
            snprintf(err, errlen, "a text prompt needs a tokenizer (--tokenizer)");
            return -1;
        }
        const char *pre = "<|im_start|>user\n", *post = "<|im_end|>\n<|im_start|>assistant\n";
        size_t n = strlen(o->prompt) + strlen(pre) + strlen(post) + 1;
        char *text = malloc(n);
        if (!text) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(text, n, "%s%s%s", o->chat ? pre : "", o->prompt, o->chat ? post : "");
        int k = tokenizer_encode(tok, text, strlen(text), ids, err, errlen);
        free(text);
        for (int i = 0; i < k; i++)
            if ((*ids)[i] >= c->vocab) {
                snprintf(err, errlen, "token %d is outside the model's vocabulary (%d)",
                         (*ids)[i], c->vocab);
                free(*ids);
                return -1;
            }
        if (k == 0)
            snprintf(err, errlen, "the prompt encodes to no tokens");
        return k > 0 ? k : -1;
    }
    if (o->prompt_tokens < 1) {
        snprintf(err, errlen, "need a prompt or a positive --prompt-tokens");
        return -1;
    }
    *ids = malloc((size_t)o->prompt_tokens * sizeof **ids);
    if (!*ids) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint64_t key = qwen3_random_key(o->weight_seed, "prompt");
    for (int i = 0; i < o->prompt_tokens; i++) {
        float u = qwen3_random_uniform(key, (uint64_t)i);          /* [-1, 1) */
        (*ids)[i] = (int)((u + 1.0f) * 0.5f * (float)(c->vocab - 1));
    }
    return o->prompt_tokens;
}

struct stream {
    tokenizer_t *tok;
    FILE *out;
};

static int stream_token(void *user, int token)
{
    struct stream *s = user;
    size_t n;
    const char *b = tokenizer_token_bytes(s->tok, token, &n);
    if (b) {
        fwrite(b, 1, n, s->out);
        fflush(s->out);
    }
    return 0;
}

static void print_table(FILE *out, const taste_report_t *r)
{
    const taste_side_t *a = &r->side[0], *b = &r->side[1];
    int two = r->n_sides == 2;
    fprintf(out, "%-22s %-28s %s\n", "", "reference", two ? "kernel" : "");
    fprintf(out, "%-22s %-28.28s %s\n", "attention", a->label, two ? b->label : "");
    fprintf(out, "%-22s %-28d %d\n", "prompt tokens", r->n_prompt, two ? r->n_prompt : 0);
    fprintf(out, "%-22s %-28.2f", "TTFT (ms)", a->stats.ttft_s * 1e3);
    if (two)
        fprintf(out, " %.2f (%.2fx)", b->stats.ttft_s * 1e3,
                b->stats.ttft_s > 0 ? a->stats.ttft_s / b->stats.ttft_s : 0.0);
    fprintf(out, "\n%-22s %-28.2f", "decode (tok/s)", a->stats.decode_tok_s);
    if (two)
        fprintf(out, " %.2f", b->stats.decode_tok_s);
    fprintf(out, "\n%-22s %-28d", "tokens generated", a->n);
    if (two)
        fprintf(out, " %d", b->n);
    fprintf(out, "\n");
    if (two) {
        if (r->agree)
            fprintf(out, "%-22s yes, all %d tokens\n", "same tokens", a->n);
        else
            fprintf(out, "%-22s no, first divergence at generated token %d\n", "same tokens",
                    r->first_divergence);
    }
}

static void print_json(FILE *out, const taste_report_t *r)
{
    json_t *sides = json_array();
    for (int i = 0; i < r->n_sides; i++) {
        const taste_side_t *s = &r->side[i];
        json_array_append_new(sides, json_pack("{s:s, s:s, s:f, s:f, s:i}", "role",
                              i == 0 ? "reference" : "kernel", "attention", s->label,
                              "ttft_ms", s->stats.ttft_s * 1e3, "decode_tok_s",
                              s->stats.decode_tok_s, "tokens", s->n));
    }
    json_t *j = json_pack("{s:i, s:o}", "prompt_tokens", r->n_prompt, "runs", sides);
    if (r->n_sides == 2) {
        json_object_set_new(j, "agree", json_boolean(r->agree));
        json_object_set_new(j, "first_divergence", json_integer(r->first_divergence));
    }
    char *s = json_dumps(j, JSON_COMPACT);
    fprintf(out, "%s\n", s ? s : "{}");
    free(s);
    json_decref(j);
}

/* One generation with slot; fills side. */
static int run_side(const taste_opts_t *o, const qwen3_config_t *c, const qwen3_weights_t *w,
                    attn_slot_t *slot, const int *prompt, int n_prompt, tokenizer_t *tok,
                    FILE *out, taste_side_t *side, char *err, size_t errlen)
{
    qwen3_state_t s;
    int ctx = o->context > 0 ? o->context : n_prompt + o->gen.max_new + 1;
    if (qwen3_state_init(&s, c, ctx, n_prompt, err, errlen) != 0)
        return -1;
    side->tokens = malloc(((size_t)o->gen.max_new + 1) * sizeof *side->tokens);
    if (!side->tokens) {
        qwen3_state_free(&s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(side->label, sizeof side->label, "%s", slot->label);
    struct stream st = { tok, out };
    int show = tok && !o->quiet && !o->json;
    if (show)
        fprintf(out, "--- %s\n", slot->label);
    int n = engine_generate(c, w, &s, slot, prompt, n_prompt, &o->gen, side->tokens,
                            show ? stream_token : NULL, &st, &side->stats, err, errlen);
    if (show)
        fprintf(out, "\n");
    qwen3_state_free(&s);
    if (n < 0)
        return -1;
    side->n = n;
    return 0;
}

int taste_run(const taste_opts_t *o, FILE *out, taste_report_t *rep, char *err,
              size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    qwen3_config_t c;
    qwen3_weights_t w;
    if (load_model(o, &c, &w, err, errlen) != 0)
        return -1;
    tokenizer_t *tok = NULL;
    char tpath[4096] = "";
    if (o->tokenizer)
        snprintf(tpath, sizeof tpath, "%s", o->tokenizer);
    else if (o->model_dir)
        snprintf(tpath, sizeof tpath, "%s/tokenizer.json", o->model_dir);
    int rc = 0;
    if (tpath[0] && (o->tokenizer || access(tpath, R_OK) == 0))
        rc = tokenizer_load(&tok, tpath, err, errlen);
    int *prompt = NULL, n_prompt = 0;
    if (rc == 0) {
        n_prompt = make_prompt(o, &c, tok, &prompt, err, errlen);
        rc = n_prompt > 0 ? 0 : -1;
    }
    rep->n_prompt = n_prompt;
    taste_opts_t oo = *o;          /* resolve the automatic stop token */
    if (oo.gen.stop_id == -2)
        oo.gen.stop_id = o->prompt && o->chat && tok ? tokenizer_token_id(tok, "<|im_end|>") : -1;
    o = &oo;
    const char *paths[2] = { o->reference, o->kernel };
    for (int i = 0; i < (o->kernel ? 2 : 1) && rc == 0; i++) {
        attn_slot_t slot;
        attn_slot_init_builtin(&slot);
        if (paths[i])
            rc = load_kernel(&slot, paths[i], err, errlen);
        if (rc == 0)
            rc = run_side(o, &c, &w, &slot, prompt, n_prompt, tok, out, &rep->side[i], err,
                          errlen);
        attn_slot_close(&slot);
        if (rc == 0)
            rep->n_sides = i + 1;
    }
    if (rc == 0 && rep->n_sides == 2) {
        const taste_side_t *a = &rep->side[0], *b = &rep->side[1];
        int k = 0;
        while (k < a->n && k < b->n && a->tokens[k] == b->tokens[k])
            k++;
        rep->agree = k == a->n && k == b->n;
        rep->first_divergence = rep->agree ? -1 : k;
    }
    if (rc == 0) {
        if (o->json)
            print_json(out, rep);
        else
            print_table(out, rep);
    }
    free(prompt);
    tokenizer_free(tok);
    qwen3_weights_free(&w);
    if (rc != 0)
        taste_report_free(rep);
    return rc;
}
