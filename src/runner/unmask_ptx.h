/* unmask_ptx.h -- the CUDA runner's unmask pass (device.h's unmask), as PTX
 * the driver compiles for the device at start-up: the runner is built
 * without nvcc.  The arithmetic is util/keystream.c's, word for word. */
#ifndef EMILE_RUNNER_UNMASK_PTX_H
#define EMILE_RUNNER_UNMASK_PTX_H

/* Entry emile_unmask(u64 ptr, u64 words, u64 first, u64 k0, u64 k1): word
 * i of ptr (the arena's word first + i) ^= keystream_word({k0, k1},
 * first + i), for i < words, over a grid-stride loop. */
extern const char runner_unmask_ptx[];

#endif
