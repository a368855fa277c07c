/*
 * taste_prompt.h -- the Tasting Room's prompt as token ids: text through
 * the tokenizer (in the chat template when asked), a file of ids (so a
 * bench script can give transformers and the engine the identical
 * prompt), or ids drawn from the weight seed.
 */
#ifndef EMILE_ENGINE_TASTE_PROMPT_H
#define EMILE_ENGINE_TASTE_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"

typedef struct taste_prompt_src {
    const char *text;          /* prompt text (needs tok), or NULL */
    int chat;                  /* wrap text in the chat template */
    const char *ids_file;      /* whitespace-separated ids, or NULL */
    int n_synthetic;           /* otherwise: this many ids drawn from seed */
    uint64_t seed;
} taste_prompt_src_t;

/*
 * The ids into *ids (malloc'd); each is checked against vocab.  Returns
 * their count (>= 1), or TASTE_BAD_INPUT (taste_status.h) with err (no
 * tokenizer for a text, a file that cannot be read, a word that is not an
 * id, an id outside the vocabulary, no ids at all, text and file both
 * given), or -1 with err (out of memory, the tokenizer failed).
 */
int taste_prompt_ids(const taste_prompt_src_t *p, tokenizer_t *tok, int vocab, int **ids,
                     char *err, size_t errlen);

/* Parse whitespace-separated decimal ids from text (named name in errors),
 * each in [0, vocab).  Returns the count (>= 1) and *ids, or
 * TASTE_BAD_INPUT with err, or -1 when out of memory. */
int taste_parse_ids(const char *text, const char *name, int vocab, int **ids, char *err,
                    size_t errlen);

#endif /* EMILE_ENGINE_TASTE_PROMPT_H */
