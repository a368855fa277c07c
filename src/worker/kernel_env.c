/* kernel_env.c -- see kernel_env.h. */
#include "kernel_env.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/paths.h"

int kernel_dir_make(const char *base, const char *kind, int *counter, rng_t *rng, long uid, char *out, size_t n)
{
    /* Unguessable names: nothing of one kernel's may be found by another. */
    snprintf(out, n, "%s/%s-%d-%016llx", base, kind, ++*counter, (unsigned long long)rng_next(rng));
    if (mkdir(out, 0700) != 0)
        return -1;
    if (uid >= 0 && geteuid() == 0 && chown(out, (uid_t)uid, (gid_t)uid) != 0)
        return -1;
    char hdr[1024], dst[1024];
    emile_root_file("include/emile.h", hdr, sizeof hdr);
    snprintf(dst, sizeof dst, "%s/emile.h", out);
    if (fs_copy_file(hdr, dst) != 0)
        return -1;
    if (uid >= 0 && geteuid() == 0 && chown(dst, (uid_t)uid, (gid_t)uid) != 0)
        return -1;
    return 0;
}

void kernel_runner_limits(const task_t *t, const backend_t *b, long uid, sandbox_limits_t *l)
{
    sandbox_limits_default(l);
    l->wall_s = t->time_limit_s;
    l->cpu_s = 0;
    l->mem_bytes = b->host_mem_limit ? (size_t)(t->memory_limit_mb * 1048576.0) : 0;
    l->fsize_bytes = (size_t)1 << 20;
    l->nofile = b->host_mem_limit ? KERNEL_NOFILE_CPU : KERNEL_NOFILE_CUDA;
    l->drop_uid = uid;
}
