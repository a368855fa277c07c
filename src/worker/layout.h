/* layout.h -- where each tensor of each input set ("slot") lives in the
 * shared arena, with guard bytes before and after every tensor, and where
 * the runner leaves its snapshot of each output (with its guards). */
#ifndef EMILE_LAYOUT_H
#define EMILE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "task/op.h"

#define LAYOUT_GUARD 4096
#define LAYOUT_ALIGN 256
#define LAYOUT_MAX_SLOTS 8

typedef struct slot_layout {
    char name[16];             /* "task", "ragged", "small", "timing" */
    op_params_t params;
    int n_tensors;
    char tname[OP_MAX_TENSORS][32];
    int dtype[OP_MAX_TENSORS];
    int is_out[OP_MAX_TENSORS];
    int ndim[OP_MAX_TENSORS];
    int64_t shape[OP_MAX_TENSORS][EMILE_MAX_DIMS];
    int64_t strides[OP_MAX_TENSORS][EMILE_MAX_DIMS];
    size_t numel[OP_MAX_TENSORS];
    size_t bytes[OP_MAX_TENSORS];
    size_t off[OP_MAX_TENSORS];   /* tensor data (guard before and after) */
    size_t snap[OP_MAX_TENSORS];  /* outputs: snapshot incl. guards */
    size_t begin, end;            /* tensors and guards: what an upload copies */
    double input_scale;           /* the draw's spread over the tensors' own (0: 1);
                                     the small set's is wider (task_state.c) */
} slot_layout_t;

typedef struct arena_layout {
    int n_slots;
    slot_layout_t slots[LAYOUT_MAX_SLOTS];
    size_t total;
} arena_layout_t;

/* Append a slot for params; 0 or -1 with err. */
int layout_add_slot(arena_layout_t *a, const char *name, const op_t *op, const op_params_t *p,
                    int task_dtype, char *err, size_t n);
/* The runner's "bind" line for slot s (malloc'd). */
char *layout_bind_line(const arena_layout_t *a, int s, const char *nonce);

#endif
