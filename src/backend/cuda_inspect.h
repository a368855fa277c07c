/* cuda_inspect.h -- static facts about a built CUDA shared object, read
 * with cuobjdump: per kernel registers, stack, shared and local (spill)
 * memory, and whether its SASS uses the tensor cores (HMMA, HGMMA). */
#ifndef EMILE_CUDA_INSPECT_H
#define EMILE_CUDA_INSPECT_H

#include <jansson.h>
#include <stddef.h>

/* Parse `cuobjdump -res-usage` text: array of {"name","registers","stack",
 * "shared","local","constant"} objects. */
json_t *cuda_parse_res_usage(const char *text);
/* Counts of tensor-core instructions per kernel in `cuobjdump -sass` text:
 * object name -> {"hmma": n, "hgmma": n, "ldmatrix": n, "tma": n}. */
json_t *cuda_parse_sass(const char *text);
/* Run both on so_path (cuobjdump beside nvcc) and merge. */
int cuda_inspect(const char *so_path, const char *workdir, int cc, json_t **kernels, char *err, size_t n);
const char *cuda_nvcc(void);
void cuda_arch_flag(int cc, char *buf, size_t n);

#endif
