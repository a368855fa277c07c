/* timing.c -- see timing.h. */
#include "timing.h"

#include <math.h>
#include <sched.h>
#include <sys/random.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "backend/backend.h"
#include "profile/report.h"
#include "stats.h"
#include "util/clock.h"
#include "validate.h"

double timing_forge_bound(double overhead_p50_ns, int device_memory)
{
    return (device_memory ? TIMING_FORGE_FACTOR_DEVICE : TIMING_FORGE_FACTOR) *
               (overhead_p50_ns > 0 ? overhead_p50_ns : 0) +
           TIMING_FORGE_CONST_NS;
}

double timing_median_gap(const double *reported, const double *outside, int n)
{
    if (n <= 0)
        return 0;
    double *gap = malloc(sizeof(double) * (size_t)n);
    if (!gap)
        return 0;
    for (int i = 0; i < n; i++)
        gap[i] = outside[i] - reported[i];
    double m = stats_quantile(gap, n, 0.5);
    free(gap);
    return m;
}

double timing_held_limit(double median_ns, int device_memory)
{
    return median_ns * (1 + TIMING_HELD_NOISE) + (device_memory ? TIMING_HELD_CONST_DEVICE_NS : TIMING_HELD_CONST_NS);
}

double timing_held_limit_masked(double median_ns, double p90_ns)
{
    /* The spread is capped: a kernel can slow a tenth of its timed runs on
     * the outside clock alone (a wait before it returns) and so raise the
     * p90 at no cost to its median (the review's find). */
    double spread = p90_ns > median_ns ? p90_ns - median_ns : 0;
    if (spread > TIMING_HELD_SPREAD_MAX * median_ns)
        spread = TIMING_HELD_SPREAD_MAX * median_ns;
    return median_ns * (1 + TIMING_HELD_NOISE_MASKED) + spread + TIMING_HELD_CONST_MASKED_NS;
}

double timing_held_limit_cpu(double median_ns, double harness_ns)
{
    double own = median_ns - (harness_ns > 0 ? harness_ns : 0);
    return median_ns + TIMING_HELD_NOISE * (own > 0 ? own : 0) + TIMING_HELD_CONST_CPU_NS;
}

static double at_most(double x, double cap)
{
    return x < cap ? x : cap;
}

double timing_held_charge(const held_parts_t *p, const calib_t *c, int device_memory)
{
    /* Like for like (calibrate.c): the null runner's whole cycle is the
     * harness's.  The worker's write of the set and its copy of the
     * outputs are its own work on both sides.  Charging the copy bought
     * nothing: work racing ahead of it does not slow it (docs/SECURITY.md,
     * "What is left"), while the worker's own copy of 8-32 MB ran up to
     * 0.95 ms slower than the null runner's (H100, 2026-12-06), which
     * rejected honest kernels. */
    if (device_memory && c->cycle_p50 > 0) {
        /* The copy up to twice the null runner's + 0.5 ms (the slowest
         * measured: 1.6x, 1.07 ms against 0.66 for 8 MB; 1.3x, 4.49
         * against 3.54 for 32 MB); beyond that it is charged, so that
         * slowing the worker's copy is no place to hide work. */
        double copy = c->copy_p50 > 0 ? at_most(p->copy_out, 2 * c->copy_p50 + 0.5e6) : p->copy_out;
        return p->total - p->write - copy - (c->cycle_p50 - c->warm_run_p50);
    }
    double less = p->write + at_most(p->copy_out, c->copy_p50);
    if (device_memory)   /* transfers beyond their calibrated cost are the kernel's */
        less += at_most(p->upload, c->upload_p50) + at_most(p->snap, c->snap_p50);
    return p->total - less;
}

double timing_median_excess(const double *used, const double *reported, double scale, int n)
{
    if (n <= 0)
        return 0;
    double *x = malloc(sizeof(double) * (size_t)n);
    if (!x)
        return 0;
    for (int i = 0; i < n; i++)
        x[i] = used[i] - reported[i] * scale;
    double m = stats_quantile(x, n, 0.5);
    free(x);
    return m;
}

/* What one timing phase collected, per timed run. */
typedef struct samples {
    int n;
    double *el, *cpu, *out, *wait, *proc, *main, *null_gap, *null_proc;
    double *snap, *null_snap;  /* device memory: the snap after each run, the worker's clock */
    int cpu_ok;                /* the CPU readings mean something (cpu, passive threads) */
} samples_t;

static int samples_alloc(samples_t *s, int n)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    double **arrs[] = {&s->el,   &s->cpu,      &s->out,       &s->wait,     &s->proc,
                       &s->main, &s->null_gap, &s->null_proc, &s->snap,     &s->null_snap};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++)
        if (!(*arrs[i] = calloc((size_t)(n > 0 ? n : 1), sizeof(double))))
            return -1;
    return 0;
}

