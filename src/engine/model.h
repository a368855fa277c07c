/*
 * model.h -- a Qwen3 model on a device, as the generation loop and the
 * Tasting Room see it: run tokens through the model (each hot op through
 * its slot, op_slot.h) and pick the next token.  Two devices:
 *
 *   cpu  (model_cpu.c)   the plain C forward in fp32 (qwen3_forward.c); the
 *                        slot's kernels take f32 host tensors (.c kernels);
 *   cuda (model_cuda.c)  the GPU engine, build/libemile-engine-cuda.so,
 *                        loaded with dlopen; bf16 device tensors (.cu
 *                        kernels), greedy picks on the device, decode by
 *                        CUDA graph replay.
 *
 * Everything above this interface -- the loop and its timing (generate.c),
 * the side-by-side run and its report (taste.c) -- is shared.
 */
#ifndef EMILE_ENGINE_MODEL_H
#define EMILE_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/attn_slot.h"
#include "engine/qwen3.h"
#include "engine/sampler.h"

typedef struct engine_model engine_model_t;

struct engine_model {
    const char *device;        /* its name in model_devices.c: the backend whose kernels its slots take */
    const char *kernel_lang;   /* language of the slot's kernels: "c" or "cu" */
    const char *slot_dtype;    /* what the slot's tensors hold: "f32" or "bf16" */
    qwen3_config_t c;
    int max_seq, max_chunk;    /* KV cache positions; tokens per call at most */
    char device_name[128];     /* "NVIDIA H100 80GB HBM3", or the cpu's "cpu" */
    char decode_path[192];     /* how decode runs: "cpu", "graph", "stream (why)" */
    /*
     * Run n tokens at positions pos..pos+n-1 (1 <= n <= max_chunk; at pos 0
     * the cache starts afresh and the attention goes through ops' attention
     * slot; a decode step -- one token at pos > 0 -- runs the decode ops
     * through theirs; ops NULL: the engine's own everywhere), then, when
     * next is not NULL, pick the token after the last one with smp (greedy
     * or sampled) into *next; a greedy pick in a decode step with a loaded
     * lm_head kernel is that kernel's.  With ops->prof, each op's time is
     * added to it.  0, or -1 with err.
     */
    int (*run)(engine_model_t *m, engine_ops_t *ops, const int *tokens, int n, int pos,
               sampler_t *smp, int *next, char *err, size_t errlen);
    /* Make ops' kernels ready to run (cuda: hand them to the library,
     * which captures the decode graph again) before anything is timed;
     * NULL: nothing to do (run takes the slots as they come).  0, or -1
     * with err. */
    int (*prepare)(engine_model_t *m, engine_ops_t *ops, char *err, size_t errlen);
    void (*close)(engine_model_t *m);
    void *impl;
};

/* Where the weights come from: a checkpoint directory, else random
 * weights of config c drawn from seed. */
typedef struct engine_weights_src {
    const char *model_dir;     /* NULL: random */
    uint64_t seed;
    /* Called once the weights are read (cpu) or the checkpoint is mapped
     * (cuda), before the device is touched; NULL: nothing.  The Tasting
     * Room's sandbox goes on here (taste_confine_identity): the runner's
     * order, the uid before the driver.  0, or -1 with err (then the open
     * fails with it). */
    int (*before_device)(void *user, char *err, size_t errlen);
    void *user;
} engine_weights_src_t;

/* The plain C model with its own weights and state.  0, or -1 with err. */
int engine_model_open_cpu(engine_model_t *m, const qwen3_config_t *c,
                          const engine_weights_src_t *src, int max_seq, int max_chunk,
                          char *err, size_t errlen);

/* The plain C model over weights and state the caller owns (close frees
 * nothing of theirs).  0, or -1 (out of memory) with err. */
int engine_model_wrap_cpu(engine_model_t *m, const qwen3_config_t *c,
                          const qwen3_weights_t *w, qwen3_state_t *s, char *err, size_t errlen);

/*
 * The GPU model: finds and loads the engine library (engine_cuda_library),
 * checks for a driver and a GPU, and creates the model on device 0 (bf16
 * weights uploaded from the checkpoint, or drawn there).  0, or -1 with
 * err (library missing, no driver or GPU, out of device memory ...).
 */
int engine_model_open_cuda(engine_model_t *m, const qwen3_config_t *c,
                           const engine_weights_src_t *src, int max_seq, int max_chunk,
                           char *err, size_t errlen);

/*
 * The engine library's path: $EMILE_ENGINE_CUDA when set (and then only
 * it), else libemile-engine-cuda.so beside the running binary, else
 * build/libemile-engine-cuda.so under the current directory.  0 with the
 * first that exists in buf, or -1 with the places looked at in err.
 */
int engine_cuda_library(char *buf, size_t n, char *err, size_t errlen);

/*
 * The devices the model runs on, each named after the backend whose
 * kernels its slots take (src/backend/backend.h): what the Tasting Room
 * offers and opens.  A new one is a model_<name>.c and a line in
 * model_devices.c.
 */
typedef struct engine_device {
    const char *name;          /* the backend's name */
    const char *kernel_lang;   /* the slots' kernels' language tag (lang.h) */
    const char *slot_dtype;    /* what the slots' tensors hold: "f32", "bf16" */
    int warmup;                /* untimed prefills before the timed one, by default
                                  (cuda 1: the driver's and cuBLAS's first calls) */
    int (*open)(engine_model_t *m, const qwen3_config_t *c, const engine_weights_src_t *src,
                int max_seq, int max_chunk, char *err, size_t errlen);
} engine_device_t;

/* By name; NULL when the model does not run there. */
const engine_device_t *engine_device_find(const char *name);
/* "cpu, cuda": the names, for messages. */
const char *engine_device_names(void);

/* m->close(m) when open; leaves m zeroed. */
void engine_model_close(engine_model_t *m);

#endif /* EMILE_ENGINE_MODEL_H */
