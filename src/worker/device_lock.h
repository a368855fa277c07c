/*
 * device_lock.h -- one timed kernel at a time per device, across every
 * worker process of a host.
 *
 * Several workers share a device when a pool runs them on one host (four
 * CPU workers, or workers whose GPUs are the same card).  Compiling and
 * validating may overlap; timing may not: two kernels timed at once on one
 * GPU, or a compile running beside a kernel timed on the CPU's cores, both
 * make the figure a lie.  So:
 *
 *   - timing holds the device's lock exclusively;
 *   - on the CPU, compiling holds it shared (compiles overlap each other,
 *     never a timing); on a GPU, compiling takes nothing (a host compile
 *     does not disturb a kernel timed on the card).
 *
 * The lock is flock(2) on a file named after the device's key, in a
 * directory private to the user ($XDG_RUNTIME_DIR/emile-locks, else
 * /tmp/emile-locks-UID, 0700): the kernel drops it when its holder dies, so
 * a crashed worker never leaves a device locked.  A waiting exclusive
 * holder goes first: new shared holders queue behind it (a turnstile file),
 * so a stream of compiles cannot starve the timer.
 *
 * The key must name the physical device: for the CPU its host; for a GPU
 * its PCI bus id or UUID (workers with different CUDA_VISIBLE_DEVICES all
 * see "device 0").
 */
#ifndef EMILE_WORKER_DEVICE_LOCK_H
#define EMILE_WORKER_DEVICE_LOCK_H

#include <stddef.h>

typedef enum device_lock_mode {
    DEVICE_LOCK_SHARED,        /* compiling on the CPU */
    DEVICE_LOCK_EXCLUSIVE      /* timing */
} device_lock_mode_t;

typedef struct device_lock {
    int fd;                    /* the lock file */
    int turn_fd;               /* the turnstile */
    int held;                  /* 0, or the mode held + 1 */
    char path[1024];
} device_lock_t;

/* Open the lock of device_key in dir (NULL: the default above, created).
 * 0, or -1 with err. */
int device_lock_open(device_lock_t *l, const char *device_key, const char *dir, char *err, size_t n);
/* Take it in mode, waiting up to timeout_s (< 0: as long as it takes).
 * 0; 1 at the timeout (err says who waited how long); -1 with err. */
int device_lock_acquire(device_lock_t *l, device_lock_mode_t mode, double timeout_s, char *err,
                        size_t n);
/* Say who holds it (an exclusive holder: "pid 123: timing k.c"), for
 * whoever waits; release clears it.  The file holds it, not the lock:
 * best effort, never a reason to fail. */
void device_lock_describe(device_lock_t *l, const char *holder);
/* What the exclusive holder said (empty when the holders are shared, or
 * said nothing) into buf. */
void device_lock_holder(const device_lock_t *l, char *buf, size_t len);
void device_lock_release(device_lock_t *l);
void device_lock_close(device_lock_t *l);

/* The default directory into buf (created 0700); 0 or -1 with err. */
int device_lock_dir(char *buf, size_t len, char *err, size_t n);

#endif
