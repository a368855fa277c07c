/* task_state.c -- see task_state.h. */
#include "task_state.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "compile.h"
#include "numeric.h"
#include "oracle_pytorch.h"
#include "runner/cache_size.h"

void task_state_free(worker_ctx_t *w)
{
    calibrate_stop(w);
    if (w->oracle)
        w->oracle->ops->free(w->oracle);
    w->oracle = NULL;
    if (w->task_loaded)
        task_free(&w->task);
    w->task_loaded = 0;
    for (int s = 0; s < N_SETS; s++) {
        free(w->sets[s].pristine);
        for (int k = 0; k < OP_MAX_TENSORS; k++)
            free(w->sets[s].expected[k]);
        memset(&w->sets[s], 0, sizeof w->sets[s]);
    }
    w->sets_kept = 0;
    json_decref(w->oracle_check);
    w->oracle_check = NULL;
    free(w->task_key);
    w->task_key = NULL;
}

static char *task_key(const json_t *task_json)
{
    json_t *k = json_object();
    const char *fields[] = {"op", "params", "dtype", "backend", "reference_source", "tolerance", "seed",
                            "time_limit_s", "memory_limit_mb"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(task_json, fields[i]);
        if (v)
            json_object_set(k, fields[i], v);
    }
    char *s = json_dumps(k, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(k);
    return s;
}

int worker_task_fits(const task_t *t, const json_t *device, char *err, size_t n)
{
    double mem = json_number_value(json_object_get(device, "memory_bytes"));
    double bytes = 0, out = 0;
    for (int k = 0; k < t->op.n_tensors; k++) {
        double b = (double)op_tensor_numel(&t->op, k, &t->params) *
                   (double)emile_dtype_size(op_tensor_dtype(&t->op, k, t->dtype));
        bytes += b;
        if (t->op.tensors[k].is_output)
            out += b;
    }
    /* Two arenas (the reference's, the candidate's) of six slots, each
     * with its outputs' snapshots. */
    double need = 12 * (bytes + out);
    if (mem > 0 && need > mem) {
        snprintf(err, n, "the task's tensors take %.3g GB (about %.3g GB with the harness's copies): more memory "
                         "than this %s device has (%.3g GB); reduce the sizes",
                 bytes / 1e9, need / 1e9, t->backend, mem / 1e9);
        return -1;
    }
    return 0;
}

static int build_layout(const task_t *t, arena_layout_t *a, char *err, size_t n)
{
    memset(a, 0, sizeof *a);
    op_params_t ragged, small;
    op_validation_params(&t->op, &t->params, &ragged, &small);
    static const char *names[N_SLOTS] = {"task", "ragged", "small", "timing", "timing2", "held"};
    for (int s = 0; s < N_SLOTS; s++) {
        const op_params_t *p = s == SLOT_RAGGED ? &ragged : s == SLOT_SMALL ? &small : &t->params;
        if (layout_add_slot(a, names[s], &t->op, p, t->dtype, err, n) != 0)
            return -1;
    }
    /* The small set's inputs are drawn wider than the others' (a kernel
     * right only on a narrow range of values -- a softmax that skips its
     * running max, say -- must fail somewhere).  A PyTorch problem draws
     * its own inputs (get_inputs) and keeps them as the user drew them. */
    if (!task_reference_is_python(t))
        a->slots[SLOT_SMALL].input_scale = TASK_WIDE_SCALE;
    return 0;
}

static int alloc_sets(worker_ctx_t *w)
{
    static const struct { int slot; const char *name; } def[N_SETS] = {
        {SLOT_TASK, "task"},     {SLOT_RAGGED, "ragged"}, {SLOT_SMALL, "small"}, {SLOT_TIMING, "timing"},
        {SLOT_TIMING2, "timing2"}, {SLOT_HELD, "held-1"}, {SLOT_HELD, "held-2"}, {SLOT_HELD, "held-3"}};
    for (int s = 0; s < N_SETS; s++) {
        const slot_layout_t *sl = &w->layout.slots[def[s].slot];
        w->sets[s].slot = def[s].slot;
        snprintf(w->sets[s].name, sizeof w->sets[s].name, "%s", def[s].name);
        if (!(w->sets[s].pristine = malloc(sl->end - sl->begin)))
            return -1;
    }
    return 0;
}

static void turn_progress(void *user, const char *phase, const char *detail)
{
    worker_progress(user, phase, detail, 0, 0);
}

void task_state_device(worker_ctx_t *w, const backend_t *b)
{
    device_turn_setup(&w->turn, w->device, b->kind == BACKEND_HOST, turn_progress, w);
    if (w->ccache_state == 0) {
        char err[1300];
        int rc = compile_cache_from_env(&w->ccache, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "emile worker: warning: the compile cache is off: %s\n", err);
        w->ccache_state = rc == 0 ? 1 : -1;
    }
    const char *dk = json_string_value(json_object_get(w->device, "key"));
    snprintf(w->cache_device, sizeof w->cache_device, "%s", dk ? dk : b->name);
    w->cenv.cache = w->ccache_state == 1 ? &w->ccache : NULL;
    w->cenv.device_key = w->cache_device;
    w->cenv.turn = &w->turn;
}

/* Build, start and check the oracle, and measure the yardstick: on a host
 * device beside no timing (the compiler, a Python process starting and the
 * yardstick all take the cores a kernel is timed on). */
static int probe_wide(worker_ctx_t *w, char *err, size_t n);

static int prepare_oracle(worker_ctx_t *w, char *err, size_t n)
{
    if (device_turn_take(&w->turn, DEVICE_PHASE_COMPILE, "reference", "building and checking the reference", err,
                         n) != 0)
        return ORACLE_ERROR;
    int rc = w->oracle->ops->prepare(w->oracle, err, n);
    w->oracle_check = w->oracle->ops->describe(w->oracle);
    if (rc == ORACLE_OK)
        rc = probe_wide(w, err, n);
    /* The yardstick for this task's commands on this machine; without it
     * the timing policy uses a fixed, looser bound (and says so). */
    char cerr[1024];
    if (rc == ORACLE_OK && calibrate_task(w, cerr, sizeof cerr) != 0)
        fprintf(stderr, "emile worker: %s\n", cerr);
    device_turn_give(&w->turn, DEVICE_PHASE_COMPILE);
    return rc;
}

int task_state_ensure(worker_ctx_t *w, const json_t *task_json, const backend_t *b)
{
    task_state_device(w, b);
    char *key = task_key(task_json);
    if (w->task_key && key && strcmp(key, w->task_key) == 0) {
        free(key);
        return w->task_status;
    }
    task_state_free(w);
    w->task_key = key;
    w->task_status = ORACLE_INVALID;
    w->task_error[0] = 0;
    w->backend = b;
    task_init(&w->task);
    w->task_loaded = 1;
    char err[1024];
    if (task_from_json(&w->task, task_json, NULL, err, sizeof err) != 0 ||
        task_finalize(&w->task, err, sizeof err) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "bad task: %s", err);
        return w->task_status;
    }
    if (worker_task_fits(&w->task, w->device, err, sizeof err) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "%s", err);
        return w->task_status = ORACLE_ERROR;
    }
    w->small_note[0] = 0;
    if (build_layout(&w->task, &w->layout, err, sizeof err) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "bad task: %s", err);
        return w->task_status;
    }
    if (alloc_sets(w) != 0) {
        snprintf(w->task_error, sizeof w->task_error, "out of memory for the input sets");
        return w->task_status = ORACLE_ERROR;
    }
    worker_progress(w, "reference", "building and checking the reference", 0, 0);
    oracle_env_t env = {.task = &w->task, .layout = &w->layout, .backend = b, .base = w->base,
                        .counter = &w->counter, .uid = w->ref_uid, .rng = &w->rng, .compile = &w->cenv};
    /* A PyTorch problem's oracle is the user's Model in a trusted Python
     * process; otherwise the task's reference kernel in a runner. */
    w->oracle = task_reference_is_python(&w->task) ? oracle_pytorch_new(&env) : oracle_reference_new(&env);
    if (!w->oracle) {
        snprintf(w->task_error, sizeof w->task_error, "out of memory");
        return w->task_status = ORACLE_ERROR;
    }
    int rc = prepare_oracle(w, w->task_error, sizeof w->task_error);
    if (rc != ORACLE_OK)
        return w->task_status = rc;
    if (!b->host_mem_limit || w->flush_buf) {
        w->task_status = ORACLE_OK;
        return 0;
    }
    char src[200];
    w->flush_bytes = cache_flush_bytes("/sys", 0, src, sizeof src);
    w->flush_buf = calloc(1, w->flush_bytes);
    if (!w->flush_buf)
        w->flush_bytes = 0;
    w->task_status = ORACLE_OK;
    return 0;
}

