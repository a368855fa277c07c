/* pool.c -- see pool.h.  One thread per slot: it starts its worker, takes
 * the first job it may run from the shared queue, calls the worker, and on
 * a fault replaces the worker and puts the job back for another slot. */
#include "cook/pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/paths.h"
#include "worker/worker_client.h"

#define START_FAILURES_MAX 3   /* a slot whose worker cannot start this often is down */

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct pool_batch {
    size_t remaining;
    void (*done)(void *ctx, pool_job_t *job);
    void *ctx;
};

typedef struct slot {
    struct pool *p;
    int index;
    char cmd[1024];            /* what runs ("" : this binary's worker) */
    char label[1100];          /* for messages: "emile worker" or the command */
    worker_client_t w;
    int up, dead, tried;       /* worker running; down for good; first start done */
    int start_failures;
    char why[1200];            /* the last failure */
    pid_t starting;            /* a worker being started (a close kills it), or 0 */
    int starting_group;        /* ... which leads its own process group */
    pool_job_t *current;
    pthread_t thread;
    int thread_started;
} slot_t;

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work;       /* a job was queued, a slot changed, closing */
    pthread_cond_t changed;    /* a job finished, a slot started or went down */
    slot_t *slots;
    int n;
    pool_job_t *head, *tail;   /* queued jobs, oldest first */
    int closing;
    json_t *device;
    char backend[16];
    double start_timeout_s;
    int max_tries;
    cook_event_fn on_event;
    void *ctx;
};

/* ---- events ---------------------------------------------------------- */

static void emit(pool_t *p, cook_event_kind_t kind, json_t *ev)
{
    if (p->on_event && ev)
        p->on_event(p->ctx, kind, ev);
    json_decref(ev);
}

static void emit_worker(pool_t *p, const slot_t *s, int64_t run, const char *state, const char *why)
{
    json_t *ev = cook_event_new(COOK_EVENT_WORKER, run);
    json_object_set_new(ev, "worker", json_integer(s->index + 1));
    json_object_set_new(ev, "state", json_string(state));
    json_object_set_new(ev, "cmd", json_string(s->label));
    if (why)
        json_object_set_new(ev, "why", json_string(why));
    emit(p, COOK_EVENT_WORKER, ev);
}

static void emit_progress(pool_t *p, const slot_t *s, const pool_job_t *j, const char *phase,
                          const char *detail)
{
    json_t *ev = cook_event_new(COOK_EVENT_PROGRESS, j->run);
    json_object_set_new(ev, "phase", json_string(phase));
    if (detail && *detail)
        json_object_set_new(ev, "detail", json_string(detail));
    if (j->iter >= 0)
        json_object_set_new(ev, "iter", json_integer(j->iter));
    json_object_set_new(ev, "worker", json_integer(s->index + 1));
    json_object_set_new(ev, "elapsed_s", json_real(0));
    emit(p, COOK_EVENT_PROGRESS, ev);
}

void pool_worker_progress(pool_t *p, int slot, const json_t *progress)
{
    if (!p || slot < 0 || slot >= p->n || !json_is_object(progress))
        return;
    pthread_mutex_lock(&p->mu);
    const pool_job_t *j = p->slots[slot].current;
    int64_t run = j ? j->run : 0;
    int iter = j ? j->iter : -1;
    pthread_mutex_unlock(&p->mu);
    json_t *ev = cook_event_new(COOK_EVENT_PROGRESS, run);
    /* The worker's words, its own fields only: it names neither the run
     * nor the slot (those are ours). */
    static const char *const keep[] = {"phase", "detail", "k", "n", "elapsed_s"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        json_t *v = json_object_get(progress, keep[i]);
        int ok = i < 2 ? json_is_string(v) : json_is_number(v);
        if (ok)
            json_object_set(ev, keep[i], v);
    }
    if (!json_object_get(ev, "phase")) {
        json_decref(ev);
        return;
    }
    if (iter >= 0)
        json_object_set_new(ev, "iter", json_integer(iter));
    json_object_set_new(ev, "worker", json_integer(slot + 1));
    emit(p, COOK_EVENT_PROGRESS, ev);
}

/* ---- starting a worker ------------------------------------------------- */

/* Start s's worker and ask it for its device; 0 when it is up (s->w set),
 * else -1 with s->why; *fatal set when no retry can help (another device). */
