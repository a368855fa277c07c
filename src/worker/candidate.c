/*
 * candidate.c -- driving the candidate's runner (see worker_internal.h).
 *
 * What the candidate's process ever holds: the pristine inputs and guard
 * bytes of the sets it is shown, its own outputs, and the NaN poison the
 * worker writes over every output range.  What the worker believes: its own
 * clock around each command, the outputs as it copies them out of its own
 * mapping of the arena right after the reply (cpu; on cuda from the
 * snapshot the runner copies to the host arena after a synchronisation the
 * worker's clock covered), and the runner's CPU clock read from here.
 */
#include <stdlib.h>
#include <string.h>

#include "timing.h"
#include "util/clock.h"
#include "util/keystream.h"
#include "worker_internal.h"

static const slot_layout_t *slot_of(const eval_state_t *e, int slot)
{
    return &e->w->layout.slots[slot];
}

/* Poison the output data of slot in the candidate's host arena (cpu: the
 * arena is the memory the kernel writes; cuda: the snapshot ranges, so
 * that a snapshot the runner skips reads as NaN). */
static void poison_outputs(eval_state_t *e, int slot)
{
    const slot_layout_t *sl = slot_of(e, slot);
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        if (e->cuda)
            memset(e->cand.arena + sl->snap[k], 0xff, sl->bytes[k] + 2 * LAYOUT_GUARD);
        else
            memset(e->cand.arena + sl->off[k], 0xff, sl->bytes[k]);
    }
}

static int upload(eval_state_t *e, int slot)
{
    const slot_layout_t *sl = slot_of(e, slot);
    char args[64];
    snprintf(args, sizeof args, "%zu %zu", sl->begin, sl->end - sl->begin);
    return runner_cmd(&e->cand, NULL, 0, 0, "upload", args);
}

/* The bytes of set s into slot's range of the candidate's arena, outputs
 * poisoned; the time the copy took. */
static double write_set(eval_state_t *e, int set, int slot)
{
    const slot_layout_t *sl = slot_of(e, slot);
    const input_set_t *is = &e->w->sets[set];
    double t0 = clock_mono_s();
    memcpy(e->cand.arena + sl->begin, is->pristine, sl->end - sl->begin);
    for (int k = 0; k < sl->n_tensors; k++)
        if (sl->is_out[k])
            memset(e->cand.arena + sl->off[k], 0xff, sl->bytes[k]);
    return (clock_mono_s() - t0) * 1e9;
}

int cand_bind(eval_state_t *e)
{
    for (int s = 0; s < e->w->layout.n_slots; s++) {
        char *line = layout_bind_line(&e->w->layout, s, "");
        int rc = line ? runner_cmd(&e->cand, NULL, 0, 0, "bind", line + strlen("bind  ")) : RUNNER_ERR;
        free(line);
        if (rc != RUNNER_OK)
            return rc;
    }
    return RUNNER_OK;
}

int cand_show_in(eval_state_t *e, int set, int slot)
{
    write_set(e, set, slot);
    return upload(e, slot);
}

int cand_show(eval_state_t *e, int set)
{
    return cand_show_in(e, set, e->w->sets[set].slot);
}

/* Copy each output with its guards out of the arena (cpu: in place; cuda:
 * the snapshot) into the worker's own buffers. */
static int copy_outputs(eval_state_t *e, int slot)
{
    const slot_layout_t *sl = slot_of(e, slot);
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k])
            continue;
        size_t need = sl->bytes[k] + 2 * LAYOUT_GUARD;
        if (e->out_cap[k] < need) {
            uint8_t *p = realloc(e->out[k], need);
            if (!p)
                return -1;
            e->out[k] = p;
            e->out_cap[k] = need;
        }
        memcpy(e->out[k], cand_out_block(e, slot, k), need);
    }
    e->out_slot = slot;
    return 0;
}

/* Runner CPU since the last mark, and a new mark (0 when unreadable). */
static double cpu_since_mark(eval_state_t *e)
{
    double now = runner_cpu_ns(&e->cand);
    if (now < 0 || e->cpu_mark < 0) {
        e->cpu_mark = now;
        return 0;
    }
    double d = now - e->cpu_mark;
    e->cpu_mark = now;
    return d > 0 ? d : 0;
}

/* The worker's own pass over its flush buffer: the last-level cache is
 * shared, so this evicts the kernel's inputs whatever its runner did in
 * prep (a runner the kernel took over may skip the flush). */
static void worker_flush(eval_state_t *e)
{
    volatile uint8_t *b = e->w->flush_buf;
    for (size_t i = 0; b && i < e->w->flush_bytes; i += 64)
        b[i] = (uint8_t)(b[i] + 1);
}

static int prep(eval_state_t *e, int slot, int flush)
{
    e->cpu_outside_ns += cpu_since_mark(e);           /* idle since the last reply */
    int rc = runner_prep(&e->cand, slot, flush);
    if (rc != RUNNER_OK)
        return rc;
    e->cpu_prep_ns += cpu_since_mark(e);
    e->n_prep++;
    if (flush && !e->cuda)
        worker_flush(e);
    return RUNNER_OK;
}

/* The run itself, the outputs' snap (cuda) and, with copy, the worker's
 * own copy of every output, at once. */
