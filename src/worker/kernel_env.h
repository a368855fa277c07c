/*
 * kernel_env.h -- where and how a kernel's processes run: its directory
 * (unguessable name, 0700, owned by the uid that compiles and runs it, with
 * a copy of emile.h) and the sandbox limits of its runner.  Shared by the
 * oracle (the reference), the candidate and the null runner.
 */
#ifndef EMILE_WORKER_KERNEL_ENV_H
#define EMILE_WORKER_KERNEL_ENV_H

#include <stddef.h>

#include "backend/backend.h"
#include "sandbox/sandbox.h"
#include "task/task.h"
#include "util/rng.h"

/* A directory "<base>/<kind>-<n>-<random>": 0, or -1 with errno. */
int kernel_dir_make(const char *base, const char *kind, int *counter, rng_t *rng, long uid, char *out, size_t n);

/* The limits of a runner of task t: its wall-clock limit, its memory
 * limit (cpu: RLIMIT_AS), no CPU-time rlimit (it would make the process
 * CPU clock tick-coarse; the wall-clock kill bounds the CPU instead), few
 * file descriptors (pipes and sockets cannot hoard memory), 1 MiB files,
 * uid when root. */
void kernel_runner_limits(const task_t *t, const backend_t *b, long uid, sandbox_limits_t *l);

/* RLIMIT_NOFILE of a runner: cpu 64; cuda 512 (the driver opens a
 * descriptor per device node and per memory pool). */
#define KERNEL_NOFILE_CPU 64
#define KERNEL_NOFILE_CUDA 512

#endif
