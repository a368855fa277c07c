/*
 * hashtab.c -- open-addressing u64 -> u64 table (see hashtab.h).
 */
#include "engine/hashtab.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t hashtab_str(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return mix(h);
}

static int alloc_table(hashtab_t *h, size_t cap)
{
    h->keys = malloc(cap * sizeof *h->keys);
    h->vals = malloc(cap * sizeof *h->vals);
    h->used = calloc(cap, 1);
    h->cap = cap;
    h->n = 0;
    if (!h->keys || !h->vals || !h->used) {
        hashtab_free(h);
        return -1;
    }
    return 0;
}

int hashtab_init(hashtab_t *h, size_t expected)
{
    memset(h, 0, sizeof *h);
    size_t cap = 16;
    while (cap < expected * 2)
        cap <<= 1;
    return alloc_table(h, cap);
}

void hashtab_free(hashtab_t *h)
{
    free(h->keys);
    free(h->vals);
    free(h->used);
    memset(h, 0, sizeof *h);
}

static size_t slot_of(const hashtab_t *h, uint64_t key)
{
    size_t i = (size_t)mix(key) & (h->cap - 1);
    while (h->used[i] && h->keys[i] != key)
        i = (i + 1) & (h->cap - 1);
    return i;
}

int hashtab_put(hashtab_t *h, uint64_t key, uint64_t val)
{
    if ((h->n + 1) * 2 > h->cap) {
        hashtab_t bigger;
        if (alloc_table(&bigger, h->cap * 2) != 0)
            return -1;
        for (size_t i = 0; i < h->cap; i++)
            if (h->used[i])
                hashtab_put(&bigger, h->keys[i], h->vals[i]);
        hashtab_free(h);
        *h = bigger;
    }
    size_t i = slot_of(h, key);
    if (!h->used[i]) {
        h->used[i] = 1;
        h->keys[i] = key;
        h->n++;
    }
    h->vals[i] = val;
    return 0;
}

int hashtab_get(const hashtab_t *h, uint64_t key, uint64_t *val)
{
    if (h->cap == 0)
        return 0;
    size_t i = slot_of(h, key);
    if (!h->used[i])
        return 0;
    *val = h->vals[i];
    return 1;
}
