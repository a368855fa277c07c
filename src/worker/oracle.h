/*
 * oracle.h -- the trusted side that produces expected outputs.  The worker
 * asks an oracle, before a candidate starts, for every input set it will
 * show the candidate: the inputs (with the guard bytes around them) and
 * the outputs they must give.  The candidate's process never holds any of
 * the expected outputs; the comparison happens in the worker.
 *
 * One implementation today (oracle_reference_new): the task's reference
 * kernel, compiled and run in a runner of its own (another uid when root,
 * other namespaces otherwise), the inputs drawn by the worker from a seed
 * no kernel sees, and the reference itself checked once against the op's
 * float64 evaluation on a small set.  A second one can stand beside it (a
 * trusted Python process that draws inputs with the user's get_inputs()
 * and runs their PyTorch Model): same four operations.
 */
#ifndef EMILE_WORKER_ORACLE_H
#define EMILE_WORKER_ORACLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "compile.h"
#include "layout.h"
#include "task/task.h"
#include "util/rng.h"

/* Return codes of prepare and fill. */
enum {
    ORACLE_OK = 0,
    ORACLE_INVALID = -1,    /* the reference is unusable: status "reference_invalid" */
    ORACLE_ERROR = -2       /* ours (out of memory, no directory): status "error" */
};

typedef struct oracle oracle_t;

typedef struct oracle_ops {
    const char *name;
    /* Ready the oracle for its task: build and start what computes the
     * expected outputs, check it.  ORACLE_* with err. */
    int (*prepare)(oracle_t *o, char *err, size_t n);
    /* Optional: draw one input set for layout slot `slot` into pristine
     * (the slot's range [begin, end) as the candidate must see it: inputs
     * and guard bytes; output ranges anything, the worker poisons them)
     * from rng, on the CPU alone, so the worker calls it off the device's
     * turn, for several sets at once on threads of its own (each with its
     * own rng and pristine).  An oracle with draw gets every set drawn
     * before its fill. */
    void (*draw)(const oracle_t *o, int slot, uint8_t *pristine, rng_t *rng);
    /* One input set in layout slot `slot` (named set_name in messages):
     * pristine receives the slot's range as above (with draw: holds it
     * already), and expected[k] (malloc'd here when NULL) each output.
     * ORACLE_* with err. */
    int (*fill)(oracle_t *o, int slot, const char *set_name, uint8_t *pristine, void **expected, char *err,
                size_t n);
    /* The check of the oracle itself (the reply's "oracle" object), new
     * reference; never NULL. */
    json_t *(*describe)(oracle_t *o);
    void (*free)(oracle_t *o);
} oracle_ops_t;

struct oracle {
    const oracle_ops_t *ops;
};

/* What the reference oracle needs from the worker. */
typedef struct oracle_env {
    const task_t *task;
    const arena_layout_t *layout;
    const backend_t *backend;
    const char *base;          /* the worker's directory: the reference's goes inside */
    int *counter;              /* the worker's directory counter */
    long uid;                  /* the reference's uid (root), or -1 */
    rng_t *rng;                /* the worker's random numbers (the seed no kernel sees) */
    const compile_env_t *compile; /* the compile cache and the device's turn (NULL: neither) */
} oracle_env_t;

/* The task's reference kernel as the oracle (not yet prepared). */
oracle_t *oracle_reference_new(const oracle_env_t *env);

/* Fill slot s's range of pristine (slot-relative) with fresh values:
 * random guard bytes everywhere, then the inputs (normal, std from the op).
 * For oracles that draw with the worker's numbers. */
void oracle_draw_inputs(rng_t *rng, const task_t *t, const slot_layout_t *sl, uint8_t *pristine);

#endif
