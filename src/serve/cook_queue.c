/* cook_queue.c -- the job queue and its per-device lanes.  A lane is a
 * thread that runs its device's jobs one after another and exits when none
 * wait; submitting to an idle device starts a new one. */
#include "cook_queue.h"
#include "cook_child.h"
#include "backend/backend.h"
#include "cook/cook_event.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/fs.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEEP_FINISHED 32

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };
static const char *const state_names[] = {"queued", "running", "done"};

typedef struct job {
    int64_t id;
    char kind[8];                /* "cook" | "resume" */
    char backend[16];
    char name[128];
    char *task_json;             /* cook: the canonical task */
    int64_t run;                 /* 0 until the child names it */
    int state;
    pid_t pid;                   /* while running */
    int stop_requested;
    char status[16];             /* when done */
    int best_iter;               /* -1: none */
    char error[512];
    double created;
    struct job *next;
} job_t;

typedef struct lane {
    char backend[16];
    int active;                  /* its thread is running */
    int started;                 /* a thread was created (to join) */
    pthread_t thread;
    cook_queue_t *q;
    struct lane *next;
} lane_t;

struct cook_queue {
    pthread_mutex_t mu;
    char *emile, *store;
    event_hub_t *hub;
    int max_queue, quiet, closing;
    int64_t next_job;
    job_t *jobs;                 /* oldest first */
    lane_t *lanes;
};

/* Wall-clock time (a job's "created" is shown as a date). */
static double wall_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

cook_queue_t *cookq_create(const char *emile_path, const char *store_path,
                           event_hub_t *hub, int max_queue, int quiet)
{
    cook_queue_t *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->emile = strdup(emile_path);
    q->store = strdup(store_path);
    if (!q->emile || !q->store) {
        free(q->emile);
        free(q->store);
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    q->hub = hub;
    q->max_queue = max_queue > 0 ? max_queue : 16;
    q->quiet = quiet;
    q->next_job = 1;
    return q;
}

/* Jobs ahead of j on its device (running or queued earlier).  Lock held. */
static int position_of(cook_queue_t *q, const job_t *j)
{
    int n = 0;
    for (job_t *k = q->jobs; k && k != j; k = k->next)
        if (k->state != JOB_DONE && strcmp(k->backend, j->backend) == 0)
            n++;
    return n;
}

static json_t *job_json(cook_queue_t *q, const job_t *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "job", json_integer(j->id));
    json_object_set_new(o, "kind", json_string(j->kind));
    json_object_set_new(o, "backend", json_string(j->backend));
    json_object_set_new(o, "state", json_string(state_names[j->state]));
    json_object_set_new(o, "position", j->state == JOB_DONE ? json_null()
                                                             : json_integer(position_of(q, j)));
    json_object_set_new(o, "run", j->run ? json_integer(j->run) : json_null());
    json_object_set_new(o, "name", json_string(j->name));
    json_object_set_new(o, "status", j->status[0] ? json_string(j->status) : json_null());
    json_object_set_new(o, "error", j->error[0] ? json_string(j->error) : json_null());
    json_object_set_new(o, "stopping", json_boolean(j->stop_requested && j->state != JOB_DONE));
    json_object_set_new(o, "created", json_real(j->created));
    return o;
}

static json_t *jobs_locked(cook_queue_t *q)
{
    json_t *a = json_array();
    for (int pass = 0; pass < 2; pass++)
        for (job_t *j = q->jobs; j; j = j->next)
            if ((j->state != JOB_DONE) == (pass == 0))
                json_array_append_new(a, job_json(q, j));
    return a;
}

json_t *cookq_jobs(cook_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    json_t *a = jobs_locked(q);
    pthread_mutex_unlock(&q->mu);
    return a;
}

/* Tell browsers the queue changed.  Lock held. */
static void publish_jobs(cook_queue_t *q)
{
    json_t *o = json_object();
    json_object_set_new(o, "jobs", jobs_locked(q));
    events_publish(q->hub, "jobs", o);
    json_decref(o);
}