static int start_worker(slot_t *s, int *fatal)
{
    pool_t *p = s->p;
    char err[1024];
    *fatal = 0;
    worker_client_t w;
    if (worker_client_open(&w, s->cmd[0] ? s->cmd : NULL, err, sizeof err) != 0) {
        snprintf(s->why, sizeof s->why, "worker %d (%.300s): %.800s", s->index + 1, s->label, err);
        return -1;
    }
    w.timeout_s = p->start_timeout_s;
    /* A start may wait long (a queued Slurm job): a close must not. */
    pthread_mutex_lock(&p->mu);
    int closing = p->closing;
    s->starting = w.pid;
    s->starting_group = w.own_group;
    pthread_mutex_unlock(&p->mu);
    json_t *req = json_pack("{ssss}", "cmd", "devices", "backend", p->backend);
    json_t *reply = closing ? NULL : worker_client_call(&w, req, err, sizeof err);
    if (closing)
        snprintf(err, sizeof err, "the pool is closing");
    json_decref(req);
    pthread_mutex_lock(&p->mu);
    s->starting = 0;
    pthread_mutex_unlock(&p->mu);
    json_t *dev = json_array_get(json_object_get(reply, "devices"), 0);
    if (!reply) {
        snprintf(s->why, sizeof s->why, "%s", err);
    } else if (!dev) {
        const char *why = json_string_value(json_object_get(
            json_array_get(json_object_get(reply, "unavailable"), 0), "why"));
        snprintf(s->why, sizeof s->why, "backend %s is not available: %.1000s", p->backend,
                 why ? why : "the worker named no reason");
    }
    if (!dev) {
        json_decref(reply);
        worker_client_close(&w);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    const char *have = json_string_value(json_object_get(p->device, "name"));
    const char *name = json_string_value(json_object_get(dev, "name"));
    if (!p->device) {
        p->device = json_incref(dev);
    } else if (!have || !name || strcmp(have, name) != 0) {
        snprintf(s->why, sizeof s->why, "worker %d (%.300s) has %.200s, the first worker %.200s: the pool "
                 "times every candidate on one kind of device, or the figures would not compare",
                 s->index + 1, s->label, name ? name : "an unnamed device", have ? have : "?");
        *fatal = 1;
    }
    pthread_mutex_unlock(&p->mu);
    json_decref(reply);
    if (*fatal) {
        worker_client_close(&w);
        return -1;
    }
    s->w = w;
    return 0;
}

/* ---- the queue --------------------------------------------------------- */

static void enqueue_locked(pool_t *p, pool_job_t *j, int front)
{
    j->state = JOB_QUEUED;
    if (front) {
        j->next = p->head;
        p->head = j;
        if (!p->tail)
            p->tail = j;
    } else {
        j->next = NULL;
        if (p->tail)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
    }
}

/* A slot other than `self` that is not down for good. */
static int other_live_locked(const pool_t *p, int self)
{
    for (int i = 0; i < p->n; i++)
        if (i != self && !p->slots[i].dead)
            return 1;
    return 0;
}

/* The first queued job slot s may run, taken off the queue; NULL: none. */
static pool_job_t *take_locked(pool_t *p, slot_t *s)
{
    pool_job_t *prev = NULL;
    for (pool_job_t *j = p->head; j; prev = j, j = j->next) {
        if (j->pin >= 0 && j->pin != s->index)
            continue;
        if (j->pin < 0 && j->avoid == s->index && other_live_locked(p, s->index))
            continue;
        if (prev)
            prev->next = j->next;
        else
            p->head = j->next;
        if (p->tail == j)
            p->tail = prev;
        j->next = NULL;
        j->state = JOB_RUNNING;
        return j;
    }
    return NULL;
}

/* Queued jobs no slot can run any more (pinned to a slot that is down, or
 * every slot down), taken off the queue into *out with their error set. */
static void orphans_locked(pool_t *p, pool_job_t **out)
{
    int any = other_live_locked(p, -1);
    pool_job_t *prev = NULL, *j = p->head;
    while (j) {
        pool_job_t *next = j->next;
        const slot_t *pin = j->pin >= 0 && j->pin < p->n ? &p->slots[j->pin] : NULL;
        if (!any || (pin && pin->dead)) {
            if (prev)
                prev->next = next;
            else
                p->head = next;
            if (p->tail == j)
                p->tail = prev;
            if (!any)
                snprintf(j->error, sizeof j->error, "no worker is left: %.1100s",
                         p->n > 0 ? p->slots[0].why : "the pool has none");
            else
                snprintf(j->error, sizeof j->error, "worker %d is down: %.1100s", j->pin + 1,
                         pin->why);
            j->state = JOB_DONE;
            j->next = *out;
            *out = j;
        } else {
            prev = j;
        }
        j = next;
    }
}

/* Tell j's batch it is done: the caller's callback, then the count.  After
 * the count the job belongs to its batch's caller again.  Unlocked. */
static void finish(pool_t *p, pool_job_t *j)
{
    pool_batch_t *b = j->batch;
    j->state = JOB_DONE;
    if (b->done)
        b->done(b->ctx, j);
    pthread_mutex_lock(&p->mu);
    b->remaining--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

static void finish_list(pool_t *p, pool_job_t *list)
{
    while (list) {
        pool_job_t *next = list->next;
        list->next = NULL;
        finish(p, list);
        list = next;
    }
}

/* ---- running a job ----------------------------------------------------- */

/* A reply is an object with a boolean "ok"; an evaluate reply that says ok
 * also names its status.  Anything else is garbage. */
static int well_formed(const json_t *req, const json_t *reply)
{
    if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok")))
        return 0;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (cmd && strcmp(cmd, "evaluate") == 0 && json_is_true(json_object_get(reply, "ok")))
        return json_is_string(json_object_get(reply, "status"));
    return 1;
}

/* Slot s lost its worker while running j (why): stop the worker, count the
 * loss, and give j another try or fail it. */
static void lost(slot_t *s, pool_job_t *j, const char *why)
{
    pool_t *p = s->p;
    worker_client_close(&s->w);
    emit_worker(p, s, j->run, "lost", why);
    if (!j->lost)
        j->lost = json_array();
    json_array_append_new(j->lost, json_pack("{sissss}", "worker", s->index + 1, "cmd", s->label,
                                             "error", why));
    j->tries++;
    pthread_mutex_lock(&p->mu);
    s->up = 0;
    s->current = NULL;
    snprintf(s->why, sizeof s->why, "%s", why);
    int again = j->tries < p->max_tries;
    if (again) {
        j->avoid = s->index;
        enqueue_locked(p, j, 1);
    }
    pool_job_t *orphans = NULL;
    orphans_locked(p, &orphans);
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    if (!again) {
        size_t off = (size_t)snprintf(j->error, sizeof j->error, "its worker was lost %d time%s:",
                                      j->tries, j->tries == 1 ? "" : "s");
        size_t i;
        json_t *a;
        json_array_foreach(j->lost, i, a) {
            if (off >= sizeof j->error)
                break;
            off += (size_t)snprintf(j->error + off, sizeof j->error - off, "%s %.500s",
                                    i ? ";" : "", json_string_value(json_object_get(a, "error")));
        }
        finish(p, j);
    }
    finish_list(p, orphans);
}

/* The worker's own phases (compile, validate, time, a wait for the
 * device...), relayed as they come: the live line follows each worker. */
static void relay_progress(const json_t *progress, void *user)
{
    slot_t *s = user;
    pool_worker_progress(s->p, s->index, progress);
}

static void run_job(slot_t *s, pool_job_t *j)
{
    pool_t *p = s->p;
    char detail[200];
    if (j->tries > 0)
        snprintf(detail, sizeof detail, "%s (try %d, after a lost worker)", j->detail, j->tries + 1);
    emit_progress(p, s, j, j->tries > 0 ? "retry" : j->phase, j->tries > 0 ? detail : j->detail);
    json_t *req = json_deep_copy(j->request);
    char err[1024] = "";
    s->w.timeout_s = j->timeout_s;
    json_t *reply = req ? worker_client_call_progress(&s->w, req, relay_progress, s, err, sizeof err) : NULL;
    if (!req)
        snprintf(err, sizeof err, "out of memory");
    if (reply && !well_formed(j->request, reply)) {
        char *text = json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(err, sizeof err, "worker %d (%.300s) answered something that is not a reply: %.200s",
                 s->index + 1, s->label, text ? text : "?");
        free(text);
        json_decref(reply);
        reply = NULL;
    } else if (!reply) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err);
        snprintf(err, sizeof err, "worker %d: %.1000s", s->index + 1, msg);
    }
    json_decref(req);
    if (!reply) {
        lost(s, j, err);
        return;
    }
    j->reply = reply;
    j->slot = s->index;
    pthread_mutex_lock(&p->mu);
    s->current = NULL;
    pthread_mutex_unlock(&p->mu);
    finish(p, j);
}