static void samples_free(samples_t *s)
{
    free(s->el);
    free(s->cpu);
    free(s->out);
    free(s->wait);
    free(s->proc);
    free(s->main);
    free(s->null_gap);
    free(s->null_proc);
    free(s->snap);
    free(s->null_snap);
}

static int online_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Sampled check of every output of the last run, in slot `slot` of the
 * arena (cand_run_sampled: not copied), against set s's expectation;
 * status set on failure. */
static int check_sampled(eval_state_t *e, int set, int slot, const char *what, int run_index)
{
    const input_set_t *is = &e->w->sets[set];
    const slot_layout_t *sl = &e->w->layout.slots[slot];
    char msg[512];
    for (int k = 0; k < sl->n_tensors; k++)
        if (sl->is_out[k] && validate_output_sampled(sl, k, cand_out_block(e, slot, k), is->expected[k],
                                                     is->pristine, e->tol, &e->w->rng, what, run_index, msg,
                                                     sizeof msg) != 0) {
            eval_set_status(e->reply, "invalid", msg);
            return -1;
        }
    return 0;
}

/* One timed run on set s; status set on failure. */
static int timed_once(eval_state_t *e, int set, const char *what, int i, run_result_t *res)
{
    int rc = cand_run_sampled(e, e->w->sets[set].slot, 1, res);
    if (rc != RUNNER_OK) {
        char when[64];
        snprintf(when, sizeof when, "%s run %d", what, i);
        eval_runner_failure(e, rc, when);
        return -1;
    }
    if (res->rc != 0) {
        char msg[300];
        const char *name = emile_status_str(res->rc);
        snprintf(msg, sizeof msg, "the kernel returned %d%s%s%s during a %s run", res->rc, name ? " (" : "",
                 name ? name : "", name ? ")" : "", what);
        eval_set_status(e->reply, "invalid", msg);
        return -1;
    }
    return check_sampled(e, set, e->w->sets[set].slot, what, i);
}

/* The held-back sets, one after another until one agrees with the timed
 * median.  On the runner's CPU clock when it tells (median_cpu > 0), else
 * on the wall clock; harness_ns: the null runner's CPU a run, sampled
 * between the timed runs (the CPU clock's share of the median that is the
 * harness's).  Fills held (the report's object); 0, or -1 with status. */
