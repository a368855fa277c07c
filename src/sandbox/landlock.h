/*
 * landlock.h -- the file system an untrusted process may see, with Landlock
 * (Linux >= 5.13; no root needed): read (and execute) only the system and
 * toolchain trees (/usr, /lib*, /bin, /sbin, /etc/ld.so.*, /proc, /sys, a
 * few character devices) and the process's own directory; write nowhere
 * but, for a compiler, its own directory.  Where the kernel's Landlock ABI
 * has them, TCP is denied too (ABI 4) and signals and abstract UNIX
 * sockets are scoped to the process's own domain (ABI 6).
 *
 * A Landlock domain also stops ptrace-class access (/proc/PID/mem,
 * /proc/PID/environ) to any process outside it, whatever the uids.
 */
#ifndef EMILE_SANDBOX_LANDLOCK_H
#define EMILE_SANDBOX_LANDLOCK_H

#include <stddef.h>

#define SANDBOX_FS_EXTRA 24

typedef struct sandbox_fs {
    const char *own_dir;                   /* readable (and executable) */
    int own_write;                         /* a compiler: files may be made there */
    int devices;                           /* cuda: /dev/nvidia* read-write */
    const char *extra_ro[SANDBOX_FS_EXTRA]; /* more read-only trees (NULL-ended) */
} sandbox_fs_t;

/* The running kernel's Landlock ABI version, 0 when it has none. */
int sandbox_landlock_abi(void);

/* Restrict this process (and what it executes) to fs.  Returns the ABI
 * version in effect (> 0), 0 when Landlock is not available here (err says
 * why; the caller runs on with a warning), -1 when it failed to apply
 * (err). Sets no_new_privs. */
int sandbox_landlock_apply(const sandbox_fs_t *fs, char *err, size_t n);

/* Add to fs->extra_ro the directories of a PATH-like list (LD_LIBRARY_PATH),
 * as far as there is room. */
void sandbox_fs_add_list(sandbox_fs_t *fs, const char *list, char *store, size_t store_n);

#endif
