/*
 * keystream.h -- the mask over a held-back set's inputs (docs/SECURITY.md,
 * "Masked held-back sets").  The worker writes a fresh set XORed with a
 * keystream and the runner uploads it; the key comes only in the run
 * command, where the runner removes the mask on the device right before the
 * timed call.  Until then the kernel's process holds bytes that tell it
 * nothing: it cannot start on the set while it is written or uploaded.
 *
 * Word w of the arena (its bytes 8w .. 8w+7) is XORed with
 *   mix(k0 + w * G0) ^ mix(k1 ^ (w * G1))
 * where mix is splitmix64's finaliser, a bijection.  One lane alone would
 * not do: a kernel that knows one plaintext word (zeros, an arange) could
 * invert mix and read the key off it.  With two lanes a known word gives
 * one equation in two 64-bit unknowns, and the cheapest way through is to
 * guess one of them: 2^64 tries within one run.  It is not a cipher; it
 * only has to hold for the milliseconds between the upload and the run.
 * Only whole words inside a range are masked (the few bytes of a range's
 * ragged ends are left as they are).  The key 0, 0 is the identity, at the
 * same cost: every run on a device does the pass, so that the timed runs
 * and the held-back run are measured alike.  The CUDA runner does the same
 * arithmetic in PTX (src/runner/unmask_ptx.c).
 */
#ifndef EMILE_UTIL_KEYSTREAM_H
#define EMILE_UTIL_KEYSTREAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct keystream_key {
    uint64_t k0, k1;
} keystream_key_t;

/* splitmix64's finaliser. */
uint64_t keystream_mix(uint64_t z);

/* The keystream word for arena word `word` (0 for the key 0, 0). */
uint64_t keystream_word(keystream_key_t key, uint64_t word);

/* XOR the whole words of arena range [off, off + bytes) -- base points at
 * arena offset 0 -- with the keystream of key.  Its own inverse. */
void keystream_xor(uint8_t *base, size_t off, size_t bytes, keystream_key_t key);

/* The first whole word of [off, off + bytes) and how many there are. */
void keystream_words(size_t off, size_t bytes, size_t *first, size_t *count);

/* The key as the run command carries it: 32 lowercase hex digits (k0 then
 * k1), and back; parse returns 0, or -1 for anything but 32 hex digits. */
void keystream_format(keystream_key_t key, char out[33]);
int keystream_parse(const char *s, keystream_key_t *key);

#endif