static int held_back(eval_state_t *e, double median_outside_ns, double median_cpu_ns, double harness_ns,
                     json_t *held)
{
    worker_ctx_t *w = e->w;
    int on_cpu = median_cpu_ns > 0;
    double median = on_cpu ? median_cpu_ns : median_outside_ns;
    double harness = on_cpu ? harness_ns : 0;
    double limit = on_cpu ? timing_held_limit_cpu(median, harness) : timing_held_limit(median, e->cuda);
    json_t *times = json_array(), *cpus = json_array(), *parts = json_array();
    json_object_set_new(held, "clock", json_string(on_cpu ? "runner cpu" : "worker wall"));
    /* Each set's exposed time in its parts, and what the null runner's
     * transfers cost (subtracted up to that much). */
    json_object_set_new(held, "parts_ms", parts);
    json_object_set_new(held, "null_upload_ms", json_real(w->calib.upload_p50 * 1e-6));
    if (e->cuda)
        json_object_set_new(held, "transfers", json_string(e->cand.pinned && w->null_run.pinned ? "pinned" : "pageable"));
    json_object_set_new(held, "null_snap_ms", json_real(w->calib.snap_p50 * 1e-6));
    json_object_set_new(held, "null_copy_ms", json_real(w->calib.copy_p50 * 1e-6));
    json_object_set_new(held, "null_run_ms", json_real(w->calib.run_outside_p50 * 1e-6));
    if (on_cpu)
        json_object_set_new(held, "null_proc_cpu_ms", json_real(harness * 1e-6));
    if (w->calib.cycle_p50 > 0) {
        /* The null runner's held-back cycle (calibrate.c), charged instead
         * of its parts. */
        json_object_set_new(held, "null_cycle_ms", json_real(w->calib.cycle_p50 * 1e-6));
        json_object_set_new(held, "null_cycle_run_ms", json_real(w->calib.cycle_run_p50 * 1e-6));
        json_object_set_new(held, "null_warm_run_ms", json_real(w->calib.warm_run_p50 * 1e-6));
    }
    json_object_set_new(held, "times_ms", times);
    json_object_set_new(held, "cpu_ms", cpus);
    json_object_set_new(held, "limit_ms", json_real(limit * 1e-6));
    json_object_set_new(held, "median_ms", json_real(median * 1e-6));
    for (int h = 0; h < N_HELD; h++) {
        char detail[64];
        snprintf(detail, sizeof detail, "fresh set %d of %d", h + 1, N_HELD);
        eval_progress(e, "held_back", detail, h + 1, N_HELD);
        /* First a decoy in the held slot's memory with inputs the kernel
         * has already seen: pages, TLB and threads are warm for the real
         * run, so an honest kernel pays no first-touch cost there; a cache
         * hits on it and learns nothing about the held-back inputs. */
        run_result_t res;
        int rc = cand_show_in(e, SET_TIMING, SLOT_HELD);
        if (rc == RUNNER_OK)
            rc = cand_run_sampled(e, SLOT_HELD, 1, &res);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, "held-back decoy run");
            return -1;
        }
        if (res.rc != 0 || check_sampled(e, SET_TIMING, SLOT_HELD, "held-back decoy", h) != 0) {
            if (res.rc != 0)
                eval_set_status(e->reply, "invalid", "the kernel returned an error on the held-back decoy");
            return -1;
        }
        int set = SET_HELD0 + h;
        double exposed = 0;
        rc = cand_run_exposed(e, set, &res, &exposed);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, "held-back run");
            return -1;
        }
        if (res.rc != 0) {
            eval_set_status(e->reply, "invalid", "the kernel returned an error on a held-back set");
            return -1;
        }
        const slot_layout_t *sl = &w->layout.slots[SLOT_HELD];
        char msg[512];
        for (int k = 0; k < sl->n_tensors; k++)
            if (sl->is_out[k] && validate_output(sl, k, e->out[k], w->sets[set].expected[k], w->sets[set].pristine,
                                                 e->tol, "held-back", e->checks, &e->max_err, msg, sizeof msg) != 0) {
                eval_set_status(e->reply, "invalid", msg);
                return -1;
            }
        json_array_append_new(times, json_real(exposed * 1e-6));
        json_array_append_new(parts, json_pack("{sfsfsfsfsfsf}", "upload", e->exposed_parts_ns[0] * 1e-6, "run",
                                               e->exposed_parts_ns[1] * 1e-6, "snap", e->exposed_parts_ns[2] * 1e-6,
                                               "copy", e->exposed_parts_ns[3] * 1e-6, "run_outside",
                                               e->exposed_parts_ns[4] * 1e-6, "run_reported",
                                               e->exposed_parts_ns[5] * 1e-6));
        json_array_append_new(cpus, json_real(e->exposed_cpu_ns * 1e-6));
        double took = on_cpu ? e->exposed_cpu_ns : exposed;
        if (took <= limit) {
            json_object_set_new(held, "ms", json_real(exposed * 1e-6));
            json_object_set_new(held, "sets_tried", json_integer(h + 1));
            return 0;
        }
    }
    char msg[700], noise[160];
    if (on_cpu)
        snprintf(noise, sizeof noise, "%.0f%% of its share above the harness's own %.4g ms, + %.0f us",
                 TIMING_HELD_NOISE * 100, harness * 1e-6, TIMING_HELD_CONST_CPU_NS * 1e-3);
    else
        snprintf(noise, sizeof noise, "%.0f%% + %.0f us", TIMING_HELD_NOISE * 100,
                 (e->cuda ? TIMING_HELD_CONST_DEVICE_NS : TIMING_HELD_CONST_NS) * 1e-3);
    snprintf(msg, sizeof msg,
             "held-back: on each of %d input sets it had never seen, the kernel took more than %.4g ms of %s (the "
             "timed runs' median of %.4g ms on inputs it had seen, plus the run-to-run noise bound of %s): it is "
             "fast only on inputs it has seen before (a cache?)",
             N_HELD, limit * 1e-6, on_cpu ? "the runner's CPU" : "the worker's clock", median * 1e-6, noise);
    eval_set_status(e->reply, "invalid", msg);
    return -1;
}

/* A held-back set's key: from getrandom, never from the worker's generator
 * (a task with a seed makes that one reproducible); never 0, 0. */
static void held_key(worker_ctx_t *w, keystream_key_t *key)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        k[0] = rng_next(&w->rng) ^ (uint64_t)clock_mono_s();
        k[1] = rng_next(&w->rng);
    }
    key->k0 = k[0] | 1;
    key->k1 = k[1];
}

/* The held-back sets on device memory, masked (docs/SECURITY.md, "Masked
 * held-back sets"): each fresh set is written XORed with a keystream and
 * uploaded, a timed-style run on a set the kernel has seen follows (the
 * first run after an upload pays what the harness's transfer left behind,
 * as the timed runs after their sets' uploads did), then the held slot's
 * run, whose command alone removes the mask on the device and runs the
 * kernel.  Every run on device memory does that pass (key 0 changes
 * nothing), so the held-back run is measured exactly as a timed run is:
 * the worker's clock around one run command, no transfer inside.  It may
 * take TIMING_HELD_NOISE_MASKED of the timed runs' median over their
 * median, plus their own spread (p90 - p50) and TIMING_HELD_CONST_MASKED_NS.
 * 0, or -1 with status. */
