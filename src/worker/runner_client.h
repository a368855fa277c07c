/* runner_client.h -- the worker's side of the runner protocol (see
 * src/runner/runner_main.c): start a runner for one kernel (or none: the
 * null runner) with its own shared arena, send commands with fresh nonces,
 * and read replies strictly: the right nonce, exactly the fields the
 * command has, nothing after them, and nothing else waiting on the socket.
 * Anything else is a line the runner did not write: the kernel wrote to
 * the control socket, and the runner is killed.
 *
 * The runner shares its address space with the kernel, so nothing it says
 * is taken on trust: runner_cmd times every command with the worker's own
 * clock (runner_t.last_outside_ns) and runner_cpu_ns reads the runner's CPU
 * clock from here. */
#ifndef EMILE_RUNNER_CLIENT_H
#define EMILE_RUNNER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "sandbox/sandbox.h"
#include "util/keystream.h"

typedef struct runner {
    sandbox_proc_t proc;
    int arena_fd;
    uint8_t *arena;
    size_t arena_bytes;
    double timeout_s;
    int seccomp;                 /* the filter is on */
    int landlock;                /* its Landlock ABI in effect, 0 none */
    int uid;                     /* the uid the kernel runs as */
    int pinned;                  /* its host arena is page-locked (direct DMA transfers) */
    int can_unmask;              /* it takes "run SLOT KEY" (a masked held-back set) */
    int unmask_pass;             /* device memory: every run sends a key (0: no mask) */
    size_t flush_bytes;          /* the cache-flush buffer and how it was sized */
    char flush_source[200];
    int omp_passive;             /* OpenMP threads sleep between regions (the harness's default) */
    int cpu_clock_ok;            /* cpu_clock is the runner's process CPU clock */
    long cpu_clock;              /* (a clockid_t) */
    double last_outside_ns;      /* the worker's clock around the last command */
    double last_wait_ns;         /* of which the worker's own thread waited for a core (its
                                    runqueue delay, schedstat): a loaded machine's doing, not
                                    the kernel's; 0 when unknown */
    int dead;                    /* died: msg says how */
    int forged;                  /* a line the runner did not write was seen */
    char msg[4096];
} runner_t;

enum { RUNNER_OK = 0, RUNNER_ERR = -1, RUNNER_DIED = -2 };

/* The result of one `run`. */
typedef struct run_result {
    int rc;                      /* the kernel's return value */
    double elapsed_ns;           /* as the runner reports it */
    double cpu_ns;               /* CPU time of the runner's threads during the call (cpu) */
    int escaped;                 /* cuda: work outside the stream */
    double outside_ns;           /* the worker's clock around the command */
    double cpu_proc_ns;          /* the runner's CPU (all threads) across the command, read from
                                    here; < 0 unknown */
    double cpu_thread_ns;        /* the most CPU any one of its threads used across the command */
    double wait_ns;              /* the worker's own runqueue delay within outside_ns (>= 0):
                                    outside_ns - wait_ns is the command's time on a machine
                                    where the worker never waits for a core */
} run_result_t;

/* Start a runner hosting so_path (NULL: the null kernel) in dir with a
 * fresh arena of arena_bytes.  RUNNER_OK, or RUNNER_DIED/RUNNER_ERR with
 * r->msg. */
int runner_start(runner_t *r, const backend_t *b, const char *dir, const char *so_path,
                 size_t arena_bytes, const sandbox_limits_t *l);
/* The same under a wrapper program (e.g. ncu ...); no_seccomp drops the
 * filter and the Landlock view for wrappers that inject code needing more
 * system calls and files (a validated kernel, for its counters). */
int runner_start_wrapped(runner_t *r, const backend_t *b, const char *dir, const char *so_path,
                         size_t arena_bytes, const sandbox_limits_t *l, const char *const *wrap,
                         int no_seccomp);
/* Send "CMD NONCE ARGS" and read "ok NONCE" followed by exactly n_fields
 * space-separated fields (copied into out, which may be NULL when
 * n_fields is 0; n_fields < 0: any rest of the line, for launches).  An
 * "err NONCE message" is RUNNER_ERR with msg (filtered); anything else,
 * or more data on the socket than the one reply, kills the runner. */
int runner_cmd(runner_t *r, char *out, size_t n, int n_fields, const char *cmd, const char *args);

/* The commands the worker times: prep (not timed), run (the timed call),
 * snap (cuda: outputs to the host arena). */
int runner_prep(runner_t *r, int slot, int flush);
int runner_run(runner_t *r, int slot, run_result_t *res);
/* run with the inputs' mask removed first (util/keystream.h): key 0, 0 is the
 * pass that changes nothing, which a device-memory runner does on every run
 * (r->unmask_pass); a masked held-back set's key otherwise. */
int runner_run_keyed(runner_t *r, int slot, keystream_key_t key, run_result_t *res);
int runner_snap(runner_t *r, int slot);

/* The worker's clock around the last command less the time the worker
 * itself waited for a core meanwhile (how every timed figure is read). */
double runner_last_own_ns(const runner_t *r);

/* The calling thread's runqueue delay so far (the second field of
 * /proc/thread-self/schedstat), ns; < 0 when unknown. */
double runner_self_wait_ns(void);

/* The runner's process CPU clock (all its threads), read from here, in ns;
 * < 0 when it cannot be read.  Exact while the runner waits for a command;
 * a thread running at the moment of reading shows its time up to its last
 * scheduler tick. */
double runner_cpu_ns(const runner_t *r);

/* The runner's CPU: its process clock (all threads, living and gone) and
 * each living thread's run time (/proc/PID/task/TID/schedstat), ns. */
#define RUNNER_MAX_THREADS 256
typedef struct cpu_sample {
    double proc_ns;
    int n;
    int tid[RUNNER_MAX_THREADS];
    double ns[RUNNER_MAX_THREADS];
} cpu_sample_t;
/* 0, or -1 when unreadable. */
int runner_cpu_sample(const runner_t *r, cpu_sample_t *s);
/* The most CPU one thread used between two samples (a thread new in b
 * counts from 0). */
double runner_cpu_thread_max(const cpu_sample_t *a, const cpu_sample_t *b);

/* 1 when something is waiting on the control socket that no command asked
 * for (then r->forged is set and msg says so). */
int runner_unread(runner_t *r);

/* The last line the runner's process wrote to stdout/stderr (the kernel's
 * own words on why it failed), filtered, or "" . */
void runner_last_output_line(const runner_t *r, char *buf, size_t n);

void runner_stop(runner_t *r);

#endif
