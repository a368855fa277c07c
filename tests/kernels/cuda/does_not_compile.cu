/*
 * does_not_compile.cu -- MUST NOT COMPILE: a candidate with a type error
 * (assigning a pointer to a float) and a call to an undeclared function.
 * The harness must report status "compile_error" with nvcc's message in the
 * compile log, and never try to load or run anything.
 */
#include <cuda_runtime.h>
#include "emile.h"

__global__ void broken(float *o)
{
    float x = o;                 /* error: a float * is not a float */
    o[threadIdx.x] = undeclared_helper(x);
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    broken<<<1, 32, 0, (cudaStream_t)args->stream>>>((float *)args->tensors[3].data);
    return 0;
}
