/*
 * worker_internal.h -- the worker's state shared by its parts (evaluate.c
 * orchestrates; oracle.c produces expected outputs; candidate.c drives the
 * candidate's runner; validate.c compares; calibrate.c measures the
 * yardstick; timing.c decides what a time is worth).  Not a public header.
 */
#ifndef EMILE_WORKER_INTERNAL_H
#define EMILE_WORKER_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "backend/backend.h"
#include "compile.h"
#include "evaluate.h"
#include "layout.h"
#include "oracle.h"
#include "runner_client.h"
#include "task/task.h"
#include "util/rng.h"

/* Slots of the arena layout (where a set lives in an arena). */
enum { SLOT_TASK, SLOT_RAGGED, SLOT_SMALL, SLOT_TIMING, SLOT_TIMING2, SLOT_HELD, N_SLOTS };

/* Input sets, answered by the oracle before the candidate starts.  The
 * held-back sets share the held slot; each is shown only when its turn
 * comes, and never twice, and they are drawn fresh for every evaluation,
 * as are the small ragged and small sets.  The full-size validation set
 * and the two timing sets are drawn and answered once per task and
 * worker and kept (sets_kept, task_state.c): the expected outputs never
 * enter a candidate's process, and what a candidate could carry to the
 * next one (nothing from the sandbox; a file, from the opt-in counters
 * run, which runs without Landlock) is a cache of the kept sets, which the
 * fresh held-back sets catch as they catch one in process.  Answering
 * eight sets for every candidate was most of a cook's reference time
 * (issue 14). */
enum { SET_TASK, SET_RAGGED, SET_SMALL, SET_TIMING, SET_TIMING2, SET_HELD0, SET_HELD1, SET_HELD2, N_SETS };
#define N_HELD 3

typedef struct input_set {
    int slot;
    char name[16];
    uint8_t *pristine;                 /* the slot's range as drawn: inputs and guards */
    void *expected[OP_MAX_TENSORS];    /* the oracle's outputs */
} input_set_t;

/* The yardstick: the same command path on a runner that loaded no foreign
 * code (calibrate.c). */
typedef struct calib {
    int ok;
    int samples;
    double run_overhead_p50, run_overhead_p90;   /* outside - reported, ns */
    double run_outside_p50;
    double prep_wall_p50;                        /* outside of prep, ns */
    double prep_cpu_per_byte;                    /* cpu: runner CPU in prep per flush byte */
    double idle_cpu_p90;                         /* runner CPU between commands, ns */
    double upload_p50, snap_p50;                 /* the held slot, ns */
    double copy_p50;                             /* the worker's copy of the outputs, ns */
    double main_cpu_p90;                         /* the most CPU one runner thread used in a run, ns */
    double proc_cpu_p50, proc_cpu_p90;           /* the runner's CPU in a run, ns */
    double forge_bound_ns;                       /* see timing.h */
    /* Device memory: the held-back cycle itself (candidate.c), from the
     * end of the set's write to the end of the snap (the write and the
     * worker's copy out are the worker's own), and the null run's part of
     * it; a back-to-back run for comparison (ns, p50). */
    double cycle_p50, cycle_run_p50, warm_run_p50;
} calib_t;

struct worker_ctx {
    char base[512];
    int counter;
    long cand_uid, ref_uid;           /* -1 when not root */
    json_t *device;                   /* the device object (with ceilings) */
    char device_backend[16];
    rng_t rng;
    /* The current task, kept across evaluations while it is the same. */
    char *task_key;
    task_t task;
    int task_loaded;
    int task_status;                  /* 0 ready, ORACLE_INVALID/ORACLE_ERROR (task_error says why) */
    char task_error[2048];
    const backend_t *backend;
    arena_layout_t layout;
    oracle_t *oracle;
    json_t *oracle_check;
    input_set_t sets[N_SETS];
    int sets_kept;                    /* the kept sets answered for this task */
    char small_note[160];             /* why the small set is not drawn wide ("": it is) */
    calib_t calib;
    /* The null runner, kept for the task: the yardstick, sampled again
     * between the candidate's timed runs (the load of the moment). */
    runner_t null_run;
    int null_alive;
    char null_dir[900];
    arena_layout_t null_layout;
    /* The worker's own cache flush (cpu): evicts the last-level cache
     * between prep and run whatever the runner did. */
    uint8_t *flush_buf;
    size_t flush_bytes;
    /* The device's turn across the workers of this host (device_turn.h)
     * and the compile cache (compile_cache.h), set up with the device
     * (task_state_device). */
    device_turn_t turn;
    compile_cache_t ccache;
    int ccache_state;                 /* 0 not opened yet, 1 on, -1 off */
    char cache_device[512];           /* the cache's device key: the device object's "key" */
    compile_env_t cenv;
    /* Progress events (worker_ctx_set_progress). */
    worker_progress_fn progress;
    void *progress_user;
    double eval_start;
};

