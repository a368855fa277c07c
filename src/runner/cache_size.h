/*
 * cache_size.h -- how large the CPU cache-flush buffer must be, from the
 * cache topology the kernel publishes in sysfs
 * (ROOT/devices/system/cpu/cpu0/cache/indexN/{level,type,size}), never from
 * sysconf(_SC_LEVEL3_CACHE_SIZE): on some VMs sysconf reports 256-384 MiB
 * of L3 (the host's, or a made-up figure) where the guest has 16-32 MiB,
 * and a flush buffer of twice that does not fit a 512 MB task.
 *
 * Kept apart from the runner's device code so that a unit test can point it
 * at a fake sysfs tree.
 */
#ifndef EMILE_RUNNER_CACHE_SIZE_H
#define EMILE_RUNNER_CACHE_SIZE_H

#include <stddef.h>

/* Without sysfs: a 32 MiB last-level cache is assumed (and said so). */
#define CACHE_FLUSH_DEFAULT_LLC ((size_t)32 << 20)
/* Never below this: small caches still get a buffer that evicts them. */
#define CACHE_FLUSH_MIN ((size_t)8 << 20)

/* The largest data or unified cache under sysfs_root ("/sys" normally),
 * in bytes, with its level in *level; 0 when none is readable. */
size_t cache_llc_bytes(const char *sysfs_root, int *level);

/* Bytes to write between timed runs: twice the last-level cache, at least
 * CACHE_FLUSH_MIN, at most cap (0: no cap) -- what the memory limit leaves.
 * source receives how the size was chosen, for the profile ("sysfs L3
 * 16 MiB x 2", "no cache topology in sysfs: 32 MiB assumed x 2", "..., capped
 * at 96 MiB by the memory limit"). */
size_t cache_flush_bytes(const char *sysfs_root, size_t cap, char *source, size_t n);

#endif
