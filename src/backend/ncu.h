/* ncu.h -- hardware counters from Nsight Compute: the metrics we ask for,
 * and the parser of `ncu --csv` output (values carry thousands separators;
 * ncu locks clocks to base by default, so times come from events and only
 * counts from ncu). */
#ifndef EMILE_NCU_H
#define EMILE_NCU_H

#include <jansson.h>
#include <stddef.h>

/* Comma-separated metric list for --metrics. */
const char *ncu_metrics(void);
/* ncu's path: $EMILE_NCU, else beside nvcc, else "ncu". */
const char *ncu_path(void);
/* Parse CSV text into {"kernels":[{name, metrics:{...}}], "dram_bytes",
 * "dram_read_bytes", "dram_write_bytes", "achieved_occupancy_pct",
 * "sm_throughput_pct", "tensor_pipe_pct", "top_stalls":[{reason,pct}]}
 * (the summary from the kernel with the most DRAM traffic + tensor work).
 * -1 with err when nothing parses, or when ncu reported an error such as
 * ERR_NVGPUCTRPERM (the message says what to do). */
int ncu_parse_csv(const char *text, json_t **out, char *err, size_t n);

#endif