/* The sets a drawing thread takes: todo[first], todo[first + stride], ...
 * of the n sets to draw; each set from a generator of its own. */
typedef struct draw_share {
    worker_ctx_t *w;
    rng_t *rngs;
    const int *todo;
    int n, first, stride;
} draw_share_t;

static void *draw_share(void *arg)
{
    const draw_share_t *d = arg;
    const oracle_t *o = d->w->oracle;
    for (int i = d->first; i < d->n; i += d->stride) {
        int s = d->todo[i];
        o->ops->draw(o, d->w->sets[s].slot, d->w->sets[s].pristine, &d->rngs[s]);
    }
    return NULL;
}

/* A set's own seed.  Without a task seed, from the OS: xoshiro's state
 * can be recovered from a few outputs, and the guard bytes of every set a
 * kernel is shown are raw outputs, so sets drawn from one stream would
 * let it predict the held-back ones (and the positions of the sampled
 * checks).  With a task seed, from the worker's generator: reproducible,
 * as the user asked. */
static uint64_t set_seed(worker_ctx_t *w)
{
    return w->task.seed ? rng_next(&w->rng) : rng_entropy();
}

/* The sets kept for the task once answered (worker_internal.h): the
 * full-size validation set and the two timing sets, whose answering is
 * most of the work.  The ragged and small sets, cheap, are drawn for
 * every evaluation like the held-back ones: a report may quote an
 * expected value at an element, and an agent must not learn a small set
 * that way over many candidates. */
