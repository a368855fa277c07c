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
/* The toolchain and target (cuda.c): nvcc's path, -arch for a compute
 * capability, device 0's capability (e.g. 90; EMILE_CUDA_ARCH overrides;
 * 0 unknown) and the shared memory a block may opt in to (bytes). */
const char *cuda_nvcc(void);
void cuda_arch_flag(int cc, char *buf, size_t n);
int cuda_cc(void);
int cuda_smem_optin(void);

#endif
