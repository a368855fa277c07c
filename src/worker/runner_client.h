/* runner_client.h -- the worker's side of the runner protocol (see
 * src/runner/runner_main.c): start a runner for one kernel with its own
 * shared arena, send commands with fresh nonces, read replies, and turn a
 * runner's death into a message. */
#ifndef EMILE_RUNNER_CLIENT_H
#define EMILE_RUNNER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "sandbox/sandbox.h"

typedef struct runner {
    sandbox_proc_t proc;
    int arena_fd;
    uint8_t *arena;
    size_t arena_bytes;
    double timeout_s;
    int seccomp;                 /* the filter is on */
    int uid;                     /* the uid the kernel runs as */
    int dead;                    /* died: msg says how */
    char msg[4096];
} runner_t;

enum { RUNNER_OK = 0, RUNNER_ERR = -1, RUNNER_DIED = -2 };

/* Start a runner hosting so_path in dir with a fresh arena of arena_bytes.
 * RUNNER_OK, or RUNNER_DIED/RUNNER_ERR with r->msg. */
int runner_start(runner_t *r, const backend_t *b, const char *dir, const char *so_path,
                 size_t arena_bytes, const sandbox_limits_t *l);
/* The same under a wrapper program (e.g. ncu ...); no_seccomp relaxes the
 * filter for wrappers that inject code needing more system calls. */
int runner_start_wrapped(runner_t *r, const backend_t *b, const char *dir, const char *so_path,
                         size_t arena_bytes, const sandbox_limits_t *l, const char *const *wrap,
                         int no_seccomp);
/* Send "CMD NONCE ARGS"; on "ok NONCE REST" copy REST into out. */
int runner_cmd(runner_t *r, char *out, size_t n, const char *cmd, const char *args);
void runner_stop(runner_t *r);

#endif
