/*
 * taste_kernel.h -- what goes into the Tasting Room's attention slot: the
 * engine's built-in attention, a kernel file (.so loaded as it is; .c or
 * .cu compiled here first), or a run of the store (its best iteration's
 * source, or, for the reference side, its task's reference source),
 * compiled here by language.  Each gets the label the report prints.
 */
#ifndef EMILE_ENGINE_TASTE_KERNEL_H
#define EMILE_ENGINE_TASTE_KERNEL_H

#include <stddef.h>

#include "engine/attn_slot.h"

/* 1 when spec names a run (all digits) rather than a file. */
int taste_kernel_is_run(const char *spec);

/*
 * Fill slot from spec for a model on device ("cpu" takes C kernels on f32
 * host tensors, "cuda" CUDA kernels on bf16 device tensors); spec NULL
 * leaves the built-in attention.  A run is read from the store at
 * store_path (NULL: the default store, see store.h); reference picks the
 * run's task reference instead of its best iteration.  Sources are written
 * to a private temporary directory and compiled there with the backend's
 * own command (src/backend/cpu.c: $EMILE_CC or cc; cuda.c: $EMILE_NVCC or
 * nvcc, the detected architecture), which is removed afterwards.  Labels:
 * the path as given, "run N's best (iteration I)", "run N's reference".
 * Returns 0, or -1 with err naming the problem (unknown run, a run without
 * a valid kernel, a kernel of the other device, the compiler's errors).
 */
int taste_kernel_load(attn_slot_t *slot, const char *spec, int reference,
                      const char *store_path, const char *device, char *err, size_t errlen);

#endif /* EMILE_ENGINE_TASTE_KERNEL_H */