static int run_and_copy(eval_state_t *e, int slot, run_result_t *res, int copy)
{
    e->cpu_outside_ns += cpu_since_mark(e);           /* between prep and run */
    int rc = runner_run(&e->cand, slot, res);
    e->last_snap_ns = 0;
    if (rc == RUNNER_OK && e->cuda) {
        rc = runner_snap(&e->cand, slot);
        e->last_snap_ns = runner_last_own_ns(&e->cand);
    }
    if (rc == RUNNER_OK && copy && copy_outputs(e, slot) != 0)
        rc = RUNNER_ERR;
    cpu_since_mark(e);                                 /* the run's own CPU is the kernel's */
    return rc;
}

/* Outputs poisoned, prep, then run_and_copy. */
static int run_slot(eval_state_t *e, int slot, int flush, run_result_t *res, int copy)
{
    poison_outputs(e, slot);
    int rc = prep(e, slot, flush);
    if (rc != RUNNER_OK)
        return rc;
    return run_and_copy(e, slot, res, copy);
}

int cand_run(eval_state_t *e, int slot, int flush, run_result_t *res)
{
    return run_slot(e, slot, flush, res, 1);
}

int cand_run_sampled(eval_state_t *e, int slot, int flush, run_result_t *res)
{
    return run_slot(e, slot, flush, res, 0);
}

const uint8_t *cand_out_block(const eval_state_t *e, int slot, int k)
{
    const slot_layout_t *sl = slot_of(e, slot);
    return e->cuda ? e->cand.arena + sl->snap[k] : e->cand.arena + sl->off[k] - LAYOUT_GUARD;
}

int cand_run_exposed(eval_state_t *e, int set, run_result_t *res, double *exposed_ns)
{
    int slot = e->w->sets[set].slot;
    poison_outputs(e, slot);
    int rc = prep(e, slot, 1);
    if (rc != RUNNER_OK)
        return rc;
    /* From here the kernel could know the inputs: every nanosecond until
     * the outputs are copied out counts, less the worker's own copying and
     * (cuda) the transfers' calibrated cost; and every nanosecond of the
     * runner's CPU. */
    e->cpu_outside_ns += cpu_since_mark(e);
    double c0 = runner_cpu_ns(&e->cand);
    double t0 = clock_mono_s();
    double copy_ns = write_set(e, set, slot);
    double up_ns = 0, snap_ns = 0;
    if (e->cuda) {
        rc = upload(e, slot);
        up_ns = e->cand.last_outside_ns;
    }
    double t_run = clock_mono_s();
    if (rc == RUNNER_OK)
        rc = runner_run(&e->cand, slot, res);
    double t_ran = clock_mono_s();
    if (rc == RUNNER_OK && e->cuda) {
        rc = runner_snap(&e->cand, slot);
        snap_ns = e->cand.last_outside_ns;
    }
    double t_copy = clock_mono_s();
    if (rc == RUNNER_OK && copy_outputs(e, slot) != 0)
        rc = RUNNER_ERR;
    double t_end = clock_mono_s();
    double total = (t_end - t0) * 1e9;
    /* The parts, for the report: a rejection shows where the time went. */
    e->exposed_parts_ns[0] = up_ns;
    e->exposed_parts_ns[1] = (t_ran - t_run) * 1e9;
    e->exposed_parts_ns[2] = snap_ns;
    e->exposed_parts_ns[3] = (t_end - t_copy) * 1e9;
    e->exposed_parts_ns[4] = res->outside_ns;
    e->exposed_parts_ns[5] = res->elapsed_ns;
    double c1 = runner_cpu_ns(&e->cand);
    e->exposed_cpu_ns = c0 >= 0 && c1 >= 0 ? c1 - c0 : -1;
    cpu_since_mark(e);
    if (rc != RUNNER_OK)
        return rc;
    held_parts_t parts = {.total = total, .write = copy_ns, .upload = up_ns, .snap = snap_ns,
                          .copy_out = e->exposed_parts_ns[3]};
    *exposed_ns = timing_held_charge(&parts, &e->w->calib, e->cuda);
    return RUNNER_OK;
}

int cand_show_masked(eval_state_t *e, int set, int slot, keystream_key_t key)
{
    write_set(e, set, slot);
    const slot_layout_t *sl = slot_of(e, slot);
    for (int k = 0; k < sl->n_tensors; k++)
        if (!sl->is_out[k])
            keystream_xor(e->cand.arena, sl->off[k], sl->bytes[k], key);
    return upload(e, slot);
}

int cand_run_masked(eval_state_t *e, int slot, keystream_key_t key, run_result_t *res)
{
    poison_outputs(e, slot);
    int rc = prep(e, slot, 1);
    if (rc != RUNNER_OK)
        return rc;
    e->cpu_outside_ns += cpu_since_mark(e);
    rc = runner_run_keyed(&e->cand, slot, key, res);
    e->last_snap_ns = 0;
    if (rc == RUNNER_OK && e->cuda) {
        rc = runner_snap(&e->cand, slot);
        e->last_snap_ns = runner_last_own_ns(&e->cand);
    }
    if (rc == RUNNER_OK && copy_outputs(e, slot) != 0)
        rc = RUNNER_ERR;
    cpu_since_mark(e);
    return rc;
}

int cand_settle(eval_state_t *e)
{
    return runner_cmd(&e->cand, NULL, 0, 0, "ping", "");
}
