/*
 * model_cuda.c -- the cuda engine_model_t (model.h): the GPU engine
 * (src/engine/cuda/qwen3_cuda.cu, built into libemile-engine-cuda.so) found
 * and loaded with dlopen at run time, so this file, and emile, build and
 * run without CUDA; --device cuda then fails with a message that says what
 * is missing (the library, the driver, a GPU: when creating the model
 * fails, the cuda backend's driver probe names the cause).
 *
 * Greedy picks run on the device (qwen3_cuda_argmax, or inside the decode
 * graph), so decode moves one int per token to the host; sampling copies
 * the last row of logits and uses the host sampler.  The slot's built-in
 * kernel means the engine's own GPU attention (NULL to qwen3_cuda_forward);
 * a loaded kernel is called as it is, with bf16 device tensors.
 */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/model.h"
#include "engine/qwen3_cuda.h"
#include "util/paths.h"

#define ENGINE_CUDA_SO "libemile-engine-cuda.so"

/* This device's name: its line in model_devices.c, and the backend whose
 * kernels its slots take and whose probe explains a missing GPU stack. */
static const char cuda_name[] = "cuda";

typedef struct cuda_impl {
    qwen3_cuda_t *m;
    float *logits;            /* [vocab] host row for the sampler */
    emile_kernel_fn ops[ENGINE_OP_COUNT];   /* the decode slots the library holds */
    int profiling;            /* the library's breakdown is on */
} cuda_impl_t;

/* Loaded once per library path and kept until exit: unloading the CUDA
 * runtime under a live process buys nothing and has teardown-order hazards. */
static qwen3_cuda_api_t api;
static char api_path[PATH_MAX];

int engine_cuda_library(char *buf, size_t n, char *err, size_t errlen)
{
    const char *env = getenv("EMILE_ENGINE_CUDA");
    if (env && *env) {
        if (access(env, R_OK) != 0) {
            snprintf(err, errlen, "EMILE_ENGINE_CUDA=%s: no such file", env);
            return -1;
        }
        snprintf(buf, n, "%s", env);
        return 0;
    }
    char self[PATH_MAX], beside[PATH_MAX + 64];
    snprintf(self, sizeof self, "%s", emile_self_path());
    snprintf(beside, sizeof beside, "%s/" ENGINE_CUDA_SO, dirname(self));
    const char *places[] = { beside, "build/" ENGINE_CUDA_SO };
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++)
        if (access(places[i], R_OK) == 0) {
            snprintf(buf, n, "%s", places[i]);
            return 0;
        }
    snprintf(err, errlen, "the GPU engine is not built: no %s beside %s nor in build/ (build "
             "it with `make build/" ENGINE_CUDA_SO "`, which needs nvcc, or set "
             "EMILE_ENGINE_CUDA to its path)", ENGINE_CUDA_SO, emile_self_path());
    return -1;
}

/* dlsym into a function pointer (POSIX allows the conversion; the memcpy
 * keeps -Wpedantic quiet). */
static int sym(void *h, const char *name, void *fn, size_t fn_size, const char *path, char *err,
               size_t errlen)
{
    void *p = dlsym(h, name);
    if (!p) {
        snprintf(err, errlen, "%s: no entry point %s (an engine library of another version?)",
                 path, name);
        return -1;
    }
    memcpy(fn, &p, fn_size);
    return 0;
}

