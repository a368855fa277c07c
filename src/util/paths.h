/* paths.h -- where emile finds its own files: the kernel ABI header, the
 * kernel templates and the ceiling programs (the "root"), the runner binary
 * and the cache directory. */
#ifndef EMILE_PATHS_H
#define EMILE_PATHS_H

#include <stddef.h>

/* $EMILE_ROOT, else the directory above the running binary's directory when
 * it holds include/emile.h (build/emile -> repo), else the current dir. */
const char *emile_root(void);
/* $EMILE_RUNNER, else emile-runner beside the running binary. */
const char *emile_runner_path(void);
/* The running binary (/proc/self/exe). */
const char *emile_self_path(void);
/* $XDG_CACHE_HOME/emile or ~/.cache/emile (created). */
const char *emile_cache_dir(void);
/* root + "/" + rel into buf. */
const char *emile_root_file(const char *rel, char *buf, size_t n);

#endif