static void *lane_main(void *arg);

/* Forget the oldest finished jobs beyond KEEP_FINISHED.  Lock held. */
static void prune(cook_queue_t *q)
{
    int done = 0;
    for (job_t *j = q->jobs; j; j = j->next)
        done += j->state == JOB_DONE;
    for (job_t **pp = &q->jobs; *pp && done > KEEP_FINISHED;) {
        job_t *j = *pp;
        if (j->state == JOB_DONE) {
            *pp = j->next;
            free(j->task_json);
            free(j);
            done--;
        } else {
            pp = &j->next;
        }
    }
}

/* Append j and make sure its device's lane runs.  Lock held.  On failure
 * j is not in the queue and the caller frees it. */
static int enqueue(cook_queue_t *q, job_t *j, json_t **reply, char *err, size_t errlen)
{
    if (q->closing) {
        snprintf(err, errlen, "the server is shutting down");
        return COOKQ_ERROR;
    }
    int waiting = 0;
    for (job_t *k = q->jobs; k; k = k->next)
        waiting += k->state == JOB_QUEUED && strcmp(k->backend, j->backend) == 0;
    if (waiting >= q->max_queue) {
        snprintf(err, errlen, "%d cooks already wait for the %s device", waiting, j->backend);
        return COOKQ_FULL;
    }
    lane_t *l = q->lanes;
    while (l && strcmp(l->backend, j->backend) != 0)
        l = l->next;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l) {
            snprintf(err, errlen, "out of memory");
            return COOKQ_ERROR;
        }
        snprintf(l->backend, sizeof l->backend, "%s", j->backend);
        l->q = q;
        l->next = q->lanes;
        q->lanes = l;
    }
    j->id = q->next_job++;
    j->created = wall_s();
    j->best_iter = -1;
    job_t **pp = &q->jobs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    if (!l->active) {
        /* The previous thread of this lane, if any, has left its loop
         * (active is cleared under this lock just before it returns). */
        if (l->started)
            pthread_join(l->thread, NULL);
        l->started = 0;
        if (pthread_create(&l->thread, NULL, lane_main, l) != 0) {
            *pp = NULL;
            snprintf(err, errlen, "cannot start a thread: %s", strerror(errno));
            return COOKQ_ERROR;
        }
        l->started = l->active = 1;
    }
    int pos = position_of(q, j);
    *reply = json_object();
    json_object_set_new(*reply, "job", json_integer(j->id));
    json_object_set_new(*reply, "state", json_string(pos == 0 ? "starting" : "queued"));
    json_object_set_new(*reply, "position", json_integer(pos));
    json_object_set_new(*reply, "backend", json_string(j->backend));
    if (j->run)
        json_object_set_new(*reply, "run", json_integer(j->run));
    publish_jobs(q);
    prune(q);
    return COOKQ_OK;
}

int cookq_submit_cook(cook_queue_t *q, const json_t *task, json_t **reply,
                      char *err, size_t errlen)
{
    *reply = NULL;
    job_t *j = calloc(1, sizeof *j);
    if (!j || !(j->task_json = json_dumps(task, JSON_COMPACT))) {
        free(j);
        snprintf(err, errlen, "out of memory");
        return COOKQ_ERROR;
    }
    snprintf(j->kind, sizeof j->kind, "cook");
    const char *b = json_string_value(json_object_get(task, "backend"));
    snprintf(j->backend, sizeof j->backend, "%s", b ? b : backend_default()->name);
    const char *name = json_string_value(json_object_get(task, "name"));
    const char *op = json_string_value(json_object_get(task, "op"));
    snprintf(j->name, sizeof j->name, "%s", name ? name : op ? op : "task");
    pthread_mutex_lock(&q->mu);
    int rc = enqueue(q, j, reply, err, errlen);
    pthread_mutex_unlock(&q->mu);
    if (rc != COOKQ_OK) {
        free(j->task_json);
        free(j);
    }
    return rc;
}