static int load_api(char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (engine_cuda_library(path, sizeof path, err, errlen) != 0)
        return -1;
    if (strcmp(path, api_path) == 0)
        return 0;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        /* built where nvcc and cuBLAS's headers are, but no GPU stack to
         * load it with: the backend's probe names what is missing */
        const backend_t *b = backend_find(cuda_name);
        char why[512];
        if (b && b->available(why, sizeof why) != 0)
            snprintf(err, errlen, "--device cuda: %s (dlopen %s: %s)", why, path, dlerror());
        else
            snprintf(err, errlen, "dlopen %s: %s", path, dlerror());
        return -1;
    }
    qwen3_cuda_api_t a;
    if (sym(h, "qwen3_cuda_create", &a.create, sizeof a.create, path, err, errlen) ||
        sym(h, "qwen3_cuda_destroy", &a.destroy, sizeof a.destroy, path, err, errlen) ||
        sym(h, "qwen3_cuda_forward", &a.forward, sizeof a.forward, path, err, errlen) ||
        sym(h, "qwen3_cuda_argmax", &a.argmax, sizeof a.argmax, path, err, errlen) ||
        sym(h, "qwen3_cuda_device_name", &a.device_name, sizeof a.device_name, path, err,
            errlen) ||
        sym(h, "qwen3_cuda_decode_step", &a.decode_step, sizeof a.decode_step, path, err,
            errlen) ||
        sym(h, "qwen3_cuda_decode_path", &a.decode_path, sizeof a.decode_path, path, err,
            errlen)) {
        dlclose(h);
        return -1;
    }
    /* op slots and the breakdown: asked for only when used */
    char ignored[16];
    if (sym(h, "qwen3_cuda_set_ops", &a.set_ops, sizeof a.set_ops, path, ignored, 0))
        a.set_ops = NULL;
    if (sym(h, "qwen3_cuda_set_profile", &a.set_profile, sizeof a.set_profile, path, ignored,
            0) ||
        sym(h, "qwen3_cuda_profile_take", &a.profile_take, sizeof a.profile_take, path, ignored,
            0))
        a.set_profile = NULL, a.profile_take = NULL;
    memset(&api, 0, sizeof api);
    api = a;
    snprintf(api_path, sizeof api_path, "%s", path);
    return 0;
}

static int get_tensor(void *user, const char *name, const void **data, int *dtype,
                      int64_t *numel)
{
    const st_tensor_t *t = st_checkpoint_find(user, name);
    if (!t)
        return -1;
    *data = t->data;
    *dtype = t->dtype;
    *numel = t->numel;
    return 0;
}

/* Hand the library the decode slots' kernels and the breakdown switch
 * when they changed (the decode graph is captured again then). */
static int sync_ops(engine_model_t *m, engine_ops_t *ops, char *err, size_t errlen)
{
    cuda_impl_t *p = m->impl;
    emile_kernel_fn fns[ENGINE_OP_COUNT] = { 0 };
    int changed = 0;
    for (int i = 0; ops && i < ENGINE_OP_COUNT; i++) {
        fns[i] = engine_op_is_decode(i) && ops->slot[i].handle ? ops->slot[i].fn : NULL;
        changed |= fns[i] != p->ops[i];
    }
    if (changed) {
        if (!api.set_ops) {
            snprintf(err, errlen, "the GPU engine library %s has no op slots (another version: "
                     "rebuild it with `make build/libemile-engine-cuda.so`)", api_path);
            return -1;
        }
        if (api.set_ops(p->m, fns, err, errlen) != 0) {
            memset(p->ops, 0, sizeof p->ops);
            return -1;
        }
        memcpy(p->ops, fns, sizeof fns);
        snprintf(m->decode_path, sizeof m->decode_path, "%s", api.decode_path(p->m));
    }
    int want = ops && ops->prof;
    if (want != p->profiling) {
        if (!api.set_profile) {
            snprintf(err, errlen, "the GPU engine library %s has no breakdown (another version:"
                     " rebuild it with `make build/libemile-engine-cuda.so`)", api_path);
            return -1;
        }
        if (api.set_profile(p->m, want, err, errlen) != 0)
            return -1;
        p->profiling = want;
    }
    return 0;
}

/* Count the calls each slot's kernel got: n_layers per forward for the
 * attention slot at 0 and for the decode ops in a step, one for lm_head. */
static void count_calls(engine_model_t *m, engine_ops_t *ops, int decode)
{
    for (int i = 0; ops && i < ENGINE_OP_COUNT; i++)
        if (ops->slot[i].handle && (decode ? engine_op_is_decode(i) : i == ENGINE_OP_ATTENTION))
            ops->slot[i].calls += i == ENGINE_OP_LM_HEAD ? 1 : m->c.n_layers;
}