static int set_is_kept(int s)
{
    return s == SET_TASK || s == SET_TIMING || s == SET_TIMING2;
}

/* The todo[0..n-1] sets drawn, on up to one thread a core; the cores are
 * the host's, so on a host device the draw takes the device's turn as a
 * compile does (shared; nothing on a GPU). */
static int draw_sets(worker_ctx_t *w, const int *todo, int n_todo, char *err, size_t n)
{
    rng_t rngs[N_SETS];
    for (int i = 0; i < n_todo; i++)
        rng_seed(&rngs[todo[i]], set_seed(w));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = cores < 1 ? 1 : cores > n_todo ? n_todo : (int)cores;
    draw_share_t share[N_SETS];
    pthread_t th[N_SETS];
    int started[N_SETS] = {0};
    if (device_turn_take(&w->turn, DEVICE_PHASE_COMPILE, "draw", "drawing the input sets", err, n) != 0)
        return -1;
    worker_progress(w, "draw", "drawing the input sets", 0, n_todo);
    for (int t = 0; t < nt; t++) {
        share[t] = (draw_share_t){.w = w, .rngs = rngs, .todo = todo, .n = n_todo, .first = t, .stride = nt};
        started[t] = t > 0 && pthread_create(&th[t], NULL, draw_share, &share[t]) == 0;
    }
    for (int t = 0; t < nt; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            draw_share(&share[t]);     /* this thread's share, or one no thread took */
    }
    device_turn_give(&w->turn, DEVICE_PHASE_COMPILE);
    return 0;
}

/* Whether the small set is drawn wide and the reference's answer to it
 * is not finite somewhere: an op whose values leave the dtype's range at
 * that spread (an fp16 SwiGLU of unnormalised products, say). */
