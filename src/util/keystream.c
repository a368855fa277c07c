/* keystream.c -- see keystream.h. */
#include "keystream.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define KEYSTREAM_G0 0x9E3779B97F4A7C15ull
#define KEYSTREAM_G1 0xD1B54A32D192ED03ull

uint64_t keystream_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t keystream_word(keystream_key_t key, uint64_t word)
{
    if (!key.k0 && !key.k1)
        return 0;
    return keystream_mix(key.k0 + word * KEYSTREAM_G0) ^ keystream_mix(key.k1 ^ (word * KEYSTREAM_G1));
}

void keystream_words(size_t off, size_t bytes, size_t *first, size_t *count)
{
    size_t a = (off + 7) / 8, b = (off + bytes) / 8;
    *first = a;
    *count = b > a ? b - a : 0;
}

void keystream_xor(uint8_t *base, size_t off, size_t bytes, keystream_key_t key)
{
    size_t first, count;
    keystream_words(off, bytes, &first, &count);
    for (size_t i = 0; i < count; i++) {
        uint64_t w;
        memcpy(&w, base + (first + i) * 8, 8);
        w ^= keystream_word(key, first + i);
        memcpy(base + (first + i) * 8, &w, 8);
    }
}

void keystream_format(keystream_key_t key, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)key.k0, (unsigned long long)key.k1);
}

int keystream_parse(const char *s, keystream_key_t *key)
{
    if (!s || strlen(s) != 32)
        return -1;
    uint64_t v[2] = {0, 0};
    for (int i = 0; i < 32; i++) {
        int c = (unsigned char)s[i];
        if (!isxdigit(c))
            return -1;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
    }
    key->k0 = v[0];
    key->k1 = v[1];
    return 0;
}
