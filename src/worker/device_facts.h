/*
 * device_facts.h -- what the profile says about the device kernels of a
 * validated candidate (cuda): each launch of its last run (configuration,
 * resources, theoretical occupancy, launches on a stream not its own), and
 * hardware counters from one more run under Nsight Compute.
 */
#ifndef EMILE_WORKER_DEVICE_FACTS_H
#define EMILE_WORKER_DEVICE_FACTS_H

#include <jansson.h>

#include "worker_internal.h"

/* Per launch of the last run, joined with the static facts of the SASS
 * (static_kernels); an empty array when there are none. */
json_t *device_launch_report(eval_state_t *e, const json_t *static_kernels);

/* Hardware counters (cuda, ncu), or {"available":false,"why":...}. */
json_t *device_counters(eval_state_t *e, const char *dir, const char *so);

#endif