int cookq_submit_resume(cook_queue_t *q, int64_t run, const char *backend,
                        json_t **reply, char *err, size_t errlen)
{
    *reply = NULL;
    job_t *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return COOKQ_ERROR;
    }
    snprintf(j->kind, sizeof j->kind, "resume");
    snprintf(j->backend, sizeof j->backend, "%s", backend);
    snprintf(j->name, sizeof j->name, "run %" PRId64, run);
    j->run = run;
    pthread_mutex_lock(&q->mu);
    int rc = COOKQ_OK;
    for (job_t *k = q->jobs; k; k = k->next)
        if (k->state != JOB_DONE && k->run == run) {
            snprintf(err, errlen, "run %" PRId64 " is already %s", run,
                     k->state == JOB_RUNNING ? "cooking" : "queued");
            rc = COOKQ_BUSY;
        }
    if (rc == COOKQ_OK)
        rc = enqueue(q, j, reply, err, errlen);
    pthread_mutex_unlock(&q->mu);
    if (rc != COOKQ_OK)
        free(j);
    return rc;
}

/* Stop or cancel j.  Lock held. */
static void stop_locked(cook_queue_t *q, job_t *j, json_t **reply)
{
    const char *what;
    if (j->state == JOB_QUEUED) {
        j->state = JOB_DONE;
        snprintf(j->status, sizeof j->status, "cancelled");
        what = "cancelled";
        json_t *d = json_object();
        json_object_set_new(d, "job", json_integer(j->id));
        json_object_set_new(d, "run", j->run ? json_integer(j->run) : json_null());
        json_object_set_new(d, "status", json_string("cancelled"));
        json_object_set_new(d, "best_iter", json_null());
        json_object_set_new(d, "error", json_null());
        events_publish(q->hub, "done", d);
        json_decref(d);
    } else {
        /* SIGTERM asks the CLI to end after the current candidate; the
         * lane sends it again once the child exists if it is starting. */
        j->stop_requested = 1;
        if (j->pid > 0)
            kill(j->pid, SIGTERM);
        what = "stopping";
    }
    *reply = json_object();
    json_object_set_new(*reply, "job", json_integer(j->id));
    json_object_set_new(*reply, "state", json_string(what));
    publish_jobs(q);
}

