/* calibrate.c -- see calibrate.h. */
#include "calibrate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel_env.h"
#include "stats.h"
#include "timing.h"
#include "util/clock.h"
#include "util/fs.h"

void calibrate_stop(worker_ctx_t *w)
{
    if (w->null_alive)
        runner_stop(&w->null_run);
    w->null_alive = 0;
    if (w->null_dir[0])
        fs_rm_rf(w->null_dir);
    w->null_dir[0] = 0;
}

static int start_null(worker_ctx_t *w, char *err, size_t n)
{
    calibrate_stop(w);
    const task_t *t = &w->task;
    /* One slot at the task's size: the null runner needs no more arena. */
    memset(&w->null_layout, 0, sizeof w->null_layout);
    if (layout_add_slot(&w->null_layout, "null", &t->op, &t->params, t->dtype, err, n) != 0)
        return -1;
    if (kernel_dir_make(w->base, "null", &w->counter, &w->rng, w->cand_uid, w->null_dir, sizeof w->null_dir) != 0) {
        snprintf(err, n, "cannot prepare the null runner's directory");
        return -1;
    }
    sandbox_limits_t l;
    kernel_runner_limits(t, w->backend, w->cand_uid, &l);
    runner_t *r = &w->null_run;
    int rc = runner_start(r, w->backend, w->null_dir, NULL, w->null_layout.total, &l);
    w->null_alive = 1;
    char *line = rc == RUNNER_OK ? layout_bind_line(&w->null_layout, 0, "") : NULL;
    if (rc == RUNNER_OK)
        rc = line ? runner_cmd(r, NULL, 0, 0, "bind", line + strlen("bind  ")) : RUNNER_ERR;
    free(line);
    if (rc != RUNNER_OK) {
        snprintf(err, n, "the null runner failed: %.400s", r->msg);
        calibrate_stop(w);
        return -1;
    }
    return 0;
}

/* The worker's copy of the null runner's outputs, with their guards, as
 * candidate.c copies a candidate's: from the snap (device memory) or the
 * slot itself. */
static void copy_outputs_out(const runner_t *r, const slot_layout_t *sl, uint8_t *outs, int dev_mem)
{
    size_t at = 0;
    for (int t = 0; t < sl->n_tensors; t++) {
        if (!sl->is_out[t])
            continue;
        size_t need = sl->bytes[t] + 2 * LAYOUT_GUARD;
        memcpy(outs + at, r->arena + (dev_mem ? sl->snap[t] : sl->off[t] - LAYOUT_GUARD), need);
        at += need;
    }
}

/* Device memory: the held-back cycle as candidate.c runs it (prep first;
 * then the write of a fresh set and, on one clock, its upload, the run and
 * the snap: the write and the worker's copy of the outputs are the
 * worker's own, which timing_held_charge takes off the candidate's side,
 * the copy up to a bound from calibrate_task's copy_p50); then runs back
 * to back, as the timed runs are.  Measured on the H100
 * (2026-12-06), an honest kernel's run right after its set's upload took
 * 0.07-0.4 ms longer than its back-to-back runs, more for larger sets,
 * while the kernel alone in one process showed 3-30 us
 * (bench/cold_run_probe.cu): the cost is the harness's, and the null
 * runner pays it too, in the same cycle.  A held-back set is then charged
 * its whole cycle less the null runner's, plus one back-to-back run (the
 * timed median it is compared with has one). */