static int wide_overflows(const worker_ctx_t *w)
{
    const slot_layout_t *sl = &w->layout.slots[SLOT_SMALL];
    if (!(sl->input_scale > 1))
        return 0;
    for (int k = 0; k < sl->n_tensors; k++)
        for (size_t i = 0; sl->is_out[k] && w->sets[SET_SMALL].expected[k] && i < sl->numel[k]; i++)
            if (!isfinite(num_get(w->sets[SET_SMALL].expected[k], sl->dtype[k], i)))
                return 1;
    return 0;
}

/* The small set drawn (at its slot's spread, from a seed of its own) and
 * answered. */
static int draw_and_answer_small(worker_ctx_t *w, char *err, size_t n)
{
    rng_t rng;
    rng_seed(&rng, set_seed(w));
    w->oracle->ops->draw(w->oracle, SLOT_SMALL, w->sets[SET_SMALL].pristine, &rng);
    return w->oracle->ops->fill(w->oracle, SLOT_SMALL, w->sets[SET_SMALL].name, w->sets[SET_SMALL].pristine,
                                w->sets[SET_SMALL].expected, err, n);
}

/* The small set drawn again at the others' spread, for the rest of the
 * task (said in each evaluation's validation.small_inputs), and answered. */
static int narrow_small_set(worker_ctx_t *w, char *err, size_t n)
{
    slot_layout_t *sl = &w->layout.slots[SLOT_SMALL];
    snprintf(w->small_note, sizeof w->small_note,
             "drawn at the others' spread: at %gx the reference's own answer was not finite", sl->input_scale);
    sl->input_scale = 1;
    return draw_and_answer_small(w, err, n);
}

/* At set-up, the small set drawn wide once and answered: an op whose
 * answer leaves the dtype's range there keeps the others' spread for the
 * whole task, decided before any candidate, not by the chance of a later
 * draw (which still narrows it, as a backstop, in task_state_fill). */
static int probe_wide(worker_ctx_t *w, char *err, size_t n)
{
    if (!(w->layout.slots[SLOT_SMALL].input_scale > 1) || !w->oracle->ops->draw)
        return ORACLE_OK;
    int rc = draw_and_answer_small(w, err, n);
    if (rc == ORACLE_OK && wide_overflows(w))
        rc = narrow_small_set(w, err, n);
    return rc;
}

int task_state_fill(worker_ctx_t *w, char *err, size_t n)
{
    /* Drawing is the CPU's work (most of this phase for large inputs:
     * tens of millions of elements): not on a GPU's turn, which other
     * workers of the host are waiting for. */
    int todo[N_SETS], n_todo = 0;
    for (int s = 0; s < N_SETS; s++)
        if (!(w->sets_kept && set_is_kept(s)))
            todo[n_todo++] = s;
    w->sets_kept = 0;
    if (w->oracle->ops->draw && draw_sets(w, todo, n_todo, err, n) != 0)
        return ORACLE_ERROR;
    /* The reference runs on the device: never beside a timing. */
    if (device_turn_take(&w->turn, DEVICE_PHASE_RUN, "reference", "answering the input sets", err, n) != 0)
        return ORACLE_ERROR;
    int rc = ORACLE_OK;
    for (int i = 0; i < n_todo && rc == ORACLE_OK; i++) {
        int s = todo[i];
        char detail[64];
        snprintf(detail, sizeof detail, "set %s (%d of %d)", w->sets[s].name, i + 1, n_todo);
        worker_progress(w, "reference", detail, i + 1, n_todo);
        /* An oracle that draws in its fill (the PyTorch one: guard bytes
         * and get_inputs' seed) draws each set from a seed of its own. */
        if (!w->oracle->ops->draw)
            rng_seed(&w->rng, set_seed(w));
        rc = w->oracle->ops->fill(w->oracle, w->sets[s].slot, w->sets[s].name, w->sets[s].pristine,
                                  w->sets[s].expected, err, n);
        if (rc == ORACLE_OK && s == SET_SMALL && wide_overflows(w))
            rc = narrow_small_set(w, err, n);
    }
    device_turn_give(&w->turn, DEVICE_PHASE_RUN);
    w->sets_kept = rc == ORACLE_OK;
    /* What the worker draws next (the sampled checks' positions) from a
     * seed no set shows either. */
    if (!w->task.seed)
        rng_seed(&w->rng, rng_entropy());
    return rc;
}

