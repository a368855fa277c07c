/*
 * attn_slot.h -- the engine's hot-swappable prefill attention.
 *
 * The slot holds one kernel of the ABI in include/emile.h (op "attention"):
 * either the engine's built-in one or an emile_kernel entry point loaded
 * with dlopen from a shared object at run time, so a kernel the agent just
 * wrote goes into the model without rebuilding anything.  The engine calls
 * the slot for prefill (a causal self-attention over the whole prompt);
 * decode attention over the KV cache stays the engine's own.
 */
#ifndef EMILE_ENGINE_ATTN_SLOT_H
#define EMILE_ENGINE_ATTN_SLOT_H

#include <stddef.h>

#include "emile.h"

typedef struct attn_slot {
    emile_kernel_fn fn;    /* never NULL once initialised */
    void *handle;          /* dlopen handle, NULL for the built-in kernel */
    char label[256];       /* "builtin" or the .so path */
    long calls;            /* how many times fn ran (tests check the swap) */
} attn_slot_t;

/* Put the engine's built-in attention in the slot. */
void attn_slot_init_builtin(attn_slot_t *s);

/*
 * Load the kernel exported as EMILE_ENTRY_SYMBOL by the shared object at
 * so_path (RTLD_NOW | RTLD_LOCAL, so a broken .so fails here rather than at
 * the first call).  Returns 0, or -1 with dlerror's message in err (the
 * slot is then the built-in kernel).
 */
int attn_slot_load(attn_slot_t *s, const char *so_path, char *err, size_t errlen);

/* dlclose a loaded kernel and go back to the built-in one. */
void attn_slot_close(attn_slot_t *s);

/*
 * Run causal attention through the slot on fp32 host tensors:
 * q and o [1, seq, q_heads, head_dim] dense; k and v [1, seq, kv_heads,
 * head_dim] with row stride kv_stride elements between positions.
 * Returns the kernel's status (0 on success).
 */
int attn_slot_run(attn_slot_t *s, float *q, float *k, float *v, float *o, int seq,
                  int q_heads, int kv_heads, int head_dim, long kv_stride);

/*
 * The engine's built-in prefill attention, itself an ABI kernel: f32 only,
 * any strides, GQA, causal or not.  Returns 0, or 1 for arguments it does
 * not handle.
 */
int engine_attention_builtin(const emile_args_t *args);

#endif /* EMILE_ENGINE_ATTN_SLOT_H */
