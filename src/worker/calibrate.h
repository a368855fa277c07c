/*
 * calibrate.h -- the yardstick for the worker's outside clock: the same
 * command path (prep, run, snap, upload) on a runner that loaded no
 * foreign code (emile-runner --null: its kernel does nothing), measured on
 * this machine when a task is set up.  What a run costs beyond the kernel
 * -- the round trip on the control socket, the runner's bookkeeping, on
 * cuda the queued L2 flush and the device synchronisation -- is known
 * from it, so that the timing policy can tell a kernel's reported time
 * that the outside clock cannot explain.
 */
#ifndef EMILE_WORKER_CALIBRATE_H
#define EMILE_WORKER_CALIBRATE_H

#include <stddef.h>

#include "worker_internal.h"

/* Cycles measured (prep + run, and on cuda upload + snap of a set). */
#define CALIBRATE_SAMPLES 60
/* Device memory: held-back cycles mirrored, and back-to-back runs. */
#define CALIBRATE_CYCLES 15

/* Start the null runner of w's current task and measure the yardstick
 * into w->calib; the runner stays up (w->null_run) for calibrate_sample.
 * 0, or -1 with err (then the timing policy falls back to fixed bounds
 * and says so in the report). */
int calibrate_task(worker_ctx_t *w, char *err, size_t n);

/* One null run now: the gap between the outside clock and the reported
 * time, ns; < 0 when the null runner is not there (it is restarted once).
 * *proc_ns (when proc_ns): the null runner's CPU in that run, ns (< 0
 * when unknown); *snap_ns (device memory): the worker's clock around its
 * snap of the outputs after that run (< 0 when none). */
double calibrate_sample(worker_ctx_t *w, double *proc_ns, double *snap_ns);

void calibrate_stop(worker_ctx_t *w);

#endif