static int held_back_masked(eval_state_t *e, const double *out, int reps, json_t *held)
{
    worker_ctx_t *w = e->w;
    double median = stats_quantile(out, reps, 0.5), p90 = stats_quantile(out, reps, 0.9);
    double limit = timing_held_limit_masked(median, p90);
    json_t *times = json_array(), *parts = json_array();
    json_object_set_new(held, "clock", json_string("worker wall, one run command (masked set)"));
    json_object_set_new(held, "transfers", json_string(e->cand.pinned ? "pinned" : "pageable"));
    json_object_set_new(held, "times_ms", times);
    json_object_set_new(held, "parts_ms", parts);
    json_object_set_new(held, "median_ms", json_real(median * 1e-6));
    json_object_set_new(held, "p90_ms", json_real(p90 * 1e-6));
    json_object_set_new(held, "limit_ms", json_real(limit * 1e-6));
    for (int h = 0; h < N_HELD; h++) {
        char detail[64];
        snprintf(detail, sizeof detail, "fresh set %d of %d (masked)", h + 1, N_HELD);
        eval_progress(e, "held_back", detail, h + 1, N_HELD);
        int set = SET_HELD0 + h;
        keystream_key_t key;
        held_key(w, &key);
        int rc = cand_show_masked(e, set, SLOT_HELD, key);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, "held-back upload");
            return -1;
        }
        run_result_t res;
        if (timed_once(e, SET_TIMING, "held-back decoy", h, &res) != 0)
            return -1;
        double decoy = res.outside_ns - res.wait_ns;
        rc = cand_run_masked(e, SLOT_HELD, key, &res);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, "held-back run");
            return -1;
        }
        if (res.rc != 0) {
            eval_set_status(e->reply, "invalid", "the kernel returned an error on a held-back set");
            return -1;
        }
        const slot_layout_t *sl = &w->layout.slots[SLOT_HELD];
        char msg[512];
        for (int k = 0; k < sl->n_tensors; k++)
            if (sl->is_out[k] && validate_output(sl, k, e->out[k], w->sets[set].expected[k], w->sets[set].pristine,
                                                 e->tol, "held-back", e->checks, &e->max_err, msg, sizeof msg) != 0) {
                eval_set_status(e->reply, "invalid", msg);
                return -1;
            }
        double took = res.outside_ns - res.wait_ns;
        json_array_append_new(times, json_real(took * 1e-6));
        json_array_append_new(parts, json_pack("{sfsfsf}", "decoy_run", decoy * 1e-6, "run_reported",
                                               res.elapsed_ns * 1e-6, "snap", e->last_snap_ns * 1e-6));
        if (took <= limit) {
            json_object_set_new(held, "ms", json_real(took * 1e-6));
            json_object_set_new(held, "sets_tried", json_integer(h + 1));
            return 0;
        }
    }
    char msg[700];
    snprintf(msg, sizeof msg,
             "held-back: on each of %d input sets it had never seen (masked until the run), the kernel's run took "
             "more than %.4g ms of the worker's clock (the timed runs' median of %.4g ms on inputs it had seen, "
             "+%.0f%%, + their spread to p90 of %.0f us, + %.0f us): it is fast only on inputs it has seen before "
             "(a cache, or work done between runs?)",
             N_HELD, limit * 1e-6, median * 1e-6, TIMING_HELD_NOISE_MASKED * 100, (p90 - median) * 1e-3,
             TIMING_HELD_CONST_MASKED_NS * 1e-3);
    eval_set_status(e->reply, "invalid", msg);
    return -1;
}

