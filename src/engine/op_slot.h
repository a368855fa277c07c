/*
 * op_slot.h -- the engine's hot-swappable ops.
 *
 * Every hot op of a Qwen3 step has a slot.  A slot holds either the
 * engine's own implementation (handle NULL) or a kernel of the ABI in
 * include/emile.h loaded with dlopen from a shared object at run time, so a
 * kernel the agent just cooked goes into the model without rebuilding
 * anything.  The ops and the tensors the engine hands each of them are the
 * op specs in kernels/<op>/op.json (docs/ENGINE.md):
 *
 *   attention         prefill (position 0): causal attention over the prompt
 *   decode_attention  decode: one query token over the KV cache
 *   qkv_proj          decode: [q | k | v] = x W^T, q/k RMSNorm and RoPE
 *   o_proj            decode: attention output projection (fp32 out)
 *   gate_up           decode: gate and up projections with SwiGLU
 *   down_proj         decode: MLP output projection (fp32 out)
 *   lm_head           decode: logits (fp32) and their argmax
 *
 * The decode ops run in the decode steps (one token at a position > 0);
 * prefill runs the engine's own projections and the attention slot.  On the
 * cpu the tensors are f32 host memory; on cuda bf16 device memory and the
 * engine's stream (kernels there must enqueue only: no allocation, no sync,
 * so the decode step stays one CUDA graph).
 *
 * This header is plain C with sibling includes only: nvcc compiles it into
 * the GPU engine too.
 */
#ifndef EMILE_ENGINE_OP_SLOT_H
#define EMILE_ENGINE_OP_SLOT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "emile.h"

typedef enum engine_op {
    ENGINE_OP_ATTENTION = 0,
    ENGINE_OP_DECODE_ATTENTION,
    ENGINE_OP_QKV_PROJ,
    ENGINE_OP_O_PROJ,
    ENGINE_OP_GATE_UP,
    ENGINE_OP_DOWN_PROJ,
    ENGINE_OP_LM_HEAD,
    ENGINE_OP_COUNT
} engine_op_t;

/* The breakdown's rows: the ops, then everything else (norms, residual
 * adds, embedding, the KV cache append, the argmax of the engine's own
 * lm_head). */
#define ENGINE_PROF_OTHER ENGINE_OP_COUNT
#define ENGINE_PROF_N (ENGINE_OP_COUNT + 1)

typedef struct op_slot {
    emile_kernel_fn fn;    /* the loaded kernel; the attention slot's built-in
                              (cpu) kernel when handle is NULL */
    void *handle;          /* dlopen handle, NULL for the engine's own op */
    char label[256];       /* "builtin" or the .so path (or a caller's label) */
    long calls;            /* how many times fn ran (tests check the swap) */
    int op;                /* engine_op_t */
} op_slot_t;

/*
 * Time per op, summed over the calls since it was zeroed: phase 0 the
 * prefill forwards, phase 1 the decode steps.  step_ms is the whole
 * forward's time; what the ops do not account for is ms[.][ENGINE_PROF_OTHER].
 * kv_len_sum adds up the positions decode attention read (for its floor).
 */
typedef struct engine_profile {
    double ms[2][ENGINE_PROF_N];
    double step_ms[2];
    long calls[2];
    double kv_len_sum;
    int prefill_tokens;    /* tokens of the last prefill */
} engine_profile_t;

/* A slot for every op; prof non-NULL asks the model to time each op. */
typedef struct engine_ops {
    op_slot_t slot[ENGINE_OP_COUNT];
    engine_profile_t *prof;
} engine_ops_t;

/* "attention", "decode_attention", ... (NULL out of range).  Inline: the
 * GPU engine, a library of its own, uses them too. */
static inline const char *engine_op_name(int op)
{
    static const char *const names[ENGINE_OP_COUNT] = {
        "attention", "decode_attention", "qkv_proj", "o_proj", "gate_up", "down_proj", "lm_head",
    };
    return op >= 0 && op < ENGINE_OP_COUNT ? names[op] : NULL;
}

/* The op called name, or -1. */
static inline int engine_op_from_name(const char *name)
{
    for (int i = 0; name && i < ENGINE_OP_COUNT; i++)
        if (strcmp(name, engine_op_name(i)) == 0)
            return i;
    return -1;
}

/* 1 for the ops that run in decode steps. */
static inline int engine_op_is_decode(int op)
{
    return op > ENGINE_OP_ATTENTION && op < ENGINE_OP_COUNT;
}

/* Put the engine's own implementation of op in the slot. */
void op_slot_init(op_slot_t *s, int op);

/*
 * Load the kernel exported as EMILE_ENTRY_SYMBOL by the shared object at
 * so_path (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE, so a broken .so fails here
 * rather than at the first call).  0, or -1 with dlerror's words in err
 * (the slot is then the engine's own op).
 */
int op_slot_load(op_slot_t *s, const char *so_path, char *err, size_t errlen);

/* dlclose a loaded kernel and go back to the engine's own op (the call
 * count is kept). */
void op_slot_close(op_slot_t *s);

/* Every slot the engine's own, no profile. */
void engine_ops_init(engine_ops_t *o);
void engine_ops_close(engine_ops_t *o);
/* 1 when any decode op's slot holds a loaded kernel. */
int engine_ops_any_decode(const engine_ops_t *o);

/* A dense (row-major) tensor descriptor for a slot call. */
static inline void engine_tensor(emile_tensor_t *t, const char *name, void *data, int dtype,
                                 int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->name = name;
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t st = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->strides[d] = st;
        st *= shape[d];
    }
}

#endif /* EMILE_ENGINE_OP_SLOT_H */