static int calibrate_cycle(worker_ctx_t *w, const uint8_t *fresh, size_t slot_bytes, const char *range)
{
    runner_t *r = &w->null_run;
    const slot_layout_t *sl = &w->null_layout.slots[0];
    double cyc[CALIBRATE_CYCLES], cyc_run[CALIBRATE_CYCLES], warm[CALIBRATE_CYCLES];
    int rc = RUNNER_OK, k = 0;
    for (; k < CALIBRATE_CYCLES && rc == RUNNER_OK; k++) {
        rc = runner_prep(r, 0, 1);
        memcpy(r->arena + sl->begin, fresh, slot_bytes);
        r->arena[sl->begin + (size_t)k % (slot_bytes ? slot_bytes : 1)] ^= 0xa5;
        double t_written = clock_mono_s();
        if (rc == RUNNER_OK)
            rc = runner_cmd(r, NULL, 0, 0, "upload", range);
        run_result_t res;
        memset(&res, 0, sizeof res);
        double t_run = clock_mono_s();
        if (rc == RUNNER_OK)
            rc = runner_run(r, 0, &res);
        double t_ran = clock_mono_s();
        if (rc == RUNNER_OK)
            rc = runner_snap(r, 0);
        cyc[k] = (clock_mono_s() - t_written) * 1e9;
        cyc_run[k] = (t_ran - t_run) * 1e9;
    }
    int kw = 0;
    for (; kw < CALIBRATE_CYCLES && rc == RUNNER_OK; kw++) {
        run_result_t res;
        memset(&res, 0, sizeof res);
        rc = runner_prep(r, 0, 1);
        if (rc == RUNNER_OK)
            rc = runner_run(r, 0, &res);
        warm[kw] = res.outside_ns;
    }
    if (rc != RUNNER_OK)
        return rc;
    w->calib.cycle_p50 = stats_quantile(cyc, k, 0.5);
    w->calib.cycle_run_p50 = stats_quantile(cyc_run, k, 0.5);
    w->calib.warm_run_p50 = stats_quantile(warm, kw, 0.5);
    return RUNNER_OK;
}

int calibrate_task(worker_ctx_t *w, char *err, size_t n)
{
    memset(&w->calib, 0, sizeof w->calib);
    if (start_null(w, err, n) != 0)
        return -1;
    int dev_mem = w->backend->device_memory;   /* upload and snap are part of a cycle */
    runner_t *r = &w->null_run;
    double over[CALIBRATE_SAMPLES], outside[CALIBRATE_SAMPLES], prep[CALIBRATE_SAMPLES];
    double prep_cpu[CALIBRATE_SAMPLES], idle[CALIBRATE_SAMPLES], up[CALIBRATE_SAMPLES], snap[CALIBRATE_SAMPLES];
    double main_cpu[CALIBRATE_SAMPLES], proc_cpu[CALIBRATE_SAMPLES], copy[CALIBRATE_SAMPLES];
    const slot_layout_t *sl = &w->null_layout.slots[0];
    /* Like for like with a held-back run (candidate.c): the worker writes a
     * fresh set into the slot before the upload (the pages are then hot
     * in this process's caches, not the runner's: the copy to the device
     * costs more than a re-upload of untouched pages), and copies the
     * outputs out after the snap. */
    size_t slot_bytes = sl->end - sl->begin, out_bytes = 0;
    for (int t = 0; t < sl->n_tensors; t++)
        if (sl->is_out[t])
            out_bytes += sl->bytes[t] + 2 * LAYOUT_GUARD;
    uint8_t *fresh = malloc(slot_bytes ? slot_bytes : 1), *outs = malloc(out_bytes ? out_bytes : 1);
    if (!fresh || !outs) {
        free(fresh);
        free(outs);
        snprintf(err, n, "out of memory for the calibration");
        calibrate_stop(w);
        return -1;
    }
    for (size_t i = 0; i < slot_bytes; i++)
        fresh[i] = (uint8_t)(i * 131u + 7u);
    char range[64];
    snprintf(range, sizeof range, "%zu %zu", sl->begin, sl->end - sl->begin);
    int k = 0, rc = RUNNER_OK;
    double mark = runner_cpu_ns(r);
    for (; k < CALIBRATE_SAMPLES && rc == RUNNER_OK; k++) {
        up[k] = snap[k] = copy[k] = 0;
        fresh[k % (slot_bytes ? slot_bytes : 1)] ^= 0x5a;      /* a set it has not seen */
        memcpy(r->arena + sl->begin, fresh, slot_bytes);
        if (dev_mem) {
            rc = runner_cmd(r, NULL, 0, 0, "upload", range);
            up[k] = r->last_outside_ns;
        }
        double c0 = runner_cpu_ns(r);
        idle[k] = c0 >= 0 && mark >= 0 ? c0 - mark : 0;
        if (rc == RUNNER_OK)
            rc = runner_prep(r, 0, 1);
        prep[k] = r->last_outside_ns;
        double c1 = runner_cpu_ns(r);
        prep_cpu[k] = c1 >= 0 && c0 >= 0 ? c1 - c0 : 0;
        run_result_t res;
        memset(&res, 0, sizeof res);
        if (rc == RUNNER_OK)
            rc = runner_run(r, 0, &res);
        over[k] = res.outside_ns - res.elapsed_ns;
        outside[k] = res.outside_ns;
        main_cpu[k] = res.cpu_thread_ns;
        proc_cpu[k] = res.cpu_proc_ns;
        if (rc == RUNNER_OK && dev_mem) {
            rc = runner_snap(r, 0);
            snap[k] = r->last_outside_ns;
        }
        double t0 = clock_mono_s();
        if (rc == RUNNER_OK)
            copy_outputs_out(r, sl, outs, dev_mem);
        copy[k] = (clock_mono_s() - t0) * 1e9;
        mark = runner_cpu_ns(r);
    }
    if (dev_mem && rc == RUNNER_OK)
        rc = calibrate_cycle(w, fresh, slot_bytes, range);
    free(fresh);
    free(outs);
    if (rc != RUNNER_OK) {
        snprintf(err, n, "the null runner failed: %.400s", r->msg);
        calibrate_stop(w);
        return -1;
    }
    size_t flush = r->flush_bytes ? r->flush_bytes : 1;
    calib_t *c = &w->calib;
    c->samples = k;
    c->run_overhead_p50 = stats_quantile(over, k, 0.5);
    c->run_overhead_p90 = stats_quantile(over, k, 0.9);
    c->run_outside_p50 = stats_quantile(outside, k, 0.5);
    c->prep_wall_p50 = stats_quantile(prep, k, 0.5);
    c->prep_cpu_per_byte = dev_mem ? 0 : stats_quantile(prep_cpu, k, 0.5) / (double)flush;
    c->idle_cpu_p90 = stats_quantile(idle, k, 0.9);
    c->upload_p50 = stats_quantile(up, k, 0.5);
    c->snap_p50 = stats_quantile(snap, k, 0.5);
    c->copy_p50 = stats_quantile(copy, k, 0.5);
    c->main_cpu_p90 = stats_quantile(main_cpu, k, 0.9);
    c->proc_cpu_p50 = stats_quantile(proc_cpu, k, 0.5);
    c->proc_cpu_p90 = stats_quantile(proc_cpu, k, 0.9);
    c->forge_bound_ns = timing_forge_bound(c->run_overhead_p50, dev_mem);
    c->ok = 1;
    return 0;
}

