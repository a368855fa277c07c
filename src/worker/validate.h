/*
 * validate.h -- the trusted comparisons: a candidate's outputs (copied out
 * of the arena by the worker right after the run) against the oracle's,
 * the guard bytes around every tensor, the inputs unchanged, a repeated run
 * equal to the first.  Pure functions of the layout and the bytes given;
 * messages name the set, the output and the element.
 */
#ifndef EMILE_WORKER_VALIDATE_H
#define EMILE_WORKER_VALIDATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "util/rng.h"

/* Elements checked per output on a timed run (all when fewer).  Each is a
 * cache miss or two (~70 ns on this project's VM, bench/sampled_check.sh),
 * paid on every one of up to 200 timed runs inside the device's exclusive
 * turn: 65536 stratified draws cost 3.5 ms a run for a 16 MB output (the
 * independent draws before them 6.1 ms), more than most kernels.  16384
 * cost 1.0-1.1 ms and still catch, on every run, a kernel that
 * skips or botches 1e-3 of its outputs (1 - e^-16 of the time), 1e-4 on
 * four runs in five; a kernel must skip a share of its work to gain that
 * share of its time, and validation and the held-back sets check every
 * element. */
#define VALIDATE_SAMPLE_N 16384

/* Full comparison of output k of slot sl: block is [guard][data][guard]
 * as the candidate left it, against expected (the oracle's data) within
 * tol; pristine is the slot's range as drawn (the guards' values).  Adds
 * a check object named `name` to checks (when not NULL).  0, or -1 with
 * msg.  *max_err receives the largest error seen. */
int validate_output(const slot_layout_t *sl, int k, const uint8_t *block, const void *expected,
                    const uint8_t *pristine, double tol, const char *name, json_t *checks, double *max_err,
                    char *msg, size_t n);

/* Sampled comparison (VALIDATE_SAMPLE_N elements, one drawn at random in
 * each of that many equal strides) and the guards, for warm-up and timed
 * runs; each sampled element of block is read once per comparison. */
int validate_output_sampled(const slot_layout_t *sl, int k, const uint8_t *block, const void *expected,
                            const uint8_t *pristine, double tol, rng_t *rng, const char *what, int run_index,
                            char *msg, size_t n);

/* Everything in the slot's range [begin, end) of arena (slot-relative:
 * arena points at begin) except the output data must be as drawn: inputs
 * unchanged, guards untouched.  0, or -1 with msg. */
int validate_inputs_and_guards(const slot_layout_t *sl, const uint8_t *arena_slot, const uint8_t *pristine,
                               char *msg, size_t n);

/* The candidate on the three validation sets (the task's sizes, a ragged
 * size, a small size with another batch): every output in full, the
 * guards, the inputs unchanged; then the first set again, which must
 * agree with the first run (a race, or a read of memory nothing wrote).
 * 0, or -1 with the reply's status set. */
struct eval_state;
int validate_candidate(struct eval_state *e);

#endif