static int cuda_run(engine_model_t *m, engine_ops_t *ops, const int *tokens, int n, int pos,
                    sampler_t *smp, int *next, char *err, size_t errlen)
{
    cuda_impl_t *p = m->impl;
    int greedy = !next || smp->temperature <= 0.0f;
    float *logits = greedy ? NULL : p->logits;
    if (sync_ops(m, ops, err, errlen) != 0)
        return -1;
    int rc = 0;
    if (n == 1 && pos > 0) {
        int tok;
        rc = api.decode_step(p->m, tokens[0], pos, &tok, logits, err, errlen);
        if (rc == 0 && next)
            *next = greedy ? tok : sampler_sample(smp, logits);
        count_calls(m, ops, 1);
    } else {
        const attn_slot_t *slot = ops ? &ops->slot[ENGINE_OP_ATTENTION] : NULL;
        emile_kernel_fn attn = slot && slot->handle ? slot->fn : NULL;
        if (pos == 0)
            count_calls(m, ops, 0);
        rc = api.forward(p->m, attn, tokens, n, pos, 0, logits, err, errlen);
        if (rc == 0 && next && !greedy) {
            *next = sampler_sample(smp, logits);
        } else if (rc == 0 && next) {
            *next = api.argmax(p->m);
            if (*next < 0) {
                snprintf(err, errlen, "the GPU failed during the forward pass (argmax could "
                         "not be read back: a kernel in a slot that faulted?)");
                rc = -1;
            }
        }
    }
    if (rc == 0 && p->profiling)
        rc = api.profile_take(p->m, ops->prof, err, errlen);
    return rc;
}

static void cuda_close(engine_model_t *m)
{
    cuda_impl_t *p = m->impl;
    if (!p)
        return;
    if (p->m)
        api.destroy(p->m);
    free(p->logits);
    free(p);
}

int engine_model_open_cuda(engine_model_t *m, const qwen3_config_t *c,
                           const engine_weights_src_t *src, int max_seq, int max_chunk,
                           char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (load_api(err, errlen) != 0)
        return -1;
    cuda_impl_t *p = calloc(1, sizeof *p);
    if (!p || !(p->logits = malloc((size_t)c->vocab * sizeof *p->logits))) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->impl = p;
    m->close = cuda_close;
    int rc;
    int confined = 0;              /* a failed confinement is not the driver's fault */
    if (src->model_dir) {
        st_checkpoint_t ck;
        rc = st_checkpoint_open(&ck, src->model_dir, err, errlen);
        if (rc == 0) {
            /* the checkpoint is mapped: readable after a uid change */
            if (src->before_device && src->before_device(src->user, err, errlen) != 0)
                rc = -1, confined = 1;
            if (rc == 0)
                rc = api.create(c, max_seq, max_chunk, get_tensor, &ck, 0, &p->m, err, errlen);
            st_checkpoint_close(&ck);       /* the weights are on the device now */
        }
    } else {
        rc = 0;
        if (src->before_device && src->before_device(src->user, err, errlen) != 0)
            rc = -1, confined = 1;
        if (rc == 0)
            rc = api.create(c, max_seq, max_chunk, NULL, NULL, src->seed, &p->m, err, errlen);
    }
    if (rc != 0 && confined) {
        engine_model_close(m);
        return -1;
    }
    if (rc != 0) {
        /* the runtime's words for a missing driver are obscure; the
         * backend's probe says what is missing */
        const backend_t *b = backend_find(cuda_name);
        char why[512];
        if (b && b->available(why, sizeof why) != 0)
            snprintf(err, errlen, "--device cuda: %s", why);
        engine_model_close(m);
        return -1;
    }
    m->device = cuda_name;
    m->kernel_lang = "cu";
    m->slot_dtype = "bf16";
    m->c = *c;
    m->max_seq = max_seq;
    m->max_chunk = max_chunk;
    if (api.device_name(p->m, m->device_name, sizeof m->device_name) != 0)
        snprintf(m->device_name, sizeof m->device_name, "%s", cuda_name);
    snprintf(m->decode_path, sizeof m->decode_path, "%s", api.decode_path(p->m));
    m->run = cuda_run;
    m->prepare = sync_ops;
    return 0;
}
