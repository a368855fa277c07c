/*
 * attn_slot.h -- the engine's prefill attention slot: the op slot of
 * ENGINE_OP_ATTENTION (op_slot.h), with the engine's built-in ABI kernel
 * and the call the plain C forward makes.
 */
#ifndef EMILE_ENGINE_ATTN_SLOT_H
#define EMILE_ENGINE_ATTN_SLOT_H

#include <stddef.h>

#include "emile.h"
#include "op_slot.h"

typedef op_slot_t attn_slot_t;

/* Put the engine's built-in attention in the slot. */
void attn_slot_init_builtin(attn_slot_t *s);

/* op_slot_load and op_slot_close for the attention slot. */
int attn_slot_load(attn_slot_t *s, const char *so_path, char *err, size_t errlen);
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