/* judge_timed's (a'): 0, or -1 with msg. */
static int judge_snap(eval_state_t *e, json_t *trust, const samples_t *s, double null_gap, double bound, char *msg,
                      size_t n)
{
    int reps = s->n, k = 0;
    double *ns = malloc(sizeof(double) * (size_t)(reps > 0 ? reps : 1));
    double *tot = malloc(sizeof(double) * (size_t)(reps > 0 ? reps : 1));
    if (!ns || !tot) {
        free(ns);
        free(tot);
        return 0;
    }
    for (int i = 0; i < reps; i++)
        if (s->null_snap[i] >= 0)
            ns[k++] = s->null_snap[i];
    for (int i = 0; i < reps; i++)
        tot[i] = s->out[i] + s->snap[i] - s->el[i];
    int ret = 0;
    if (k > reps / 2 && reps > 0) {
        double null_snap = stats_quantile(ns, k, 0.5), snap = stats_quantile(s->snap, reps, 0.5);
        double with_snap = stats_quantile(tot, reps, 0.5);
        double allowed = bound + null_snap * (1 + TIMING_SNAP_NOISE) + TIMING_SNAP_CONST_NS;
        json_object_set_new(trust, "snap_median_us", json_real(snap * 1e-3));
        json_object_set_new(trust, "null_snap_us", json_real(null_snap * 1e-3));
        json_object_set_new(trust, "gap_with_snap_us", json_real(with_snap * 1e-3));
        json_object_set_new(trust, "gap_with_snap_bound_us", json_real(allowed * 1e-3));
        if (with_snap > allowed) {
            snprintf(msg, n,
                     "the kernel's work went on after its run returned: the run's gap (%.0f us, null runner %.0f) "
                     "and the snap of its outputs right after (median %.0f us, the null runner's %.0f) add up to "
                     "%.0f us beyond its reported time (bound %.0f us)",
                     stats_quantile(s->out, reps, 0.5) * 1e-3 - stats_quantile(s->el, reps, 0.5) * 1e-3,
                     null_gap * 1e-3, snap * 1e-3, null_snap * 1e-3, with_snap * 1e-3, allowed * 1e-3);
            ret = -1;
        }
    }
    free(ns);
    free(tot);
    return ret;
}

/* The trust section of the report, and the verdicts that need nothing
 * but the timed runs: a forged time, work outside the timed call, a time
 * beyond the roofline. */
static int judge_timed(eval_state_t *e, json_t *rep, json_t *trust, const samples_t *s)
{
    const calib_t *c = &e->w->calib;
    int reps = s->n;
    char msg[640];
    /* (a) The wall clock, against the null runner's gap of the moment. */
    double gap = timing_median_gap(s->el, s->out, reps);
    int n_null = 0;
    for (int i = 0; i < reps; i++)
        n_null += s->null_gap[i] >= 0;
    double null_gap = c->run_overhead_p50;
    if (n_null > reps / 2 && reps > 0) {
        double *g = malloc(sizeof(double) * (size_t)n_null);
        int k = 0;
        for (int i = 0; g && i < reps && k < n_null; i++)
            if (s->null_gap[i] >= 0)
                g[k++] = s->null_gap[i];
        null_gap = g ? stats_quantile(g, k, 0.5) : null_gap;
        free(g);
    }
    /* The worker's clock also holds its own wake-up after a call that long,
     * which a loaded machine delays by whole scheduler slices (5 ms and more
     * on a busy 2-core VM, docs/SECURITY.md): s->out has the time the
     * worker's thread waited for a core taken out (its schedstat run delay;
     * an upper bound on that wake-up, so an honest kernel's gap never grows
     * with the load), and a tenth of the time is allowed on top.  It is a
     * verdict on the CPU too: the CPU clocks alone cannot see work done in
     * a thread that ends within the call (in the process clock only, which
     * allows its CPU over the cores) -- tests/kernels/cpu/ephemeral_thread.c
     * reported a single-threaded kernel at 1/1.8 of its time on 2 cores,
     * and would have at 1/115 on 128. */
    double med_el = stats_quantile(s->el, reps, 0.5);
    double bound = (c->ok || n_null ? timing_forge_bound(null_gap, e->cuda) : timing_forge_bound(0, e->cuda) * 4) +
                   TIMING_WALL_SLACK * med_el;
    json_object_set_new(trust, "outside_median_ms", json_real(stats_quantile(s->out, reps, 0.5) * 1e-6));
    json_object_set_new(trust, "outside_gap_us", json_real(gap * 1e-3));
    json_object_set_new(trust, "null_runner_gap_us", json_real(null_gap * 1e-3));
    json_object_set_new(trust, "outside_gap_bound_us", json_real(bound * 1e-3));
    json_object_set_new(trust, "worker_wait_us", json_real(stats_quantile(s->wait, reps, 0.5) * 1e-3));
    json_object_set_new(trust, "outside_gap_verdict", json_boolean(1));
    if (gap > bound) {
        snprintf(msg, sizeof msg,
                 "the kernel's reported time is faster than the harness saw from outside: median %.4g ms reported, "
                 "%.4g ms outside, a gap of %.0f us where a runner without foreign code shows %.0f us (bound "
                 "%.0f us)",
                 stats_quantile(s->el, reps, 0.5) * 1e-6, stats_quantile(s->out, reps, 0.5) * 1e-6, gap * 1e-3,
                 null_gap * 1e-3, bound * 1e-3);
        eval_set_status(e->reply, "invalid", msg);
        return -1;
    }
    /* (a') Device memory: the snap of the outputs after each run is the
     * first command the kernel's work must be finished for (the worker
     * reads the outputs right after it).  A kernel that has the runner
     * answer "run" before its work is done (the runner's synchronisation
     * replaced, as forges_event_timing.cu replaces its timer) leaves that
     * work to the snap, which the run's clock does not see: so the run's
     * gap plus the snap's excess over the null runner's snap of the same
     * bytes, sampled between the same runs, is held to the same bound,
     * with TIMING_SNAP_NOISE of the null's snap for the DMA's own noise
     * (both arenas page-locked or both not: a pinned and a pageable copy
     * are not alike). */
    if (e->cuda && e->cand.pinned == e->w->null_run.pinned &&
        judge_snap(e, trust, s, null_gap, bound, msg, sizeof msg) != 0) {
        eval_set_status(e->reply, "invalid", msg);
        return -1;
    }
    /* (b) The runner's CPU clocks, read from here. */
    if (s->cpu_ok) {
        int cores = online_cores();
        double main_ex = timing_median_excess(s->main, s->el, 1, reps);
        double proc_ex = timing_median_excess(s->proc, s->el, cores, reps);
        double main_slack = TIMING_CPU_SLACK_FACTOR * c->main_cpu_p90 + TIMING_CPU_SLACK_NS;
        double proc_slack = TIMING_CPU_SLACK_FACTOR * c->proc_cpu_p90 + TIMING_CPU_SLACK_NS;
        json_object_set_new(trust, "cpu_main_excess_us", json_real(main_ex * 1e-3));
        json_object_set_new(trust, "cpu_main_slack_us", json_real(main_slack * 1e-3));
        json_object_set_new(trust, "cpu_all_excess_us", json_real(proc_ex * 1e-3));
        json_object_set_new(trust, "cpu_all_slack_us", json_real(proc_slack * 1e-3));
        if (main_ex > main_slack || proc_ex > proc_slack) {
            snprintf(msg, sizeof msg,
                     "the kernel's reported time is faster than the harness saw from outside: the runner's %s used "
                     "%.0f us more CPU per call (median) than the %.4g ms the call reportedly took allows%s (slack "
                     "%.0f us)",
                     main_ex > main_slack ? "busiest thread" : "threads", (main_ex > main_slack ? main_ex : proc_ex) * 1e-3,
                     stats_quantile(s->el, reps, 0.5) * 1e-6, main_ex > main_slack ? "" : " on this many cores",
                     (main_ex > main_slack ? main_slack : proc_slack) * 1e-3);
            eval_set_status(e->reply, "invalid", msg);
            return -1;
        }
    }
    double roof = json_number_value(json_object_get(rep, "roofline_pct"));
    if (roof > TIMING_ROOFLINE_MAX) {
        snprintf(msg, sizeof msg,
                 "the kernel's time implies %.0f%% of the measured roofline (%.4g GFLOP/s attainable): more than "
                 "the device can do (the ceilings' measurement allows %.0f%%); a faked time, or an op model that "
                 "undercounts",
                 roof, json_number_value(json_object_get(rep, "roofline_gflops")), TIMING_ROOFLINE_MAX);
        eval_set_status(e->reply, "invalid", msg);
        return -1;
    }
    return 0;
}

