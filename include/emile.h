/*
 * emile.h -- the kernel ABI: the one public contract between references,
 * candidate kernels, the harness (worker/runner) and the engine.
 *
 * A kernel is a source file (C for the cpu backend, CUDA C++ for the cuda
 * backend) that builds into a shared object exporting one entry point:
 *
 *     EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args);
 *
 * The harness owns every allocation, the inputs, the outputs and the timing;
 * a kernel owns nothing that outlives the call.  It may launch any number of
 * inner kernels (OpenMP regions, CUDA launches) but must have finished all of
 * its work on the given stream when the stream is synchronised (cuda) or when
 * the call returns (cpu).  Return EMILE_OK (0) on success, one of the
 * EMILE_ERR_* codes below on failure (any other non-zero value is a failure
 * too; the harness then says only its number).
 *
 * Tensors arrive in the op's order (inputs first, then outputs) and are also
 * found by name.  Strides are in elements, not bytes.  Op parameters (sizes,
 * flags, scale) arrive as name/value pairs.
 *
 * Attention prefill (op "attention"):
 *   tensors  q [B, S, Hq, D]   k [B, S, Hkv, D]   v [B, S, Hkv, D]   o [B, S, Hq, D]
 *   params   batch, seq, q_heads, kv_heads, head_dim, causal (0/1),
 *            scale (1/sqrt(D))
 *   o[b,i,h,:] = sum_j softmax_j(scale * q[b,i,h,:].k[b,j,h/(Hq/Hkv),:]) v[b,j,h/(Hq/Hkv),:]
 *   where j <= i when causal.
 *
 * ABI version 1.  Plain C, usable from C, C++ and Python ctypes.
 */
#ifndef EMILE_H
#define EMILE_H

#include <stdint.h>
#include <string.h>

#define EMILE_ABI_VERSION 1
#define EMILE_MAX_DIMS 8

#ifdef __cplusplus
#define EMILE_KERNEL_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define EMILE_KERNEL_EXPORT __attribute__((visibility("default")))
#endif

/* Element types.  Values are part of the ABI: never renumber. */
typedef enum emile_dtype {
    EMILE_DTYPE_F32 = 0,
    EMILE_DTYPE_F16 = 1,
    EMILE_DTYPE_BF16 = 2,
    EMILE_DTYPE_F64 = 3,
    EMILE_DTYPE_I32 = 4,
    EMILE_DTYPE_I64 = 5
} emile_dtype_t;

/* One tensor: a pointer into host memory (cpu) or device memory (cuda). */
typedef struct emile_tensor {
    void *data;
    const char *name;                 /* "q", "k", "v", "o", ... */
    int32_t dtype;                    /* emile_dtype_t */
    int32_t ndim;
    int64_t shape[EMILE_MAX_DIMS];
    int64_t strides[EMILE_MAX_DIMS];  /* in elements */
} emile_tensor_t;

/* One op parameter. Integers are exact in a double up to 2^53. */
typedef struct emile_param {
    const char *name;
    double value;
} emile_param_t;

typedef struct emile_args {
    int32_t abi_version;              /* EMILE_ABI_VERSION of the caller */
    int32_t n_tensors;
    emile_tensor_t *tensors;
    int32_t n_params;
    const emile_param_t *params;
    void *stream;                     /* cudaStream_t on cuda, NULL on cpu */
} emile_args_t;

typedef int (*emile_kernel_fn)(const emile_args_t *args);

/* Return codes.  0 is success; the others name why a kernel refused or
 * failed, so that the harness can say which limit or unsupported case was
 * hit.  Values are part of the ABI: never renumber.  (A kernel may also
 * print one line to stderr saying more; the harness quotes it, filtered.) */
enum {
    EMILE_OK = 0,
    EMILE_ERR_ARGS = 1,        /* a tensor missing, of the wrong rank, or abi_version unknown */
    EMILE_ERR_SHAPE = 2,       /* shapes that disagree with each other or with the params */
    EMILE_ERR_PARAM = 3,       /* a parameter out of range (a size <= 0, heads not divisible) */
    EMILE_ERR_DTYPE = 4,       /* a dtype the kernel does not support */
    EMILE_ERR_LIMIT = 5,       /* a size beyond what the kernel supports (grid, index width) */
    EMILE_ERR_MEMORY = 6,      /* scratch memory could not be allocated */
    EMILE_ERR_DEVICE = 7,      /* a device call or launch failed */
    EMILE_ERR_UNSUPPORTED = 8  /* a case the kernel does not implement (e.g. non-causal) */
};

/* The name and meaning of a return code ("EMILE_ERR_DTYPE: a dtype the
 * kernel does not support"), or NULL for a number the ABI does not name. */
static inline const char *emile_status_str(int rc)
{
    switch (rc) {
    case EMILE_OK: return "EMILE_OK: success";
    case EMILE_ERR_ARGS: return "EMILE_ERR_ARGS: a tensor missing, of the wrong rank, or an unknown ABI version";
    case EMILE_ERR_SHAPE: return "EMILE_ERR_SHAPE: shapes that disagree with each other or with the params";
    case EMILE_ERR_PARAM: return "EMILE_ERR_PARAM: a parameter out of range";
    case EMILE_ERR_DTYPE: return "EMILE_ERR_DTYPE: a dtype the kernel does not support";
    case EMILE_ERR_LIMIT: return "EMILE_ERR_LIMIT: a size beyond what the kernel supports";
    case EMILE_ERR_MEMORY: return "EMILE_ERR_MEMORY: scratch memory could not be allocated";
    case EMILE_ERR_DEVICE: return "EMILE_ERR_DEVICE: a device call or launch failed";
    case EMILE_ERR_UNSUPPORTED: return "EMILE_ERR_UNSUPPORTED: a case the kernel does not implement";
    default: return 0;
    }
}

/* The name of the entry point every kernel exports. */
#define EMILE_ENTRY_SYMBOL "emile_kernel"

/* Look up a parameter by name; dflt when absent. */
static inline double emile_param(const emile_args_t *a, const char *name, double dflt)
{
    for (int32_t i = 0; i < a->n_params; i++)
        if (strcmp(a->params[i].name, name) == 0)
            return a->params[i].value;
    return dflt;
}

/* Look up a tensor by name; NULL when absent. */
static inline emile_tensor_t *emile_tensor(const emile_args_t *a, const char *name)
{
    for (int32_t i = 0; i < a->n_tensors; i++)
        if (strcmp(a->tensors[i].name, name) == 0)
            return &a->tensors[i];
    return 0;
}

static inline size_t emile_dtype_size(int32_t dtype)
{
    switch (dtype) {
    case EMILE_DTYPE_F32: case EMILE_DTYPE_I32: return 4;
    case EMILE_DTYPE_F16: case EMILE_DTYPE_BF16: return 2;
    case EMILE_DTYPE_F64: case EMILE_DTYPE_I64: return 8;
    default: return 0;
    }
}

#endif /* EMILE_H */
