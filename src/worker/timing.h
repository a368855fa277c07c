/*
 * timing.h -- the timing policy: what a kernel's time is, and when a time
 * cannot be believed.  docs/SECURITY.md gives the measurements behind each
 * bound.
 *
 *   warm-up   2 runs (cuda 3) on the timing sets, checked, not counted;
 *   reps      as many as fit 1 s (cuda 0.3 s), 5..50 (cuda 20..200),
 *             alternating at random between two sets the kernel had never
 *             seen before timing began, every output checked on a sample;
 *   forged    the kernel's reported time must be explained by what the
 *             worker sees itself: (a) its own clock around the run command:
 *             invalid when the median of (outside - reported) over the timed
 *             runs exceeds TIMING_FORGE_FACTOR x the median of the same gap
 *             on the null runner, sampled between the timed runs (the load
 *             of the moment), + TIMING_FORGE_CONST_NS, + a share of the
 *             reported time for the worker's own wake-up after a long call
 *             (TIMING_WALL_SLACK); the time the worker's thread itself
 *             waited for a core during the command is taken out of its clock
 *             first (a loaded machine delays its wake-up by whole scheduler
 *             slices) -- a verdict everywhere: on the CPU, (b) cannot see
 *             work done in threads that end within the call;
 *             (b) cpu: the runner's CPU clocks read from here, which no load
 *             inflates: none of its threads can have used more CPU during a
 *             call than the call took, nor all of them more than the call
 *             times the cores (median over the runs, slack
 *             TIMING_CPU_SLACK_FACTOR x the null runner's own +
 *             TIMING_CPU_SLACK_NS);
 *   roofline  invalid when the time implies more than TIMING_ROOFLINE_MAX
 *             percent of the measured roofline (measured again first: a
 *             measurement taken under load comes out low);
 *   held-back up to N_HELD fresh sets, each drawn and answered before the
 *             candidate started, each shown once, timed from the moment
 *             its inputs appear to the moment its outputs are copied out:
 *             valid once one of them takes at most TIMING_HELD_NOISE
 *             (relative) + TIMING_HELD_CONST_NS over the median of the
 *             timed runs (same clock; on the runner's CPU clock the
 *             relative part of the median's share above the null runner's
 *             and TIMING_HELD_CONST_CPU_NS); a kernel fast only on inputs
 *             it has seen fails all three;
 *   outside   (cpu) the runner's CPU clock, read by the worker: CPU used
 *             between commands beyond the flush and an allowance is work
 *             outside the timed call.
 */
#ifndef EMILE_WORKER_TIMING_H
#define EMILE_WORKER_TIMING_H

#include <jansson.h>

#include "worker_internal.h"

#define TIMING_FORGE_FACTOR 3.0
#define TIMING_FORGE_CONST_NS 50e3
#define TIMING_WALL_SLACK 0.10
#define TIMING_CPU_SLACK_FACTOR 2.0
#define TIMING_CPU_SLACK_NS 100e3
#define TIMING_HELD_NOISE 0.30
#define TIMING_HELD_CONST_NS 100e3
/* On the runner's CPU clock (cpu) the median includes the runner's own
 * work per command (the null runner's: 37-86 us on this 2-core VM), so
 * the relative part applies to the kernel's share above it, and the
 * constant is what honest kernels' fresh sets showed beyond that: at
 * most +21 us over their median at S=64 (0.09 ms kernels), idle and beside
 * two busy processes, while content caches of such kernels took +59 us
 * or more (bench/held_back_cpu.sh, docs/SECURITY.md).  The wall clock
 * keeps TIMING_HELD_CONST_NS. */
#define TIMING_HELD_CONST_CPU_NS 30e3
#define TIMING_OUTSIDE_SHARE 0.25
#define TIMING_OUTSIDE_CONST_NS 300e3
#define TIMING_ROOFLINE_MAX 125.0
/* On a device the timed runs stop early once their median is known to
 * +-1% (95%), checked every 5 runs from 20 on; the budget's count stays
 * the most. */
#define TIMING_SETTLE_REL 0.01
#define TIMING_SETTLE_EVERY 5
#define TIMING_SETTLE_MIN_DEVICE 20
/* A backend whose kernels run in device memory (cuda): measured on an H100
 * (2026-12-06, docs/SECURITY.md), an honest kernel's outside gap was 0.65-
 * 0.98x the null runner's (6 kernels, 0.3-1 ms), so the forged-time bound
 * is much tighter there than on a loaded CPU; and the first run after a
 * set's upload ran 5-80% slower than the back-to-back timed runs (the SMs
 * idle during the copy), up to 0.26 ms, so the held-back allowance is
 * larger. */