/* (cpu) CPU the runner used between commands, and in prep beyond its
 * flush: work outside the timed call. */
static int judge_outside(eval_state_t *e, json_t *trust, const samples_t *s, double cpu_outside, double cpu_prep,
                         int n_prep)
{
    const calib_t *c = &e->w->calib;
    double flush_cpu = c->prep_cpu_per_byte * (double)e->cand.flush_bytes;
    double extra_prep = cpu_prep - 1.5 * flush_cpu * n_prep;
    double outside = (cpu_outside + (extra_prep > 0 ? extra_prep : 0)) / s->n;
    double kernel = stats_quantile(s->proc, s->n, 0.5);
    double allowed = TIMING_OUTSIDE_SHARE * kernel + TIMING_OUTSIDE_CONST_NS;
    json_object_set_new(trust, "cpu_outside_ms_per_run", json_real(cpu_outside / s->n * 1e-6));
    json_object_set_new(trust, "cpu_prep_ms_per_run", json_real(n_prep ? cpu_prep / n_prep * 1e-6 : 0));
    json_object_set_new(trust, "cpu_flush_ms_expected", json_real(flush_cpu * 1e-6));
    json_object_set_new(trust, "cpu_outside_allowed_ms", json_real(allowed * 1e-6));
    if (!s->cpu_ok || outside <= allowed)
        return 0;
    char msg[512];
    snprintf(msg, sizeof msg,
             "work outside the timed call: the runner used %.3g ms of CPU per run between commands (beyond its cache "
             "flush), against %.3g ms inside the call; at most %.0f%% + %.0f us is allowed",
             outside * 1e-6, kernel * 1e-6, TIMING_OUTSIDE_SHARE * 100, TIMING_OUTSIDE_CONST_NS * 1e-3);
    eval_set_status(e->reply, "invalid", msg);
    return -1;
}