/* ---- the slot's thread --------------------------------------------------- */

/* Wait up to secs on the work condition (a close ends it early).  Locked. */
static void nap_locked(pool_t *p, double secs)
{
    struct timespec until = clock_mono_after(secs);
    while (!p->closing && pthread_cond_timedwait(&p->work, &p->mu, &until) != ETIMEDOUT)
        ;
}

/* Start (or restart) the slot's worker.  Locked on entry and exit.  The
 * slot counts as tried only once its event is out, so whoever waits for
 * the first tries (pool_open) has seen what became of each. */
static void bring_up_locked(slot_t *s)
{
    pool_t *p = s->p;
    pthread_mutex_unlock(&p->mu);
    int fatal = 0;
    int rc = start_worker(s, &fatal);
    pthread_mutex_lock(&p->mu);
    pool_job_t *orphans = NULL;
    if (rc == 0) {
        s->up = 1;
        s->start_failures = 0;
    } else if (fatal || ++s->start_failures >= START_FAILURES_MAX) {
        s->dead = 1;
        orphans_locked(p, &orphans);
    }
    int dead = s->dead;
    char why[sizeof s->why];
    snprintf(why, sizeof why, "%s", s->why);
    pthread_mutex_unlock(&p->mu);
    emit_worker(p, s, 0, rc == 0 ? "up" : dead ? "down" : "failed", rc == 0 ? NULL : why);
    finish_list(p, orphans);
    pthread_mutex_lock(&p->mu);
    s->tried = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_cond_broadcast(&p->work);
    if (rc != 0 && !dead)
        nap_locked(p, s->start_failures < 5 ? (double)(1 << s->start_failures) : 30.0);
}

