/*
 * compile.h -- building a kernel's source in the compile sandbox: its own
 * directory, the unprivileged uid given (as root), new namespaces, and a
 * Landlock view of the file system holding only the system and toolchain
 * trees and that directory -- an `#include "/etc/passwd"` or of a file in
 * $HOME fails with the compiler's own error and quotes nothing.  Memory is
 * bounded by the task's memory limit (never below COMPILE_MEM_FLOOR).  The
 * log is filtered before it is quoted (secrets redacted, control
 * characters escaped, 6000 bytes kept) and names the user's file
 * (source_name), not the sandbox's path.
 */
#ifndef EMILE_WORKER_COMPILE_H
#define EMILE_WORKER_COMPILE_H

#include <jansson.h>
#include <stddef.h>

#include "backend/backend.h"
#include "task/task.h"
#include "worker/compile_cache.h"
#include "worker/device_turn.h"

/* A compiler needs no more for any kernel of ours: gcc -O3 builds the CPU
 * ladder within 128 MiB of address space, nvcc the CUDA ladder (rung7,
 * wgmma) within 256 MiB; twice the larger. */
#define COMPILE_MEM_FLOOR ((size_t)512 << 20)

/* RLIMIT_AS for compiles of a task: its memory limit, at least the floor. */
size_t compile_mem_bytes(const task_t *t);

/* What a build may use besides the sandbox (compile_kernel's env; NULL:
 * neither). */
typedef struct compile_env {
    const compile_cache_t *cache;   /* NULL: every kernel is built */
    const char *device_key;         /* what an object is built for: the device object's "key" */
    device_turn_t *turn;            /* NULL: no device lock (compiles take it shared on a host) */
} compile_env_t;

/* Build source, in language lang (backend/lang.h; NULL or "" the
 * backend's default), in dir (which exists, holds emile.h and is owned by
 * uid when uid >= 0) into dir/kernel.so; fills compile (the reply's
 * object: ok, seconds, command, log, error, cached) and so_path.
 * source_name: how the log names the source (NULL: "kernel" and the
 * language's extension).  With env->cache, a build seen before (same
 * source, command, compiler, header, device) is not run again: its object
 * is copied into dir, its log given as it was ("cached": true,
 * "built_seconds": the original build's time); a new successful build is
 * kept, copied out of dir before anything runs there.  0 when built. */
int compile_kernel(const compile_env_t *env, const backend_t *b, const task_t *t, long uid, const char *dir,
                   const char *source, const char *lang, const char *source_name, json_t *compile, char *so_path,
                   size_t so_n);

/* The worker's compile cache: EMILE_COMPILE_CACHE off (or 0, no) turns it
 * off, a path puts it there, else compile_cache_open's default
 * ($XDG_CACHE_HOME/emile/kernels).  0 on, 1 off, -1 with err (a directory
 * that is not the worker's own: off too). */
int compile_cache_from_env(compile_cache_t *c, char *err, size_t n);

/* text with every "dir/kernel<ext>" replaced by name, every other "dir/"
 * removed and dir itself shown as "." (malloc'd): what the user reads names
 * their file. */
char *compile_rename_paths(const char *text, const char *dir, const char *ext, const char *name);

#endif
