/* worker_client.h -- the orchestrator's handle on a worker process, started
 * from a command template: the default runs this binary's `worker`
 * command; "ssh gpu1 emile worker" or "srun --gres=gpu:1 emile worker" run
 * it elsewhere (the template goes through /bin/sh). */
#ifndef EMILE_WORKER_CLIENT_H
#define EMILE_WORKER_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct worker_client {
    pid_t pid;
    int to_fd, from_fd;        /* the worker's stdin and stdout */
    char *buf;                 /* bytes read from the worker, not yet a line */
    size_t len, cap;
    int next_id;
    double timeout_s;          /* per call (sending the request included); 0: wait as
                                  long as it takes */
    char cmd[160];             /* for messages: the template, or "emile worker" */
    int own_group;             /* the worker leads its own process group (see
                                  worker_client_open): stops and timeouts end the group */
    char dead_reason[200];     /* non-empty once the worker is gone (killed at a timeout,
                                  exited): every later call fails with it */
} worker_client_t;

/* cmd NULL or "": this binary's worker.  0, or -1 with err.
 *
 * The worker dies with us (PDEATHSIG).  It leads its own process group,
 * so that a timeout ends all of it (a template's shell and what it
 * started), unless we are the foreground process group of a controlling
 * terminal: there it stays in ours, in the foreground too, so that a
 * template that prompts on the terminal (ssh's password or host key
 * question) can read the answer -- in a group of its own it would be a
 * background job, stopped by SIGTTIN for good at its first read.  (Where
 * we are not in the foreground, or have no terminal, nobody could answer
 * a prompt anyway; use ssh -o BatchMode=yes.)  Then a timeout kills the
 * worker's process only; its sandboxed compiles and runners die with it
 * (PDEATHSIG), a remote link with its closed pipes. */
int worker_client_open(worker_client_t *c, const char *cmd, char *err, size_t n);
/* Send req (an "id" is added), wait for its reply: lines that are not the
 * reply (a remote shell's banner) are skipped.  NULL with err when the
 * worker died (its exit status said), or gave no reply within timeout_s
 * (then it is killed: a worker that hangs must not hang the cook). */
json_t *worker_client_call(worker_client_t *c, json_t *req, char *err, size_t n);

/* Progress of a call: each {"event":"progress",...} line the worker sends
 * before its reply (docs/PROTOCOL.md), borrowed for the call's length. */
typedef void (*worker_client_progress_fn)(const json_t *event, void *user);

/* worker_client_call, and with progress non-NULL the request asks for
 * progress events ("progress": true) and each one is passed to progress
 * as it arrives; the reply is the same.  progress NULL: exactly
 * worker_client_call. */
json_t *worker_client_call_progress(worker_client_t *c, json_t *req, worker_client_progress_fn progress, void *user,
                                    char *err, size_t n);
void worker_client_close(worker_client_t *c);

/* A bound on one evaluate call of a task with these limits: compiles of
 * the candidate and the reference, the runs, a profile under ncu (ten
 * replays) and a first ceilings measurement, twice over.  A safety net
 * for a hung worker, not a performance limit. */
double worker_client_evaluate_timeout(double compile_limit_s, double time_limit_s);

/* The same for a devices call (a first or forced ceilings measurement
 * builds and runs the ceilings program). */
#define WORKER_CLIENT_DEVICES_TIMEOUT_S 900.0

#endif