static void *slot_main(void *arg)
{
    slot_t *s = arg;
    pool_t *p = s->p;
    pthread_mutex_lock(&p->mu);
    while (!p->closing && !s->dead) {
        if (!s->up) {
            bring_up_locked(s);
            continue;
        }
        pool_job_t *j = take_locked(p, s);
        if (!j) {
            pthread_cond_wait(&p->work, &p->mu);
            continue;
        }
        s->current = j;
        pthread_mutex_unlock(&p->mu);
        run_job(s, j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the pool ------------------------------------------------------------ */

/* "{i}" in t replaced by i, into out. */
static void expand(const char *t, int i, char *out, size_t n)
{
    size_t off = 0;
    while (*t && off + 1 < n) {
        if (strncmp(t, "{i}", 3) == 0) {
            off += (size_t)snprintf(out + off, n - off, "%d", i);
            t += 3;
        } else {
            out[off++] = *t++;
        }
    }
    out[off < n ? off : n - 1] = '\0';
}

/* The devices this host shows us: the entries of the backend's
 * visible-devices variable when set, else the backend's count (cuda: the
 * driver's list), else 1. */
static int device_count(const backend_t *b)
{
    const char *list = getenv(b->visible_devices_env);
    int n = 0;
    if (list && *list) {
        for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
            n++;
        return n > 0 ? n : 1;
    }
    n = b->count_devices ? b->count_devices() : 0;
    return n > 0 ? n : 1;
}

/* The device of local worker i: the (i mod devices)-th of the variable's
 * list or of the host's, so that more workers than devices share them (one
 * compiles while another times: the worker's timing lock keeps timing one
 * at a time per device). */
void pool_local_device(const backend_t *b, int i, char *out, size_t n)
{
    const char *list = getenv(b->visible_devices_env);
    i %= device_count(b);
    snprintf(out, n, "%d", i);
    if (!list || !*list)
        return;
    for (int k = 0; *list; k++) {
        size_t len = strcspn(list, ",");
        if (k == i) {
            snprintf(out, n, "%.*s", (int)len, list);
            return;
        }
        list += len + (list[len] == ',');
    }
}

static void name_slot(pool_t *p, slot_t *s, const pool_options_t *o, int t, int copy)
{
    const backend_t *b = backend_find(p->backend);
    const char *env = b ? b->visible_devices_env : NULL;
    if (o->n_templates > 0 && o->templates[t] && *o->templates[t]) {
        expand(o->templates[t], copy, s->cmd, sizeof s->cmd);
        snprintf(s->label, sizeof s->label, "%s", s->cmd);
    } else if (o->per_template > 1 && env) {
        /* Local workers on one host: one device each. */
        char dev[64];
        pool_local_device(b, copy, dev, sizeof dev);
        snprintf(s->cmd, sizeof s->cmd, "%s='%s' exec '%s' worker", env, dev, emile_self_path());
        snprintf(s->label, sizeof s->label, "emile worker on device %s", dev);
    } else {
        s->cmd[0] = '\0';
        snprintf(s->label, sizeof s->label, "emile worker");
    }
}

static int start_thread(slot_t *s)
{
    if (pthread_create(&s->thread, NULL, slot_main, s) != 0)
        return -1;
    s->thread_started = 1;
    return 0;
}

/* Wait until every started slot has tried once.  Locked. */
static void wait_tried_locked(pool_t *p, int upto)
{
    for (;;) {
        int pending = 0;
        for (int i = 0; i < upto; i++)
            pending += p->slots[i].thread_started && !p->slots[i].tried;
        if (!pending)
            return;
        pthread_cond_wait(&p->changed, &p->mu);
    }
}

pool_t *pool_open(const pool_options_t *o, json_t **device, char *err, size_t n)
{
    *device = NULL;
    int per = o->per_template > 0 ? o->per_template : 1;
    int nt = o->n_templates > 0 ? o->n_templates : 1;
    pool_t *p = calloc(1, sizeof *p);
    if (!p || !(p->slots = calloc((size_t)(per * nt), sizeof *p->slots))) {
        free(p);
        snprintf(err, n, "out of memory");
        return NULL;
    }
    /* worker_client ignores SIGPIPE around its writes and puts back what
     * was there: with several threads writing, only "ignored" everywhere
     * makes that safe. */
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, &ca);
    pthread_cond_init(&p->changed, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(p->backend, sizeof p->backend, "%s", o->backend ? o->backend : backend_default()->name);
    p->start_timeout_s = o->start_timeout_s > 0 ? o->start_timeout_s : WORKER_CLIENT_DEVICES_TIMEOUT_S;
    p->max_tries = o->max_tries > 0 ? o->max_tries : 2;
    p->on_event = o->on_event;
    p->ctx = o->ctx;
    p->n = per * nt;
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < per; c++) {
            slot_t *s = &p->slots[t * per + c];
            s->p = p;
            s->index = t * per + c;
            s->w.to_fd = s->w.from_fd = -1;
            name_slot(p, s, o, t, c);
        }
    /* The first worker alone (it may measure the device's ceilings, which
     * the others then find cached), then the rest at once. */
    pthread_mutex_lock(&p->mu);
    int ok = start_thread(&p->slots[0]) == 0;
    wait_tried_locked(p, 1);
    for (int i = 1; ok && i < p->n; i++)
        ok = start_thread(&p->slots[i]) == 0;
    wait_tried_locked(p, p->n);
    int up = 0;
    for (int i = 0; i < p->n; i++)
        up += p->slots[i].up;
    if (!ok)
        snprintf(err, n, "cannot start a thread: %s", strerror(errno));
    else if (!up)
        snprintf(err, n, "%s", p->slots[0].why);
    pthread_mutex_unlock(&p->mu);
    if (!ok || !up) {
        pool_close(p);
        return NULL;
    }
    *device = json_incref(p->device);
    return p;
}

int pool_size(const pool_t *p)
{
    return p ? p->n : 0;
}

int pool_alive(pool_t *p)
{
    int up = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        up += p->slots[i].up && !p->slots[i].dead;
    pthread_mutex_unlock(&p->mu);
    return up;
}

const char *pool_slot_cmd(const pool_t *p, int slot)
{
    return slot >= 0 && slot < p->n ? p->slots[slot].label : "?";
}

void pool_job_clear(pool_job_t *j)
{
    json_decref(j->reply);
    json_decref(j->lost);
    j->reply = j->lost = NULL;
    j->error[0] = '\0';
    j->slot = -1;
    j->tries = 0;
    j->avoid = -1;
}

void pool_run(pool_t *p, pool_job_t *jobs, size_t n, void (*done)(void *ctx, pool_job_t *job), void *ctx)
{
    pool_batch_t b = {.remaining = n, .done = done, .ctx = ctx};
    pool_job_t *orphans = NULL;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        pool_job_clear(&jobs[i]);
        jobs[i].batch = &b;
        enqueue_locked(p, &jobs[i], 0);
    }
    orphans_locked(p, &orphans);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    finish_list(p, orphans);
    pthread_mutex_lock(&p->mu);
    while (b.remaining > 0)
        pthread_cond_wait(&p->changed, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void pool_close(pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = 1;
    pthread_cond_broadcast(&p->work);
    /* A worker still starting: end it (its client sees the end of its
     * output); the slot's thread reaps it. */
    for (int i = 0; i < p->n; i++) {
        slot_t *s = &p->slots[i];
        if (s->starting > 0) {
            if (s->starting_group)
                kill(-s->starting, SIGKILL);
            kill(s->starting, SIGKILL);
        }
    }
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->slots[i].thread_started)
            pthread_join(p->slots[i].thread, NULL);
    for (int i = 0; i < p->n; i++)
        if (p->slots[i].up)
            worker_client_close(&p->slots[i].w);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->mu);
    json_decref(p->device);
    free(p->slots);
    free(p);
}
