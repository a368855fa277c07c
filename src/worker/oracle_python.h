/*
 * oracle_python.h -- the worker's client of the trusted PyTorch oracle
 * (python/emile/oracle.py): a long-lived `python3 -m emile.oracle` process of
 * the worker's own user (the problem file is the user's own code: it runs
 * neither in a candidate's sandbox nor in the orchestrator), JSON lines on
 * its stdin and stdout, and tensor bytes through a shared memory file (a
 * memfd the worker creates and sizes; the oracle maps it as fd 3).  Its
 * stderr is drained into a tail kept for messages, so a chatty problem can
 * neither block it nor fill a disk.
 *
 * The process leads its own process group (torch.compile's compile workers
 * are ended with it) and dies with the worker (PDEATHSIG).
 */
#ifndef EMILE_ORACLE_PYTHON_H
#define EMILE_ORACLE_PYTHON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "worker/layout.h"

enum {
    ORACLE_PY_OK = 0,
    ORACLE_PY_FAILED = -1,   /* the process died, hung or hit a bug of ours */
    ORACLE_PY_PROBLEM = -2,  /* the problem file cannot be an oracle (bad input) */
    ORACLE_PY_MISSING = -3,  /* no Python, or no torch in it (bad input: say what) */
};

typedef struct oracle_python {
    pid_t pid;
    int to_fd, from_fd, err_fd;
    int shm_fd;
    uint8_t *shm;
    size_t shm_size;
    char *buf;                  /* stdout bytes not yet a line */
    size_t len, cap;
    char tail[8192];            /* the last of stderr */
    size_t tail_len;
    char python[1024];
} oracle_python_t;

/* Start the oracle and load the problem (source as text, filename for
 * messages); dtype NULL keeps the problem's own, constants (an object, may
 * be NULL) override its module-level constants.  ORACLE_PY_OK, or an
 * error code with err (o is stopped then). */
int oracle_python_start(oracle_python_t *o, const char *source, const char *filename, const char *device,
                        const char *dtype, const json_t *constants, double memory_limit_mb,
                        double timeout_s, char *err, size_t n);

/* One request (an object; borrowed) and its reply (new reference) on
 * ORACLE_PY_OK; the reply's own failure turns into ORACLE_PY_PROBLEM or
 * ORACLE_PY_FAILED with its message in err. */
int oracle_python_call(oracle_python_t *o, json_t *req, double timeout_s, json_t **reply, char *err, size_t n);

/* Draw slot sl under seed: the inputs (forward inputs, then the model's
 * state) land at dst + (sl->off[k] - base_off), the expected outputs in
 * expected[k] (allocated here when NULL, sl->bytes[k] each).  Guards are
 * the caller's.  The oracle checks that every tensor has the slot's shape. */
int oracle_python_fill(oracle_python_t *o, const slot_layout_t *sl, uint64_t seed, uint8_t *dst, size_t base_off,
                       void **expected, double timeout_s, char *err, size_t n);

void oracle_python_stop(oracle_python_t *o);

#endif
