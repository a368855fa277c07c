/*
 * keystream.h -- the mask over a held-back set's inputs (docs/SECURITY.md,
 * "Masked held-back sets").  The worker writes a fresh set XORed with a
 * keystream and the runner uploads it; the key comes only in the run
 * command, where the runner removes the mask on the device right before the
 * timed call.  Until then the kernel's process holds bytes that tell it
 * nothing: it cannot start on the set while it is written or uploaded.
 *
 * Word i of the arena (its bytes 8i .. 8i+7) is XORed with
 * splitmix64(key + i * golden); only whole words inside a range are masked
 * (the few bytes of a range's ragged ends are left as they are).  Key 0 is
 * the identity, at the same cost: every run on a device does the pass, so
 * that the timed runs and the held-back run are measured alike.  The CUDA
 * runner does the same arithmetic in PTX (src/runner/unmask_ptx.c).
 */
#ifndef EMILE_UTIL_KEYSTREAM_H
#define EMILE_UTIL_KEYSTREAM_H

#include <stddef.h>
#include <stdint.h>

/* The keystream word for arena word `word` under `key` (0 for key 0). */
uint64_t keystream_word(uint64_t key, uint64_t word);

/* XOR the whole words of arena range [off, off + bytes) -- base points at
 * arena offset 0 -- with the keystream of key.  Its own inverse. */
void keystream_xor(uint8_t *base, size_t off, size_t bytes, uint64_t key);

/* The first whole word of [off, off + bytes) and how many there are. */
void keystream_words(size_t off, size_t bytes, size_t *first, size_t *count);

#endif