double calibrate_sample(worker_ctx_t *w, double *proc_ns, double *snap_ns)
{
    if (proc_ns)
        *proc_ns = -1;
    if (snap_ns)
        *snap_ns = -1;
    char err[512];
    if (!w->null_alive || w->null_run.dead) {
        if (start_null(w, err, sizeof err) != 0)
            return -1;
    }
    /* Device memory: prepared as the candidate's timed run is (poison,
     * the queued L2 flush, a synchronisation), so that the run pays what
     * the candidate's run pays and no more.  Sampled bare, the null run
     * was the first GPU work of its context after the candidate's, and
     * paid the switch between the two contexts: on the H100 (2026-12-06)
     * its gap was 250-490 us against honest kernels' 120-310 us, and the
     * forged-time bound, 1.5x it, let an event-timing forgery through
     * (tests/kernels/cuda/forges_event_timing.cu, gap 609 us). */
    if (w->backend->device_memory && runner_prep(&w->null_run, 0, 1) != RUNNER_OK)
        return -1;
    run_result_t res;
    if (runner_run(&w->null_run, 0, &res) != RUNNER_OK)
        return -1;
    if (proc_ns)
        *proc_ns = res.cpu_proc_ns;
    /* Device memory: and its snap, as the candidate's timed run is
     * followed by one (timing.c counts the snap against the kernel). */
    if (snap_ns && w->backend->device_memory && runner_snap(&w->null_run, 0) == RUNNER_OK)
        *snap_ns = runner_last_own_ns(&w->null_run);
    return res.outside_ns - res.elapsed_ns;
}
