/* launches.h -- device kernel launches the runner saw during the last run
 * (cuda: captured by interposing cudaLaunchKernel). */
#ifndef EMILE_RUNNER_LAUNCHES_H
#define EMILE_RUNNER_LAUNCHES_H

#include <stddef.h>

#define RUNNER_MAX_LAUNCHES 64

typedef struct launch_record {
    char name[256];
    unsigned grid[3], block[3];
    size_t dyn_smem, static_smem, local;
    int regs;
    int other_stream;   /* 1: launched on a stream not the harness's; 2: legacy default stream */
} launch_record_t;

/* The launches of the last run (count; *out valid until the next run). */
int runner_launches(const launch_record_t **out);

#endif
