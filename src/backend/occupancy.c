/* occupancy.c -- see occupancy.h. */
#include "occupancy.h"

#include <string.h>

void occ_device_for_cc(int cc, int sms, occ_device_t *d)
{
    memset(d, 0, sizeof *d);
    d->max_warps_per_sm = 64;
    d->max_blocks_per_sm = 32;
    d->regs_per_sm = 65536;
    d->reg_alloc_unit = 256;
    d->smem_reserved_per_block = 1024;
    d->smem_alloc_unit = 128;
    d->sms = sms > 0 ? sms : 132;
    switch (cc) {
    case 80: d->smem_per_sm = 167936; break;           /* A100: 164 KiB */
    case 86: case 89: d->smem_per_sm = 102400; d->max_warps_per_sm = cc == 86 ? 48 : 48;
        d->max_blocks_per_sm = cc == 86 ? 16 : 24; break;
    default: d->smem_per_sm = 233472; break;            /* H100: 228 KiB */
    }
}

static int round_up(int x, int unit)
{
    return (x + unit - 1) / unit * unit;
}

int occ_compute(const occ_device_t *d, int threads, int regs, int smem, long long grid, occ_result_t *r)
{
    memset(r, 0, sizeof *r);
    if (threads <= 0 || threads > 1024 || regs > 255 || regs < 0 || smem < 0)
        return -1;
    int warps = (threads + 31) / 32;
    int regs_per_warp = round_up((regs > 0 ? regs : 1) * 32, d->reg_alloc_unit);
    r->by_regs = regs > 0 ? d->regs_per_sm / (regs_per_warp * warps) : d->max_blocks_per_sm;
    int smem_block = round_up(smem + d->smem_reserved_per_block, d->smem_alloc_unit);
    r->by_smem = smem_block > 0 ? d->smem_per_sm / smem_block : d->max_blocks_per_sm;
    r->by_threads = d->max_warps_per_sm / warps;
    r->by_blocks = d->max_blocks_per_sm;
    int best = r->by_blocks;
    r->limiter = "blocks";
    if (r->by_threads < best || (r->by_threads == best && r->by_threads * warps == d->max_warps_per_sm)) {
        best = r->by_threads;
        r->limiter = "threads";
    }
    if (r->by_regs < best) {
        best = r->by_regs;
        r->limiter = "registers";
    }
    if (r->by_smem < best) {
        best = r->by_smem;
        r->limiter = "shared_memory";
    }
    r->blocks_per_sm = best;
    r->warps_per_sm = best * warps;
    r->occupancy = (double)r->warps_per_sm / d->max_warps_per_sm;
    if (best > 0 && grid > 0)
        r->waves = (double)grid / ((double)best * d->sms);
    return best > 0 ? 0 : -1;
}
