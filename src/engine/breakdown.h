/*
 * breakdown.h -- where a Qwen3 step spends its time, op by op, and how far
 * each op is from its own floor: the bytes it must move over the measured
 * bandwidth, or the FLOPs it must do over the measured peak, whichever is
 * longer (the op specs' FLOP and byte counts, kernels/<op>/op.json, at the
 * model's shapes).  The times come from an engine_profile_t (op_slot.h) the
 * model filled: cpu clocks around each op, CUDA events on the GPU.
 */
#ifndef EMILE_ENGINE_BREAKDOWN_H
#define EMILE_ENGINE_BREAKDOWN_H

#include <jansson.h>
#include <stdio.h>

#include "engine/op_slot.h"
#include "engine/qwen3.h"

/* The device's measured ceilings and the width of the model's numbers. */
typedef struct engine_ceilings {
    double gbs;            /* copy bandwidth, GB/s (0: unknown: no floors) */
    double gflops;         /* peak of the model's dtype, GFLOP/s */
    int elem;              /* bytes per weight and cache element: 4 (cpu), 2 (cuda) */
} engine_ceilings_t;

typedef struct engine_breakdown_row {
    double ms;             /* per call of the phase: a prefill, a decode step */
    double share;          /* of the phase's step time */
    double floor_ms;       /* 0: no floor (other) */
    double of_floor;       /* floor_ms / ms: 1 = at the floor */
} engine_breakdown_row_t;

typedef struct engine_breakdown {
    int has[2];                            /* [0] prefill, [1] decode measured */
    double step_ms[2];                     /* per call */
    long calls[2];
    int prefill_tokens;
    double kv_len;                         /* decode: mean cache length read */
    engine_breakdown_row_t row[2][ENGINE_PROF_N];
} engine_breakdown_t;

/* Per-call times and floors from a profile of the model c. */
void engine_breakdown_compute(const qwen3_config_t *c, const engine_profile_t *p,
                              const engine_ceilings_t *ceil, engine_breakdown_t *b);

/* A table per phase: op, ms per call, share of the step, floor, % of floor. */
void engine_breakdown_print(FILE *out, const char *title, const engine_breakdown_t *b);

/* {"prefill": {...}, "decode": {...}}, each {"tokens" | "kv_len", "calls",
 * "step_ms", "ops": {op: {ms, share, floor_ms, of_floor}}}. */
json_t *engine_breakdown_json(const engine_breakdown_t *b);

/* The profile as a child sends it, and back; 0, or -1 when j does not
 * hold one (fields missing, negative or not finite). */
json_t *engine_profile_to_json(const engine_profile_t *p);
int engine_profile_from_json(const json_t *j, engine_profile_t *p);

#endif /* EMILE_ENGINE_BREAKDOWN_H */