/* One evaluation of one candidate. */
typedef struct eval_state {
    worker_ctx_t *w;
    const task_t *t;
    const backend_t *b;
    int cuda;                  /* b->device_memory: inputs uploaded, outputs snapped,
                                  the flush on the device (the name is its first
                                  backend's) */
    double tol;
    runner_t cand;
    json_t *reply, *validation, *checks;
    double max_err;
    /* The outputs of the last run, copied out of the arena at once
     * ([guard][data][guard] per output), and the slot they belong to. */
    uint8_t *out[OP_MAX_TENSORS];
    size_t out_cap[OP_MAX_TENSORS];
    int out_slot;
    /* The runner's CPU clock: at the last reply, and what it used outside
     * the timed calls since the counters were reset. */
    double cpu_mark;
    double cpu_outside_ns, cpu_prep_ns;
    int n_prep;
    double last_snap_ns;              /* the worker's clock around the last snap (cuda) */
    double exposed_cpu_ns;            /* the runner's CPU over the last exposed run */
    double exposed_parts_ns[6];       /* its parts: upload, run, snap, copy out, and the
                                         run's round trip and reported time */
} eval_state_t;

void eval_set_status(json_t *reply, const char *status, const char *error);
/* The runner died or refused: crashed, timed out, forbidden call, forged
 * reply... */
void eval_runner_failure(eval_state_t *e, int rc, const char *when);
void eval_progress(eval_state_t *e, const char *phase, const char *detail, int k, int n);

/* Progress of the current request (evaluate.c). */
void worker_progress(worker_ctx_t *w, const char *phase, const char *detail, int k, int n);

/* ---- candidate.c: the candidate's runner ------------------------------ */

/* Bind every slot of the layout in the candidate's runner.  RUNNER_*. */
int cand_bind(eval_state_t *e);

/* Put set s into the candidate's arena: its pristine inputs and guards,
 * every output range poisoned (NaN), never a byte of the reference's; then
 * upload it (cuda).  RUNNER_*. */
int cand_show(eval_state_t *e, int set);
/* Show set s's pristine bytes in slot `slot` instead (the decoy of a
 * held-back run: inputs it has seen, in the held slot's memory). */
int cand_show_in(eval_state_t *e, int set, int slot);
/* One run of slot `slot`: outputs poisoned, prep (flush when asked), the
 * timed run, the outputs copied out at once (cuda: after snap), the
 * runner's CPU accounted.  RUNNER_* (res->rc is the kernel's). */
int cand_run(eval_state_t *e, int slot, int flush, run_result_t *res);
/* The same run with no copy of the outputs: a timed run, whose outputs
 * are checked on a sample read straight from the arena (cand_out_block),
 * each sampled element read once.  Copying every output of every timed
 * run cost more than the kernels (16 MB: 1.4 ms against 0.08 on the H100)
 * and gave a thread racing the check more time, not less. */
int cand_run_sampled(eval_state_t *e, int slot, int flush, run_result_t *res);
/* Output k of slot `slot` in the candidate's arena, its guards included
 * (cuda: the snap's copy). */
const uint8_t *cand_out_block(const eval_state_t *e, int slot, int k);
/* A held-back run: prep (flush), then the set's inputs appear, then the
 * run; *exposed_ns is the worker's clock from the first byte of the inputs
 * written to the outputs copied out, less the worker's own copying and,
 * on cuda, the calibrated upload and snap. */
int cand_run_exposed(eval_state_t *e, int set, run_result_t *res, double *exposed_ns);
/* A masked held-back set (device memory, docs/SECURITY.md): set s's
 * bytes into slot `slot` with every input XORed with key's keystream
 * (util/keystream.h), outputs poisoned, then uploaded; not timed: what the
 * kernel's process holds until the run tells it nothing.  RUNNER_*. */
int cand_show_masked(eval_state_t *e, int set, int slot, keystream_key_t key);
/* Its run: prep (flush), then the run that removes the mask on the device
 * before the timed call (the worker's clock around that command alone is
 * the held-back figure), then the snap and the worker's copy of every
 * output.  RUNNER_*. */
int cand_run_masked(eval_state_t *e, int slot, keystream_key_t key, run_result_t *res);
/* The end of a phase: a ping must come back and nothing else (a late
 * forged line shows here).  RUNNER_*. */
int cand_settle(eval_state_t *e);

#endif
