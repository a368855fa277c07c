/*
 * taste_confine.h -- the Tasting Room's engine child gets the worker's
 * sandbox before it loads the kernels it tastes.  A run's best kernel may
 * have been written by a language model; "untrusted kernel code runs only
 * in the sandbox" holds here as in the runner:
 *
 *   - when root: a new network namespace, then the uid of nobody (as the
 *     runner); the model's files were read (or mapped) before the drop;
 *   - the allow-listed environment only (no API keys: sandbox_scrub_env);
 *   - not dumpable, no core files, killed with its parent;
 *   - the runner's seccomp filter: no processes, no exec, no network
 *     sockets (AF_UNIX on cuda, for the driver), no opens for writing on
 *     cpu, nothing that changes the file system or signals others; and on
 *     cpu, once the kernels are loaded, no new executable memory;
 *   - rlimits: no core files, 64 MiB files, 512 threads for nobody.
 *
 * On cuda the filter allows opens for writing and AF_UNIX sockets (the
 * driver needs them), as in the runner: there the uid drop (root only)
 * is what keeps a kernel out of the user's files.  An ordinary user's
 * cuda tasting is as confined as the user's cuda cook, no more.
 *
 * A forbidden call raises SIGSYS; the handler writes one JSON line naming
 * the call to report_fd ({"forbidden": NAME, "nr": N}) and exits 3, so the
 * parent can say which call it was.
 */
#ifndef EMILE_ENGINE_TASTE_CONFINE_H
#define EMILE_ENGINE_TASTE_CONFINE_H

#include <stddef.h>
#include <sys/types.h>

/* Step 1, once the model's files are read and before the device is
 * touched (the runner's order: the uid first, then the driver): network
 * namespace and nobody's uid when root, the scrubbed environment, not
 * dumpable, no core files, killed with the parent (its pid before the
 * fork; gone already: _exit).  0, or -1 with err. */
int taste_confine_identity(pid_t parent, char *err, size_t errlen);

/* Step 2, after the device is set up and before the kernels are loaded:
 * the SIGSYS handler (reporting to report_fd) and the seccomp filter
 * (gpu: a GPU driver's, which lets it probe files; backend.h's
 * BACKEND_GPU).  0, or -1 with err (the kernel refuses the filter: the tasting does not
 * run unfiltered). */
int taste_confine_filter(int gpu, int report_fd, char *err, size_t errlen);

/* Once the kernels are loaded: unless gpu, no new executable memory from
 * here on.  0, or -1 with err. */
int taste_confine_loaded(int gpu, char *err, size_t errlen);

#endif /* EMILE_ENGINE_TASTE_CONFINE_H */