/* Ceilings measured on a loaded machine come out low (three measurements
 * of this 2-core VM's f32 peak under load: 35, 39 and 197 GFLOP/s): a time
 * beyond them is first answered by measuring them again; the device keeps
 * the higher of each ceiling.  1 when the ceilings rose. */
static int remeasure_ceilings(eval_state_t *e)
{
    worker_ctx_t *w = e->w;
    json_t *fresh = NULL;
    char err[512];
    eval_progress(e, "time", "faster than the ceilings allow: measuring them again", 0, 0);
    if (backend_device(e->b, 1, &fresh, err, sizeof err) != 0)
        return 0;
    json_t *old = json_object_get(w->device, "ceilings"), *neu = json_object_get(fresh, "ceilings");
    int rose = 0;
    const char *key;
    json_t *v;
    json_t *peak_old = json_object_get(old, "peak_gflops"), *peak_new = json_object_get(neu, "peak_gflops");
    json_object_foreach(peak_new, key, v) {
        if (json_number_value(v) > json_number_value(json_object_get(peak_old, key))) {
            json_object_set(peak_old, key, v);
            rose = 1;
        }
    }
    double bw_new = json_number_value(json_object_get(neu, "bandwidth_gbs"));
    if (bw_new > json_number_value(json_object_get(old, "bandwidth_gbs"))) {
        json_object_set_new(old, "bandwidth_gbs", json_real(bw_new));
        rose = 1;
    }
    json_decref(fresh);
    return rose;
}

