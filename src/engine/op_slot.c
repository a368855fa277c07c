/*
 * op_slot.c -- the engine's hot-swappable ops (see op_slot.h).
 */
#include "engine/op_slot.h"

#include <dlfcn.h>
#include <stdio.h>

#include "engine/attn_slot.h"

void op_slot_init(op_slot_t *s, int op)
{
    memset(s, 0, sizeof *s);
    s->op = op;
    s->fn = op == ENGINE_OP_ATTENTION ? engine_attention_builtin : NULL;
    snprintf(s->label, sizeof s->label, "builtin");
}

int op_slot_load(op_slot_t *s, const char *so_path, char *err, size_t errlen)
{
    op_slot_close(s);
    /* NODELETE: a kernel that started OpenMP threads stays mapped after
     * dlclose (its threads spin in libgomp code it brought in). */
    void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        snprintf(err, errlen, "dlopen %s: %s", so_path, dlerror());
        return -1;
    }
    /* POSIX allows the object-to-function-pointer conversion dlsym needs;
     * the memcpy keeps -Wpedantic quiet about it. */
    void *sym = dlsym(h, EMILE_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(err, errlen, "%s: no symbol %s", so_path, EMILE_ENTRY_SYMBOL);
        dlclose(h);
        return -1;
    }
    emile_kernel_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    s->fn = fn;
    s->handle = h;
    snprintf(s->label, sizeof s->label, "%s", so_path);
    return 0;
}

void op_slot_close(op_slot_t *s)
{
    if (s->handle)
        dlclose(s->handle);
    long calls = s->calls;
    op_slot_init(s, s->op);
    s->calls = calls;
}

void engine_ops_init(engine_ops_t *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < ENGINE_OP_COUNT; i++)
        op_slot_init(&o->slot[i], i);
}

void engine_ops_close(engine_ops_t *o)
{
    for (int i = 0; i < ENGINE_OP_COUNT; i++)
        op_slot_close(&o->slot[i]);
}

int engine_ops_any_decode(const engine_ops_t *o)
{
    for (int i = 0; o && i < ENGINE_OP_COUNT; i++)
        if (engine_op_is_decode(i) && o->slot[i].handle)
            return 1;
    return 0;
}
