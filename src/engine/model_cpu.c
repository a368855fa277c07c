/*
 * model_cpu.c -- the cpu engine_model_t (model.h): qwen3_forward in fp32,
 * the next token picked by the sampler from the host logits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"

typedef struct cpu_impl {
    qwen3_weights_t w;
    qwen3_state_t s;
    const qwen3_weights_t *wp;    /* &w, or the caller's when wrapped */
    qwen3_state_t *sp;
    int owned;
} cpu_impl_t;

static int cpu_run(engine_model_t *m, engine_ops_t *ops, const int *tokens, int n, int pos,
                   sampler_t *smp, int *next, char *err, size_t errlen)
{
    cpu_impl_t *p = m->impl;
    if (qwen3_forward_ops(&m->c, p->wp, p->sp, ops, tokens, n, pos, 0, err, errlen) != 0)
        return -1;
    if (next)   /* greedy: the lm_head kernel's own pick when it made one */
        *next = smp->temperature <= 0.0f && p->sp->argmax >= 0
              ? p->sp->argmax : sampler_sample(smp, p->sp->logits);
    return 0;
}

static void cpu_close(engine_model_t *m)
{
    cpu_impl_t *p = m->impl;
    if (p && p->owned) {
        qwen3_state_free(&p->s);
        qwen3_weights_free(&p->w);
    }
    free(p);
}

static int cpu_init(engine_model_t *m, const qwen3_config_t *c, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->impl = calloc(1, sizeof(cpu_impl_t));
    if (!m->impl) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->device = "cpu";
    m->kernel_lang = "c";
    m->slot_dtype = "f32";
    m->c = *c;
    snprintf(m->device_name, sizeof m->device_name, "cpu");
    snprintf(m->decode_path, sizeof m->decode_path, "cpu");
    m->run = cpu_run;
    m->close = cpu_close;
    return 0;
}

int engine_model_wrap_cpu(engine_model_t *m, const qwen3_config_t *c,
                          const qwen3_weights_t *w, qwen3_state_t *s, char *err, size_t errlen)
{
    if (cpu_init(m, c, err, errlen) != 0)
        return -1;
    cpu_impl_t *p = m->impl;
    p->wp = w;
    p->sp = s;
    m->max_seq = s->max_seq;
    m->max_chunk = s->max_chunk;
    return 0;
}

int engine_model_open_cpu(engine_model_t *m, const qwen3_config_t *c,
                          const engine_weights_src_t *src, int max_seq, int max_chunk,
                          char *err, size_t errlen)
{
    if (cpu_init(m, c, err, errlen) != 0)
        return -1;
    cpu_impl_t *p = m->impl;
    p->owned = 1;
    p->wp = &p->w;
    p->sp = &p->s;
    int rc;
    if (src->model_dir) {
        st_checkpoint_t ck;
        rc = st_checkpoint_open(&ck, src->model_dir, err, errlen);
        if (rc == 0) {
            rc = qwen3_weights_from_checkpoint(&p->w, c, &ck, err, errlen);
            st_checkpoint_close(&ck);
        }
    } else {
        rc = qwen3_weights_random(&p->w, c, src->seed, err, errlen);
    }
    if (rc == 0)
        rc = qwen3_state_init(&p->s, c, max_seq, max_chunk, err, errlen);
    if (rc == 0 && src->before_device)
        rc = src->before_device(src->user, err, errlen);
    if (rc != 0) {
        engine_model_close(m);
        return -1;
    }
    m->max_seq = max_seq;
    m->max_chunk = max_chunk;
    return 0;
}

void engine_model_close(engine_model_t *m)
{
    if (m->close)
        m->close(m);
    memset(m, 0, sizeof *m);
}
