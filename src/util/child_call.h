/* child_call.h -- run a function in a short-lived forked child and read
 * back the bytes it writes.  For work that must not happen in this
 * process: starting a GPU driver (cuInit starts its threads and leaves a
 * context, and a process that forks sandboxed children must reach fork()
 * single-threaded without either). */
#ifndef EMILE_CHILD_CALL_H
#define EMILE_CHILD_CALL_H

#include <stddef.h>

/* fn(ctx, fd) runs in the child and writes its answer to fd; its return
 * value is the child's exit status (fs_write_all writes the answer).  Up to cap bytes of the answer land in
 * buf; *len (may be NULL) says how many.  0 when the child exited 0, else
 * -1 (no child, a signal, a non-zero status). */
int child_call(int (*fn)(void *ctx, int fd), void *ctx, void *buf, size_t cap, size_t *len);

#endif