int cookq_stop_run(cook_queue_t *q, int64_t run, json_t **reply)
{
    *reply = NULL;
    int rc = COOKQ_NOT_FOUND;
    pthread_mutex_lock(&q->mu);
    for (job_t *j = q->jobs; j; j = j->next)
        if (j->state != JOB_DONE && j->run == run) {
            stop_locked(q, j, reply);
            rc = COOKQ_OK;
            break;
        }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int cookq_stop_job(cook_queue_t *q, int64_t job, json_t **reply)
{
    *reply = NULL;
    int rc = COOKQ_NOT_FOUND;
    pthread_mutex_lock(&q->mu);
    for (job_t *j = q->jobs; j; j = j->next)
        if (j->id == job && j->state != JOB_DONE) {
            stop_locked(q, j, reply);
            rc = COOKQ_OK;
            break;
        }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

json_t *cookq_job_for_run(cook_queue_t *q, int64_t run)
{
    json_t *o = NULL;
    pthread_mutex_lock(&q->mu);
    for (job_t *j = q->jobs; j && !o; j = j->next)
        if (j->state != JOB_DONE && j->run == run)
            o = job_json(q, j);
    pthread_mutex_unlock(&q->mu);
    return o;
}

/* ---- running one job ---------------------------------------------------- */

/* Write the task to a temp file the child reads; path in buf. */
static int write_task_file(const char *json, char *buf, size_t n, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, "%s/emile-task-XXXXXX.json", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(buf, 5);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a task file in %s: %s",
                 tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return -1;
    }
    if (fs_write_all(fd, json, strlen(json)) != 0) {
        snprintf(err, errlen, "cannot write %.300s: %s", buf, strerror(errno));
        close(fd);
        unlink(buf);
        return -1;
    }
    close(fd);
    return 0;
}

/* How a job ended, gathered by its lane while it runs and published
 * (copied into the job, under the lock) only as the job is marked done. */
typedef struct outcome {
    char status[16];             /* "" until the child says "done" */
    int best_iter;               /* -1: none */
    char error[512];
} outcome_t;

/* One line of the child's stdout (cook_event.h's events).  Its "done"
 * goes into *out_done. */
static void handle_event(cook_queue_t *q, job_t *j, outcome_t *out_done, const char *line)
{
    json_t *ev = json_loads(line, 0, NULL);
    cook_event_kind_t kind = cook_event_kind(ev);
    if (kind == COOK_EVENT_UNKNOWN) {
        json_decref(ev);     /* not an event of ours: ignore, the CLI may log */
        return;
    }
    json_int_t run = json_integer_value(json_object_get(ev, "run"));
    pthread_mutex_lock(&q->mu);
    if (run > 0 && !j->run)
        j->run = run;
    json_t *out = json_object();
    json_object_set_new(out, "job", json_integer(j->id));
    json_object_set_new(out, "run", j->run ? json_integer(j->run) : json_null());
    switch (kind) {
    case COOK_EVENT_RUN:
        json_object_set_new(out, "kind", json_string(j->kind));
        json_object_set_new(out, "backend", json_string(j->backend));
        events_publish(q->hub, "run", out);
        publish_jobs(q);
        break;
    case COOK_EVENT_ITERATION:
        json_object_set(out, "iteration", json_object_get(ev, "iteration"));
        events_publish(q->hub, "iteration", out);
        break;
    case COOK_EVENT_DONE: {
        const char *st = json_string_value(json_object_get(ev, "status"));
        snprintf(out_done->status, sizeof out_done->status, "%s", st ? st : "done");
        json_t *b = json_object_get(ev, "best_iter");
        out_done->best_iter = json_is_integer(b) ? (int)json_integer_value(b) : -1;
        const char *e = json_string_value(json_object_get(ev, "error"));
        if (!e && strcmp(out_done->status, "failed") == 0)
            e = json_string_value(json_object_get(ev, "note"));
        if (e)
            snprintf(out_done->error, sizeof out_done->error, "%s", e);
        break;
    }
    case COOK_EVENT_WORKER: {
        /* Shown where the phases are: "worker 2 lost: ...". */
        char words[600];
        snprintf(words, sizeof words, "worker %lld %s%s%.500s",
                 (long long)json_integer_value(json_object_get(ev, "worker")),
                 json_string_value(json_object_get(ev, "state")) ? json_string_value(json_object_get(ev, "state")) : "?",
                 json_object_get(ev, "why") ? ": " : "",
                 json_string_value(json_object_get(ev, "why")) ? json_string_value(json_object_get(ev, "why")) : "");
        json_object_set_new(out, "phase", json_string("worker"));
        json_object_set_new(out, "detail", json_string(words));
        json_object_set(out, "worker", json_object_get(ev, "worker"));
        json_object_set_new(out, "elapsed_s", json_real(0));
        events_publish(q->hub, "progress", out);
        break;
    }
    default:
        /* Progress, and a menu's table: the child's object as it is. */
        json_object_update_missing(out, ev);
        events_publish(q->hub, "progress", out);
        break;
    }
    pthread_mutex_unlock(&q->mu);
    json_decref(out);
    json_decref(ev);
}

/* The note the CLI stored with run `run` (why it failed) into buf; 0 when
 * there is one. */
static int stored_note(cook_queue_t *q, int64_t run, char *buf, size_t n)
{
    store_t *s = NULL;
    json_t *r = NULL;
    int rc = -1;
    if (store_open(q->store, 0, &s) == 0 && store_run_get(s, run, &r) == 0) {
        const char *note = json_string_value(json_object_get(r, "note"));
        if (note && *note) {
            snprintf(buf, n, "%s", note);
            rc = 0;
        }
    }
    json_decref(r);
    store_close(s);
    return rc;
}

/* The child ended without "done": say so in the store, where the run
 * would otherwise stay "running". */
static void mark_run_failed(cook_queue_t *q, int64_t run, const char *status, const char *note)
{
    store_t *s = NULL;
    if (store_open(q->store, 0, &s) != 0)
        return;
    json_t *r = NULL;
    if (store_run_get(s, run, &r) == 0) {
        const char *st = json_string_value(json_object_get(r, "status"));
        if (st && strcmp(st, "running") == 0)
            store_run_set_status(s, run, status, note);
    }
    json_decref(r);
    store_close(s);
}

/* Run job j to its end and say how it ended in *o.  The fields of j that
 * HTTP threads read (pid, run, stop_requested, status, error) are touched
 * only under q->mu; the caller publishes *o into j, under the lock, as it
 * marks the job done. */
static void run_job(cook_queue_t *q, job_t *j, outcome_t *o)
{
    char err[512] = "", taskfile[512] = "", idbuf[32];
    char *argv[8];
    int n = 0;
    memset(o, 0, sizeof *o);
    o->best_iter = -1;
    /* The lane owns a running job: its id, kind and task do not change. */
    pthread_mutex_lock(&q->mu);
    int64_t run = j->run;
    pthread_mutex_unlock(&q->mu);
    /* emile's commands take their options after the command name. */
    argv[n++] = q->emile;
    if (strcmp(j->kind, "cook") == 0) {
        if (write_task_file(j->task_json, taskfile, sizeof taskfile, err, sizeof err) != 0)
            goto finish;
        argv[n++] = "cook";
        argv[n++] = taskfile;
    } else {
        snprintf(idbuf, sizeof idbuf, "%" PRId64, run);
        argv[n++] = "resume";
        argv[n++] = idbuf;
    }
    argv[n++] = "--store";
    argv[n++] = q->store;
    argv[n++] = "--events";
    argv[n] = NULL;

    char prefix[48];
    snprintf(prefix, sizeof prefix, "[job %" PRId64 "] ", j->id);
    cook_child_t c;
    if (cook_child_spawn(&c, argv, q->quiet ? NULL : prefix, err, sizeof err) != 0)
        goto finish;
    pthread_mutex_lock(&q->mu);
    j->pid = c.pid;
    if (j->stop_requested)          /* asked while we were starting it */
        kill(c.pid, SIGTERM);
    pthread_mutex_unlock(&q->mu);

    char *line;
    while (cook_child_next_line(&c, &line) == 1) {
        handle_event(q, j, o, line);
        free(line);
    }
    /* Once the child has exited, and while it is not reaped (so its pid
     * cannot name another process yet), forget its pid under the lock --
     * a stop and the shutdown signal j->pid under it -- and only then
     * reap it. */
    int ws = 0;
    int waited = cook_child_wait_exit(&c, &ws);
    int wait_errno = errno;
    pthread_mutex_lock(&q->mu);
    j->pid = 0;
    run = j->run;
    pthread_mutex_unlock(&q->mu);
    cook_child_reap(&c);
    if (!o->status[0]) {
        char last[256];
        cook_child_last_error(&c, last, sizeof last);
        if (waited != 0)
            snprintf(err, sizeof err, "the cook ended without finishing, and how it ended is "
                     "unknown (waiting for it: %s)%s%s", strerror(wait_errno),
                     last[0] ? ": " : "", last);
        else if (WIFSIGNALED(ws))
            snprintf(err, sizeof err, "the cook was killed by signal %d%s%s", WTERMSIG(ws),
                     last[0] ? ": " : "", last);
        else
            snprintf(err, sizeof err, "the cook exited with status %d without finishing%s%s",
                     WEXITSTATUS(ws), last[0] ? ": " : "", last);
    } else if (strcmp(o->status, "failed") == 0 && !o->error[0]) {
        /* "done" without words: the reason is the run's note, else the
         * child's last line on stderr. */
        if (!run || stored_note(q, run, o->error, sizeof o->error) != 0)
            cook_child_last_error(&c, o->error, sizeof o->error);
    }
finish:
    if (taskfile[0])
        unlink(taskfile);
    if (!o->status[0]) {
        pthread_mutex_lock(&q->mu);
        int stopped = j->stop_requested;
        pthread_mutex_unlock(&q->mu);
        const char *st = stopped ? "stopped" : "failed";
        snprintf(o->status, sizeof o->status, "%s", st);
        snprintf(o->error, sizeof o->error, "%s", err);
        if (run)
            mark_run_failed(q, run, st, err);
    }
}

static void *lane_main(void *arg)
{
    lane_t *l = arg;
    cook_queue_t *q = l->q;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        job_t *j = q->jobs;
        while (j && !(j->state == JOB_QUEUED && strcmp(j->backend, l->backend) == 0))
            j = j->next;
        if (!j || q->closing)
            break;
        j->state = JOB_RUNNING;
        publish_jobs(q);
        pthread_mutex_unlock(&q->mu);

        outcome_t o;
        run_job(q, j, &o);

        pthread_mutex_lock(&q->mu);
        j->state = JOB_DONE;
        snprintf(j->status, sizeof j->status, "%s", o.status);
        snprintf(j->error, sizeof j->error, "%s", o.error);
        j->best_iter = o.best_iter;
        free(j->task_json);
        j->task_json = NULL;
        json_t *d = json_object();
        json_object_set_new(d, "job", json_integer(j->id));
        json_object_set_new(d, "run", j->run ? json_integer(j->run) : json_null());
        json_object_set_new(d, "status", json_string(j->status));
        json_object_set_new(d, "best_iter", j->best_iter >= 0 ? json_integer(j->best_iter)
                                                              : json_null());
        json_object_set_new(d, "error", j->error[0] ? json_string(j->error) : json_null());
        events_publish(q->hub, "done", d);
        json_decref(d);
        publish_jobs(q);
    }
    l->active = 0;
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

void cookq_destroy(cook_queue_t *q, double grace_s)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->closing = 1;
    for (job_t *j = q->jobs; j; j = j->next) {
        if (j->state == JOB_QUEUED) {
            j->state = JOB_DONE;
            snprintf(j->status, sizeof j->status, "cancelled");
        } else if (j->state == JOB_RUNNING) {
            j->stop_requested = 1;
            if (j->pid > 0)
                kill(j->pid, SIGTERM);
        }
    }
    pthread_mutex_unlock(&q->mu);

    /* Give the cooks grace_s to finish their candidate, then end their
     * whole process groups.  The CLI's worker leads a group of its own
     * (worker_client_open) and the worker's compiles and runners sessions
     * of their own (sandbox.c): they are not in the cook's group, and die
     * instead with the process that started them (PDEATHSIG), the worker
     * with the cook. */
    double deadline = clock_mono_s() + (grace_s > 0 ? grace_s : 0);
    for (;;) {
        int active = 0;
        pthread_mutex_lock(&q->mu);
        for (lane_t *l = q->lanes; l; l = l->next)
            active += l->active;
        if (active && clock_mono_s() >= deadline)
            for (job_t *j = q->jobs; j; j = j->next)
                if (j->state == JOB_RUNNING && j->pid > 0)
                    kill(-j->pid, SIGKILL);
        pthread_mutex_unlock(&q->mu);
        if (!active)
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (lane_t *l = q->lanes, *next; l; l = next) {
        next = l->next;
        if (l->started)
            pthread_join(l->thread, NULL);
        free(l);
    }
    for (job_t *j = q->jobs, *next; j; j = next) {
        next = j->next;
        free(j->task_json);
        free(j);
    }
    pthread_mutex_destroy(&q->mu);
    free(q->emile);
    free(q->store);
    free(q);
}
