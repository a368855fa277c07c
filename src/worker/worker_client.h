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
    FILE *to, *from;
    int next_id;
} worker_client_t;

/* cmd NULL or "": this binary's worker.  0, or -1 with err. */
int worker_client_open(worker_client_t *c, const char *cmd, char *err, size_t n);
/* Send req (an "id" is added), wait for its reply.  NULL with err when
 * the worker died or answered garbage. */
json_t *worker_client_call(worker_client_t *c, json_t *req, char *err, size_t n);
void worker_client_close(worker_client_t *c);

#endif
