/* occupancy.h -- theoretical occupancy of a CUDA kernel launch and what
 * limits it, computed like CUDA's occupancy calculator from the launch
 * (threads per block, dynamic shared memory), the kernel's resources
 * (registers per thread, static shared memory) and the device's limits. */
#ifndef EMILE_OCCUPANCY_H
#define EMILE_OCCUPANCY_H

typedef struct occ_device {
    int max_warps_per_sm;      /* 64 on sm_80/sm_90 */
    int max_blocks_per_sm;     /* 32 */
    int regs_per_sm;           /* 65536 */
    int reg_alloc_unit;        /* registers, per warp: 256 */
    int smem_per_sm;           /* bytes usable by blocks: 233472 on sm_90 */
    int smem_reserved_per_block; /* 1024 on sm_80+ */
    int smem_alloc_unit;       /* 128 */
    int sms;
} occ_device_t;

typedef struct occ_result {
    int blocks_per_sm;
    int warps_per_sm;
    double occupancy;          /* active warps / max warps */
    const char *limiter;       /* "registers", "shared_memory", "threads", "blocks" */
    int by_regs, by_smem, by_threads, by_blocks;
    double waves;              /* grid blocks / (blocks_per_sm * sms) */
} occ_result_t;

/* Limits of a compute capability (e.g. 90); unknown ones get sm_90's. */
void occ_device_for_cc(int cc, int sms, occ_device_t *d);
/* 0 on success; -1 if the launch cannot run at all (e.g. too much smem). */
int occ_compute(const occ_device_t *d, int threads_per_block, int regs_per_thread, int smem_bytes,
                long long grid_blocks, occ_result_t *r);

#endif
