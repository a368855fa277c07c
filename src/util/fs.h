/* fs.h -- small file-system helpers with errno-style failure reporting. */
#ifndef EMILE_FS_H
#define EMILE_FS_H

#include <stddef.h>

/* Whole file into a NUL-terminated malloc'd buffer; NULL (errno set) on
 * failure or when larger than max_bytes (errno = EFBIG). */
char *fs_read_file(const char *path, size_t max_bytes, size_t *len);
/* All len bytes to fd, through short writes and EINTR; 0, or -1 with
 * errno.  Only write(2): safe in a signal handler and after fork. */
int fs_write_all(int fd, const void *data, size_t len);
/* fs_write_all to a pipe whose reader may be gone: -1 with EPIPE then, and
 * no SIGPIPE, whatever the process's disposition of it (blocked in the
 * calling thread meanwhile, and a SIGPIPE this write raised taken back). */
int fs_write_pipe(int fd, const void *data, size_t len);
/* Write atomically (temp file + rename); 0 or -1 with errno. */
int fs_write_file(const char *path, const void *data, size_t len);
int fs_mkdir_p(const char *path, int mode);
/* Remove a tree; 0 or -1.  Refuses "/" and empty paths. */
int fs_rm_rf(const char *path);
/* Create a fresh private directory under $TMPDIR (or /tmp): "<prefix>XXXXXX". */
int fs_mkdtemp(const char *prefix, char *out, size_t n);
int fs_exists(const char *path);
/* Copy a file; 0 or -1. */
int fs_copy_file(const char *src, const char *dst);

/* A program's path: as given when it holds a /, else the first
 * executable of that name on $PATH, symlinks not followed (a venv's
 * bin/python3 stays in the venv).  0, or -1 (out "") when not found. */
int fs_which(const char *prog, char *out, size_t n);

#endif