/* The timed phase itself (timing_run holds the device for it). */
static int timed_phase(eval_state_t *e, const json_t *options, json_t *kernels)
{
    worker_ctx_t *w = e->w;
    eval_progress(e, "time", "showing two input sets it has never seen", 0, 0);
    const int sets[2] = {SET_TIMING, SET_TIMING2};
    for (int i = 0; i < 2; i++) {
        int rc = cand_show(e, sets[i]);
        if (rc != RUNNER_OK) {
            eval_runner_failure(e, rc, "upload");
            return -1;
        }
    }
    int warmup = e->cuda ? 3 : 2;
    double est = 0;
    run_result_t res;
    for (int i = 0; i < warmup; i++) {
        if (timed_once(e, sets[rng_next(&w->rng) & 1], "warm-up", i, &res) != 0)
            return -1;
        est = res.elapsed_ns;
    }
    int reps = (int)json_integer_value(json_object_get(options, "reps"));
    if (reps <= 0) {
        double budget_ns = (e->cuda ? 0.3 : 1.0) * 1e9;
        reps = est > 0 ? (int)(budget_ns / est) : 10;
        int lo = e->cuda ? 20 : 5, hi = e->cuda ? 200 : 50;
        reps = reps < lo ? lo : reps > hi ? hi : reps;
    }
    samples_t s;
    if (samples_alloc(&s, reps) != 0) {
        samples_free(&s);
        eval_set_status(e->reply, "error", "out of memory for the timings");
        return -1;
    }
    s.cpu_ok = !e->cuda && e->cand.omp_passive;
    e->cpu_outside_ns = e->cpu_prep_ns = 0;
    e->n_prep = 0;
    int escaped = 0, ret = -1;
    json_t *rep = NULL;
    /* On a device, unless the options fix the count, the runs stop once
     * their median is known to TIMING_SETTLE_REL (stats_median_settled),
     * checked every TIMING_SETTLE_EVERY runs from TIMING_SETTLE_MIN_DEVICE
     * on: a GPU kernel's event times settle within a few dozen runs, and
     * each run costs the device's exclusive turn milliseconds of harness
     * (issue 14).  The CPU keeps its count: its trust verdicts (the
     * runner's CPU clocks against its time) were set on that many runs. */
    int adaptive = e->cuda && json_integer_value(json_object_get(options, "reps")) <= 0;
    int settle_min = TIMING_SETTLE_MIN_DEVICE, settled = 0;
    for (int i = 0; i < reps; i++) {
        if (adaptive && i >= settle_min && i % TIMING_SETTLE_EVERY == 0 &&
            stats_median_settled(s.el, i, TIMING_SETTLE_REL)) {
            settled = 1;
            reps = i;
            break;
        }
        if (i % 10 == 0) {
            char detail[64];
            snprintf(detail, sizeof detail, "timed run %d of at most %d", i + 1, reps);
            eval_progress(e, "time", detail, i + 1, reps);
        }
        /* The null runner's gap now: the load of the moment. */
        s.null_gap[i] = calibrate_sample(w, &s.null_proc[i], &s.null_snap[i]);
        if (timed_once(e, sets[rng_next(&w->rng) & 1], "timed", i, &res) != 0)
            goto done;
        s.el[i] = res.elapsed_ns;
        s.cpu[i] = res.cpu_ns;
        /* The worker's clock less the time the worker itself waited for a
         * core (a loaded machine's wake-up delay, not the kernel's). */
        s.out[i] = res.outside_ns - res.wait_ns;
        s.wait[i] = res.wait_ns;
        s.proc[i] = res.cpu_proc_ns;
        s.main[i] = res.cpu_thread_ns;
        s.snap[i] = e->last_snap_ns;
        s.cpu_ok = s.cpu_ok && res.cpu_proc_ns >= 0 && res.cpu_thread_ns >= 0;
        escaped += res.escaped;
    }
    s.n = reps;
    double cpu_outside = e->cpu_outside_ns, cpu_prep = e->cpu_prep_ns;
    int n_prep = e->n_prep;
    int rc = cand_settle(e);
    if (rc != RUNNER_OK) {
        eval_runner_failure(e, rc, "after the timed runs");
        goto done;
    }
    profile_input_t in = {
        .backend = e->b->name,
        .device = w->device,
        .dtype = e->t->dtype,
        .flops = op_flops(&e->t->op, &e->t->params),
        .bytes = op_bytes(&e->t->op, &e->t->params, e->t->dtype),
        .elapsed_ns = s.el,
        .cpu_ns = e->cuda ? NULL : s.cpu,
        .reps = reps,
        .warmup = warmup,
        .escaped_runs = escaped,
        .max_err = e->max_err,
        .kernels = kernels,
        .counters = NULL,
    };
    rep = profile_report(&in);
    if (json_number_value(json_object_get(rep, "roofline_pct")) > TIMING_ROOFLINE_MAX && remeasure_ceilings(e)) {
        json_decref(rep);
        rep = profile_report(&in);
    }
    json_t *trust = json_object();
    json_object_set_new(rep, "trust", trust);
    json_object_set_new(trust, "cpu_clocks", json_boolean(s.cpu_ok));
    json_object_set_new(rep, "reps_settled", json_boolean(settled));
    if (!e->cuda)
        json_object_set_new(trust, "cache_flush",
                            json_pack("{sIss}", "bytes", (json_int_t)e->cand.flush_bytes, "source", e->cand.flush_source));
    if (judge_timed(e, rep, trust, &s) != 0)
        goto done;
    if (!e->cuda && judge_outside(e, trust, &s, cpu_outside, cpu_prep, n_prep) != 0)
        goto done;
    json_t *held = json_object();
    json_object_set_new(trust, "held_back", held);
    /* The null runner's CPU a run, sampled between the timed runs under
     * the same load (the value calibrated at task set-up, under other
     * workers' compiles, when no sample told). */
    int np = 0;
    for (int i = 0; i < reps; i++)
        if (s.null_proc[i] >= 0)
            s.null_proc[np++] = s.null_proc[i];
    double harness = np > 0 ? stats_quantile(s.null_proc, np, 0.5) : w->calib.proc_cpu_p50;
    if (e->cuda && e->cand.can_unmask ? held_back_masked(e, s.out, reps, held) != 0
                                       : held_back(e, stats_quantile(s.out, reps, 0.5),
                                                   s.cpu_ok ? stats_quantile(s.proc, reps, 0.5) : 0, harness, held) != 0)
        goto done;
    rc = cand_settle(e);
    if (rc != RUNNER_OK) {
        eval_runner_failure(e, rc, "after the held-back runs");
        goto done;
    }
    json_object_set(rep, "held_back_ms", json_object_get(held, "ms"));
    json_object_set(e->reply, "report", rep);
    ret = 0;
done:
    /* A rejection keeps the figures it was judged on (the trust section):
     * the user sees how far outside the bound the kernel was. */
    if (ret != 0 && rep && json_object_get(rep, "trust"))
        json_object_set(e->reply, "trust", json_object_get(rep, "trust"));
    json_decref(rep);
    samples_free(&s);
    return ret;
}

int timing_run(eval_state_t *e, const json_t *options, json_t *kernels)
{
    /* Exclusive: no other worker of this host times, validates or (on a
     * host device) compiles on this device meanwhile (device_turn.h). */
    const char *name = json_string_value(json_object_get(options, "source_name"));
    char what[300], err[1300];
    snprintf(what, sizeof what, "timing %.200s", name && *name ? name : "a kernel");
    if (device_turn_take(&e->w->turn, DEVICE_PHASE_TIME, "time", what, err, sizeof err) != 0) {
        eval_set_status(e->reply, "error", err);
        return -1;
    }
    int rc = timed_phase(e, options, kernels);
    device_turn_give(&e->w->turn, DEVICE_PHASE_TIME);
    return rc;
}
