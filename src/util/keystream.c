/* keystream.c -- see keystream.h. */
#include "keystream.h"

#include <string.h>

#define KEYSTREAM_GOLDEN 0x9E3779B97F4A7C15ull

uint64_t keystream_word(uint64_t key, uint64_t word)
{
    uint64_t z = key + word * KEYSTREAM_GOLDEN;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return key ? z : 0;
}

void keystream_words(size_t off, size_t bytes, size_t *first, size_t *count)
{
    size_t a = (off + 7) / 8, b = (off + bytes) / 8;
    *first = a;
    *count = b > a ? b - a : 0;
}

void keystream_xor(uint8_t *base, size_t off, size_t bytes, uint64_t key)
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
