/*
 * compile_cache.h -- compiled kernels kept by what made them, so a
 * candidate seen before is never rebuilt (a re-measure, a resumed run, the
 * same parameters proposed again, the reference of every evaluation).
 *
 * The key is SHA-256 over everything the object depends on:
 *   - the source text;
 *   - the compile command, with the candidate's work directory written as
 *     "$DIR" (it differs every time, the object does not);
 *   - the compiler's identity: its resolved path, size, modification time
 *     and inode (a new toolkit is a new binary); every absolute path among
 *     its arguments outside the work directory (a small file's content, a
 *     large file's or a folder's identity: Triton's build script, nvcc,
 *     site-packages); a venv interpreter's site-packages folders (a
 *     package installed over another changes them);
 *   - the content of every header the build reads that the source does not
 *     carry (include/emile.h);
 *   - the device's key (an object is built for one architecture).
 * A collision would hand one kernel another's object, so the hash is a
 * cryptographic one: a candidate cannot be written to collide.
 *
 * Entries are KEY.so, KEY.log (what the caller keeps of the build: the
 * worker keeps the compiler's output and its reply's fields) and the
 * language's side files (KEY.cubin for Triton, whose machine code the
 * profile reads there) in a
 * directory private to the worker's user (0700, every folder above it the
 * user's or root's and closed to others unless sticky; default
 * $XDG_CACHE_HOME/emile/kernels), written to a temporary name and renamed,
 * so a reader never sees half an object and a crashed worker leaves no
 * torn entry.  The sandboxed compiler never writes there: it builds in its
 * own directory, and the worker copies the object in after a successful
 * build, before any kernel runs in that directory; a hit is a copy, never
 * a link, so what a candidate does to its own object stays there.  Only
 * regular files are copied (a fifo or a device where the object should be
 * is refused).  Only successful builds are kept.  The oldest entries (by
 * last use) go when the directory passes its size limit.
 */
#ifndef EMILE_WORKER_COMPILE_CACHE_H
#define EMILE_WORKER_COMPILE_CACHE_H

#include <stddef.h>

typedef struct compile_key {
    char hex[65];
} compile_key_t;

typedef struct compile_cache {
    char dir[1024];
    size_t max_bytes;
} compile_cache_t;

/* The key of one build.  argv: the compile command (NULL-terminated);
 * work_dir: the candidate's directory as it appears in argv; headers:
 * NULL-terminated paths whose content counts (may be NULL).  0, or -1 with
 * err (a header that cannot be read, a compiler that cannot be found). */
int compile_cache_key(const char *source, char *const argv[], const char *work_dir,
                      const char *const headers[], const char *device_key, compile_key_t *key,
                      char *err, size_t n);

/* dir NULL: the default (created 0700); max_bytes 0: 2 GiB.  0, or -1
 * with err (a directory that is not ours, or open to others). */
int compile_cache_open(compile_cache_t *c, const char *dir, size_t max_bytes, char *err, size_t n);

/* A hit copies the object to dest_so (mode 0755), and each side file kept
 * with it beside dest_so (side_exts: NULL-terminated extensions, or NULL;
 * "x.so" -> "x.cubin"), and, when log is not NULL, gives the compiler's
 * output of the original build (malloc'd).  0 hit; 1 miss; -1 with err. */
int compile_cache_get(const compile_cache_t *c, const compile_key_t *key, const char *dest_so,
                      const char *const side_exts[], char **log, char *err, size_t n);

/* Keep the object at so_path, the side files the build left beside it
 * (side_exts, as above: those present) and the build's log under key;
 * then trim the directory to its limit (an entry goes with its side
 * files).  0, or -1 with err (the build stands; only the cache missed a
 * chance). */
int compile_cache_put(const compile_cache_t *c, const compile_key_t *key, const char *so_path,
                      const char *const side_exts[], const char *log, char *err, size_t n);

#endif
