/*
 * hashtab.h -- a 64-bit key to 64-bit value hash table (open addressing,
 * linear probing), for the tokenizer's vocabulary and merge ranks.  Keys
 * are taken as given: callers hash strings themselves (hashtab_str).
 */
#ifndef EMILE_ENGINE_HASHTAB_H
#define EMILE_ENGINE_HASHTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct hashtab {
    uint64_t *keys;
    uint64_t *vals;
    unsigned char *used;
    size_t cap;            /* a power of two, kept at most 1/2 full */
    size_t n;
} hashtab_t;

/* Room for about `expected` entries before growing.  0, or -1 (memory). */
int hashtab_init(hashtab_t *h, size_t expected);
void hashtab_free(hashtab_t *h);

/* Insert or overwrite.  0, or -1 when growing fails (table unchanged). */
int hashtab_put(hashtab_t *h, uint64_t key, uint64_t val);

/* 1 and *val when present, 0 when absent. */
int hashtab_get(const hashtab_t *h, uint64_t key, uint64_t *val);

/* FNV-1a 64 of len bytes, then a final mix so that nearby strings spread. */
uint64_t hashtab_str(const char *s, size_t len);

#endif /* EMILE_ENGINE_HASHTAB_H */
