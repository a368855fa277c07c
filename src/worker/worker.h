/* worker.h -- the worker: one JSON request per line in, one JSON reply per
 * line out (docs/PROTOCOL.md).  `emile worker` runs worker_serve on stdin
 * and stdout; the orchestrator reaches it through worker_client.h. */
#ifndef EMILE_WORKER_H
#define EMILE_WORKER_H

#include <stdio.h>

#define WORKER_PROTOCOL 1

/* Serve until end of input; returns 0, or 1 when the worker could not
 * start (message on stderr). */
int worker_serve(FILE *in, FILE *out);

#endif
