/* layout.c -- see layout.h. */
#include "layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t align(size_t x)
{
    return (x + LAYOUT_ALIGN - 1) / LAYOUT_ALIGN * LAYOUT_ALIGN;
}

int layout_add_slot(arena_layout_t *a, const char *name, const op_t *op, const op_params_t *p,
                    int task_dtype, char *err, size_t n)
{
    if (a->n_slots >= LAYOUT_MAX_SLOTS) {
        snprintf(err, n, "too many input sets");
        return -1;
    }
    slot_layout_t *s = &a->slots[a->n_slots];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->params = *p;
    s->n_tensors = op->n_tensors;
    size_t cur = align(a->total);
    s->begin = cur;
    for (int t = 0; t < op->n_tensors; t++) {
        if (op_tensor_shape(op, t, p, s->shape[t], err, n) != 0)
            return -1;
        s->ndim[t] = op->tensors[t].ndim;
        snprintf(s->tname[t], sizeof s->tname[t], "%s", op->tensors[t].name);
        s->dtype[t] = op_tensor_dtype(op, t, task_dtype);
        s->is_out[t] = op->tensors[t].is_output;
        size_t numel = 1;
        for (int d = s->ndim[t] - 1; d >= 0; d--) {
            s->strides[t][d] = (int64_t)numel;   /* dense, row-major */
            numel *= (size_t)s->shape[t][d];
        }
        s->numel[t] = numel;
        s->bytes[t] = numel * emile_dtype_size(s->dtype[t]);
        cur += LAYOUT_GUARD;
        s->off[t] = cur;
        cur = align(cur + s->bytes[t]);
    }
    cur += LAYOUT_GUARD;
    s->end = cur;
    for (int t = 0; t < op->n_tensors; t++) {
        if (!s->is_out[t])
            continue;
        s->snap[t] = cur;
        cur = align(cur + s->bytes[t] + 2 * LAYOUT_GUARD);
    }
    a->total = cur;
    a->n_slots++;
    return 0;
}

char *layout_bind_line(const arena_layout_t *a, int si, const char *nonce)
{
    const slot_layout_t *s = &a->slots[si];
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
#define PUT(...) len += (size_t)snprintf(buf + len, cap - len, __VA_ARGS__)
    PUT("bind %s %d %d", nonce, si, s->params.n);
    for (int i = 0; i < s->params.n; i++)
        PUT(" %s %.17g", s->params.names[i], s->params.values[i]);
    PUT(" %d", s->n_tensors);
    for (int t = 0; t < s->n_tensors; t++) {
        PUT(" %s %d %d", s->tname[t], s->dtype[t], s->ndim[t]);
        for (int d = 0; d < s->ndim[t]; d++)
            PUT(" %lld", (long long)s->shape[t][d]);
        for (int d = 0; d < s->ndim[t]; d++)
            PUT(" %lld", (long long)s->strides[t][d]);
        PUT(" %zu %zu %d %zu %d", s->off[t], s->bytes[t], s->is_out[t], s->is_out[t] ? s->snap[t] : 0,
            LAYOUT_GUARD);
    }
#undef PUT
    return buf;
}
