/*
 * qwen3_cuda.h -- the GPU path of the engine: Qwen3 with bf16 weights on
 * the device, cuBLAS projections (bf16 in, fp32 accumulate), fused small
 * ops, a bf16 KV cache, and the same prefill attention slot as the CPU path
 * (the slot's kernel receives bf16 device tensors and the engine's stream).
 *
 * Decode runs one captured CUDA graph per token (qwen3_cuda_decode_step):
 * the token and position live in device memory, so the graph captured once
 * per model serves every step; when the capture fails the same launches run
 * eagerly, and qwen3_cuda_decode_path says which.
 *
 * It is built by nvcc into its own shared object (src/engine/cuda/
 * qwen3_cuda.cu -> build/libemile-engine-cuda.so, `make
 * build/libemile-engine-cuda.so`) and loaded with dlopen (by `emile taste
 * --device cuda`, src/engine/model_cuda.c), so the emile binary needs no
 * CUDA to build or run.  The entry points are plain C; qwen3_cuda_api_t
 * collects them for the loader.
 */
#ifndef EMILE_ENGINE_QWEN3_CUDA_H
#define EMILE_ENGINE_QWEN3_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "emile.h"
#include "qwen3.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qwen3_cuda qwen3_cuda_t;

/* Where the weights come from: get() returns the host bytes of the tensor
 * named as in Hugging Face checkpoints (dtype F32, F16 or BF16, numel
 * elements), 0 on success.  NULL get: random weights from seed, drawn on
 * the device with the formula of qwen3_weights_random, rounded to bf16. */
typedef int (*qwen3_cuda_get_fn)(void *user, const char *name, const void **data,
                                 int *dtype, int64_t *numel);

/*
 * Allocate the model on the current device for up to max_seq positions
 * and chunks of max_chunk tokens, upload (or draw) the weights, and
 * capture the decode graph (after one eager warm-up step; set
 * EMILE_ENGINE_NO_GRAPH=1 to keep the eager path).  Returns 0 and *out, or
 * -1 with a message in err.
 */
int qwen3_cuda_create(const qwen3_config_t *c, int max_seq, int max_chunk,
                      qwen3_cuda_get_fn get, void *user, uint64_t seed,
                      qwen3_cuda_t **out, char *err, size_t errlen);
void qwen3_cuda_destroy(qwen3_cuda_t *m);

/*
 * Same contract as qwen3_forward: n tokens at positions pos..pos+n-1; at
 * pos 0 the attention goes through attn (NULL: the engine's built-in
 * kernel), called once per layer with the engine's stream and no copy or
 * sync around it; later through the engine's cached attention.  The
 * logits (fp32, all n rows when all_logits, else the last row) are copied
 * to logits (host) when not NULL, and the call waits for them; with logits
 * NULL it returns once the work is enqueued (qwen3_cuda_argmax waits), so
 * an error of an asynchronous kernel may surface there.  A slot kernel's
 * non-zero return fails the call with its code in err.  all_logits is for
 * chunks of at most 256 tokens (the engine keeps that many rows).
 */
int qwen3_cuda_forward(qwen3_cuda_t *m, emile_kernel_fn attn, const int *tokens, int n,
                       int pos, int all_logits, float *logits, char *err, size_t errlen);

/* Argmax of the last forward's last row, on the device (skips copying the
 * logits in greedy decode); waits for it.  -1 on error. */
int qwen3_cuda_argmax(qwen3_cuda_t *m);

/*
 * One decode step: token at position pos (the cache holds 0..pos-1), by
 * replaying the decode graph (or the same launches eagerly); *next gets
 * the argmax of the new logits (when next is not NULL) and logits (host,
 * vocab floats) the logits themselves when not NULL, for sampling.  Waits
 * for the result.  Returns 0, or -1 with err.
 */
int qwen3_cuda_decode_step(qwen3_cuda_t *m, int token, int pos, int *next, float *logits,
                           char *err, size_t errlen);

/*
 * Put kernels of the ABI in the decode ops' slots (fns[op] for the ops
 * engine_op_is_decode names; NULL: the engine's own; fns[attention] is
 * ignored: the prefill's attention is qwen3_cuda_forward's attn).  Decode
 * steps call them on the engine's stream with bf16 device tensors (the
 * op specs of kernels/<op>/op.json; position and length in device memory),
 * inside the decode graph, which is captured again here after one eager
 * step (token 0 at position 0) that checks them.  0, or -1 with err (a
 * kernel that returned non-zero or faulted: the engine's own ops are back).
 */
int qwen3_cuda_set_ops(qwen3_cuda_t *m, const emile_kernel_fn *fns, char *err, size_t errlen);

/*
 * The breakdown: on, every forward and decode step records a CUDA event at
 * the end of each section (an op, or the norms and adds between them; a
 * second decode graph holds them as event nodes), and
 * qwen3_cuda_profile_take adds the times since the last take to *p (and
 * zeroes its own).  Times are the device's; the events cost a little, so
 * time a generation with it off.  0, or -1 with err.
 */
int qwen3_cuda_set_profile(qwen3_cuda_t *m, int on, char *err, size_t errlen);
int qwen3_cuda_profile_take(qwen3_cuda_t *m, engine_profile_t *p, char *err, size_t errlen);

/* "graph", or "stream (why)" when decode runs without the graph. */
const char *qwen3_cuda_decode_path(qwen3_cuda_t *m);

/* Synchronise and return the device's name in buf (for reports). */
int qwen3_cuda_device_name(qwen3_cuda_t *m, char *buf, size_t len);

typedef struct qwen3_cuda_api {
    int (*create)(const qwen3_config_t *, int, int, qwen3_cuda_get_fn, void *, uint64_t,
                  qwen3_cuda_t **, char *, size_t);
    void (*destroy)(qwen3_cuda_t *);
    int (*forward)(qwen3_cuda_t *, emile_kernel_fn, const int *, int, int, int, float *,
                   char *, size_t);
    int (*argmax)(qwen3_cuda_t *);
    int (*device_name)(qwen3_cuda_t *, char *, size_t);
    int (*decode_step)(qwen3_cuda_t *, int, int, int *, float *, char *, size_t);
    const char *(*decode_path)(qwen3_cuda_t *);
    /* optional (an engine library without op slots lacks them): */
    int (*set_ops)(qwen3_cuda_t *, const emile_kernel_fn *, char *, size_t);
    int (*set_profile)(qwen3_cuda_t *, int, char *, size_t);
    int (*profile_take)(qwen3_cuda_t *, engine_profile_t *, char *, size_t);
} qwen3_cuda_api_t;

#ifdef __cplusplus
}
#endif

#endif /* EMILE_ENGINE_QWEN3_CUDA_H */
