/*
 * device_turn.h -- a worker's turn on its device: the device lock
 * (device_lock.h) taken for one phase of an evaluation, the wait shown as
 * progress, and each window held written to a trace file for tests.
 *
 * Which phase takes what (docs/BENCHMARKS.md, "Candidates a minute"):
 *   - timing (warm-up, timed and held-back runs, a re-measure of the
 *     ceilings, hardware counters, a PyTorch reference's eager timing):
 *     exclusive, on every kind of device;
 *   - running kernels that are not timed (validation, the reference
 *     answering the input sets): shared, on every kind of device (a
 *     kernel validated beside a timed one disturbs it on a GPU as on the
 *     CPU);
 *   - compiling and building the reference: shared on a host device
 *     (the compiler takes the cores the kernel is timed on), nothing on a
 *     GPU (a host compile does not disturb a kernel timed on the card).
 *
 * The key names the physical device: a GPU's PCI bus id (or UUID) from
 * the device object, so workers with different CUDA_VISIBLE_DEVICES that
 * see the same card as "device 0" share one lock, and workers on two cards
 * do not; a host device is its host.
 *
 * EMILE_DEVICE_LOCK=off turns the lock off (one worker per device needs
 * none); EMILE_DEVICE_LOCK_DIR puts the lock files elsewhere than
 * device_lock_dir's default (a test's own); EMILE_DEVICE_LOCK_TRACE=FILE appends one JSON line per window
 * held ({"pid","key","mode","what","t0","t1","locked"}, CLOCK_MONOTONIC
 * seconds; with the lock off the phases are traced all the same):
 * the worker's own file, never reachable by a kernel, for tests and for
 * whoever wants to see the device's timeline.
 */
#ifndef EMILE_WORKER_DEVICE_TURN_H
#define EMILE_WORKER_DEVICE_TURN_H

#include <jansson.h>
#include <stddef.h>

#include "worker/device_lock.h"

/* How a wait is shown: phase "wait" and its words, then, once the device
 * is ours, the phase that waited again. */
typedef void (*device_turn_progress_fn)(void *user, const char *phase, const char *detail);

#define DEVICE_TURN_MAX_WAIT_S 3600.0

typedef struct device_turn {
    int state;                 /* 0 not set up, 1 ready */
    int locking;               /* the lock is open (not EMILE_DEVICE_LOCK=off, not unusable) */
    int host;                  /* a host device: compiles take the lock too */
    char key[256];
    device_lock_t lock;
    int depth;                 /* nested takes of the mode held */
    device_lock_mode_t mode;
    char what[160];
    double t0;
    device_turn_progress_fn progress;
    void *progress_user;
} device_turn_t;

/* What a phase is, for the lock's mode. */
typedef enum device_phase {
    DEVICE_PHASE_COMPILE,      /* shared on a host device, nothing on a GPU */
    DEVICE_PHASE_RUN,          /* shared */
    DEVICE_PHASE_TIME          /* exclusive */
} device_phase_t;

/* The lock's key for a device object (docs/PROTOCOL.md): "pci:<bus id>"
 * or "uuid:<uuid>" where it names one, else "host:<hostname>" (a GPU
 * without either: every GPU of the host shares one lock, slower but
 * never wrong). */
void device_turn_key(const json_t *device, char *buf, size_t n);

/* Ready t for the device (again when the device changed); host: a host
 * device.  A lock that cannot be opened is left off with a warning on
 * stderr (the evaluation goes on, unserialised). */
void device_turn_setup(device_turn_t *t, const json_t *device, int host, device_turn_progress_fn progress,
                       void *user);

/* Take the device for phase (what: "timing v3.c", shown to whoever
 * waits; shown_phase: the progress phase to show again after a wait).
 * Nested takes of the mode held count; a phase that takes nothing here
 * returns 0 without holding.  0, or -1 with err (the wait passed
 * DEVICE_TURN_MAX_WAIT_S, or the lock failed). */
int device_turn_take(device_turn_t *t, device_phase_t phase, const char *shown_phase, const char *what, char *err,
                     size_t n);
/* Give back what the matching take took. */
void device_turn_give(device_turn_t *t, device_phase_t phase);
void device_turn_close(device_turn_t *t);

#endif
