/*
 * tokenizer.h -- byte-level BPE from a Hugging Face tokenizer.json (the
 * GPT-2 / Qwen family), in C.
 *
 * Encoding follows the tokenizers library step by step: added tokens
 * (<|im_start|>, <|im_end|>, <think> ...) are cut out of the raw text
 * first; each remaining segment is normalised (NFC when the file says so),
 * split by the pre-tokenizer's regex (PCRE2 with Unicode properties), each
 * piece's bytes are mapped to the byte-level alphabet and merged by BPE
 * rank.  Decoding maps tokens back to bytes (added tokens to their text).
 *
 * Supported: model BPE without dropout, unknown token or byte fallback;
 * normalizer null or NFC; pre_tokenizer ByteLevel, or a Sequence of Split
 * (regex, behaviour Isolated) and ByteLevel.  Anything else is refused at
 * load time with a message naming it.
 */
#ifndef EMILE_ENGINE_TOKENIZER_H
#define EMILE_ENGINE_TOKENIZER_H

#include <stddef.h>

typedef struct tokenizer tokenizer_t;

/*
 * Load tokenizer.json from path.  Returns 0 and *out, or -1 with a message
 * naming the file and the unsupported or malformed part in err.
 */
int tokenizer_load(tokenizer_t **out, const char *path, char *err, size_t errlen);
void tokenizer_free(tokenizer_t *t);

/* One more than the largest token id (vocabulary and added tokens). */
int tokenizer_n_tokens(const tokenizer_t *t);

/* The id of a token given as text ("<|im_end|>", or a vocabulary entry in
 * the byte-level alphabet), or -1. */
int tokenizer_token_id(const tokenizer_t *t, const char *text);

/*
 * Encode len bytes of text (any bytes; invalid UTF-8 is not normalised
 * and still round-trips).  No special tokens are added: a chat template
 * writes them into the text.  On success returns the number of ids and
 * sets *ids (malloc'd, caller frees; NULL when the text is empty); -1 with
 * err on failure.
 */
int tokenizer_encode(const tokenizer_t *t, const char *text, size_t len, int **ids,
                     char *err, size_t errlen);

/*
 * The bytes of one token (added tokens give their text).  Returns a pointer
 * owned by t and sets *len, or NULL for an id outside the vocabulary.  A
 * token may end inside a UTF-8 character: stream the bytes, do not print
 * each token as a string.
 */
const char *tokenizer_token_bytes(const tokenizer_t *t, int id, size_t *len);

/* Concatenate the bytes of n tokens into a malloc'd, NUL-terminated string
 * (length in *len when not NULL); ids outside the vocabulary are skipped.
 * NULL only when out of memory. */
char *tokenizer_decode(const tokenizer_t *t, const int *ids, int n, size_t *len);

#endif /* EMILE_ENGINE_TOKENIZER_H */