#define TIMING_FORGE_FACTOR_DEVICE 1.5
#define TIMING_HELD_CONST_DEVICE_NS 300e3
/* A masked held-back set (device memory, a runner that unmasks): its run
 * is one run command, measured as the timed runs are, so the allowance is
 * the timed runs' own: their spread (p90 - median), a relative part for
 * the kernel's run-to-run noise, and a constant for what the first run on
 * fresh memory may cost beyond that.  The H100 figures behind them (stop
 * 23's held-back runs, each right after its own upload, no run between):
 * the held run's round trip minus the timed median was -3 to +39 us in 10
 * of 12 honest sets (0.17-0.40 ms kernels), +85 and +97 us in the other
 * two; a run on a seen set now comes between the upload and the held run,
 * and three sets are tried. */
#define TIMING_HELD_NOISE_MASKED 0.10
/* ... and the spread it adds at most this share of the median (honest
 * kernels on the H100, stop 24: 8-14 us over medians of 0.19-0.99 ms). */
#define TIMING_HELD_SPREAD_MAX 0.10
/* The snap after a timed run (device memory) against the null runner's of
 * the same bytes: up to twice it, + 50 us.  On the H100 (2026-12-06, stop
 * 24) honest kernels' snaps took 1.1-1.4x the null runner's, and rung 7's
 * 16 MB at 1x2048 took 638 us against 341 (its timed runs alternate two
 * slots, the null runner snaps one), which 15% rejected. */
#define TIMING_SNAP_NOISE 1.0
#define TIMING_SNAP_CONST_NS 50e3
#define TIMING_HELD_CONST_MASKED_NS 50e3

/* The forged-time bound for a yardstick overhead (ns); device_memory: the
 * backend's kernels run in device memory (the tighter factor). */
double timing_forge_bound(double overhead_p50_ns, int device_memory);

/* The median over n runs of (outside - reported), ns. */
double timing_median_gap(const double *reported, const double *outside, int n);

/* The most a held-back run may take, given the timed runs' median on the
 * same clock (ns). */
double timing_held_limit(double median_ns, int device_memory);

/* The same for a masked held-back set: median_ns and p90_ns of the timed
 * runs' round trips (ns); the spread (p90 - median) counts up to
 * TIMING_HELD_SPREAD_MAX of the median. */
double timing_held_limit_masked(double median_ns, double p90_ns);

/* The same on the runner's CPU clock: median_ns the timed runs' median
 * runner CPU a run, harness_ns the null runner's (its share of that
 * median): median + TIMING_HELD_NOISE x (median - harness) +
 * TIMING_HELD_CONST_CPU_NS. */
double timing_held_limit_cpu(double median_ns, double harness_ns);

/* One held-back set's exposure on the worker's clock, in its parts (ns):
 * from the set's write to the outputs' copy, the worker's write of the
 * set, and the transfers and the copy out within it. */
typedef struct held_parts {
    double total, write, upload, snap, copy_out;
} held_parts_t;

/* What of a held-back set's exposure is the kernel's (ns), to compare with
 * timing_held_limit: the total less the worker's own write, and less what
 * the null runner (c) showed the harness costs -- on device memory with
 * its held-back cycle calibrated, the worker's copy out and that whole
 * cycle (upload, run, snap) less one back-to-back run (the timed median
 * holds one); else each transfer and the copy out up to the null
 * runner's cost of it, never more. */
double timing_held_charge(const held_parts_t *p, const calib_t *c, int device_memory);

/* The median over n runs of (used - allowed_per_run * scale), ns: how far
 * a CPU reading exceeds what the reported time allows. */
double timing_median_excess(const double *used, const double *reported, double scale, int n);

/* Warm-up, timed runs, the trust checks and the held-back sets, all with
 * the device held exclusively (device_turn.h: no other worker of this host
 * times, validates or, on a host device, compiles on it meanwhile); on
 * success the report is in e->reply ("report") and 0 is returned, else
 * the status is set and -1 returned. */
int timing_run(eval_state_t *e, const json_t *options, json_t *kernels);

#endif
