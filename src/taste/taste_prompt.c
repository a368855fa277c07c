/*
 * taste_prompt.c -- the Tasting Room's prompt ids (see taste_prompt.h).
 */
#include "taste/taste_prompt.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "engine/qwen3.h"
#include "taste/taste_status.h"
#include "util/fs.h"

/* A prompt file holds at most this many bytes (a million ids is ~7 MB). */
#define IDS_FILE_MAX ((size_t)64 << 20)

int taste_parse_ids(const char *text, const char *name, int vocab, int **ids, char *err,
                    size_t errlen)
{
    size_t cap = 256;
    int n = 0, *v = malloc(cap * sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p = text;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long x = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : -1;
        int word_ok = x >= 0 && !errno && (!*end || isspace((unsigned char)*end));
        if (!word_ok || x >= vocab) {
            int len = 0;
            while (p[len] && !isspace((unsigned char)p[len]) && len < 24)
                len++;
            if (word_ok)
                snprintf(err, errlen, "%s: id %d, %ld, is outside the model's vocabulary "
                         "(0..%d)", name, n + 1, x, vocab - 1);
            else
                snprintf(err, errlen, "%s: id %d, '%.*s', is not a token id (a decimal "
                         "number from 0)", name, n + 1, len, p);
            free(v);
            return TASTE_BAD_INPUT;
        }
        if ((size_t)n == cap) {
            int *w = realloc(v, 2 * cap * sizeof *v);
            if (!w) {
                free(v);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            v = w;
            cap *= 2;
        }
        v[n++] = (int)x;
        p = end;
    }
    if (n == 0) {
        free(v);
        snprintf(err, errlen, "%s holds no token ids", name);
        return TASTE_BAD_INPUT;
    }
    *ids = v;
    return n;
}

/* text in the chat template (when asked) through the tokenizer */
static int text_ids(const taste_prompt_src_t *p, tokenizer_t *tok, int vocab, int **ids,
                    char *err, size_t errlen)
{
    if (!tok) {
        snprintf(err, errlen, "a text prompt needs a tokenizer (--tokenizer)");
        return TASTE_BAD_INPUT;
    }
    const char *pre = "<|im_start|>user\n", *post = "<|im_end|>\n<|im_start|>assistant\n";
    size_t n = strlen(p->text) + strlen(pre) + strlen(post) + 1;
    char *text = malloc(n);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(text, n, "%s%s%s", p->chat ? pre : "", p->text, p->chat ? post : "");
    int k = tokenizer_encode(tok, text, strlen(text), ids, err, errlen);
    free(text);
    for (int i = 0; i < k; i++)
        if ((*ids)[i] >= vocab) {
            snprintf(err, errlen, "token %d is outside the model's vocabulary (%d)", (*ids)[i],
                     vocab);
            free(*ids);
            return TASTE_BAD_INPUT;
        }
    if (k == 0) {
        free(*ids);
        snprintf(err, errlen, "the prompt encodes to no tokens");
    }
    return k > 0 ? k : k == 0 ? TASTE_BAD_INPUT : -1;
}

int taste_prompt_ids(const taste_prompt_src_t *p, tokenizer_t *tok, int vocab, int **ids,
                     char *err, size_t errlen)
{
    if (p->text && p->ids_file) {
        snprintf(err, errlen, "give the prompt as text (--prompt) or as ids (--prompt-ids), "
                 "not both");
        return TASTE_BAD_INPUT;
    }
    if (p->text)
        return text_ids(p, tok, vocab, ids, err, errlen);
    if (p->ids_file) {
        size_t len;
        char *text = fs_read_file(p->ids_file, IDS_FILE_MAX, &len);
        if (!text) {
            snprintf(err, errlen, "cannot read %s: %s", p->ids_file, strerror(errno));
            return TASTE_BAD_INPUT;
        }
        int n = len == strlen(text) ? taste_parse_ids(text, p->ids_file, vocab, ids, err, errlen)
                                    : TASTE_BAD_INPUT;
        if (len != strlen(text))
            snprintf(err, errlen, "%s: not a text file of token ids", p->ids_file);
        free(text);
        return n;
    }
    if (p->n_synthetic < 1) {
        snprintf(err, errlen, "need a prompt or a positive --prompt-tokens");
        return TASTE_BAD_INPUT;
    }
    *ids = malloc((size_t)p->n_synthetic * sizeof **ids);
    if (!*ids) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint64_t key = qwen3_random_key(p->seed, "prompt");
    for (int i = 0; i < p->n_synthetic; i++) {
        float u = qwen3_random_uniform(key, (uint64_t)i);          /* [-1, 1) */
        (*ids)[i] = (int)((u + 1.0f) * 0.5f * (float)(vocab - 1));
    }
    return p->n_synthetic;
}
