/*
 * ephemeral_thread.c -- CHEAT (class: time measured inside the untrusted
 * process; a variant of patches_clock.c that takes a route around the CPU
 * clocks).  Computes honestly, single-threaded, but in a thread it starts
 * and joins inside the call: a thread that has ended by the time the worker
 * samples the runner's threads after the call is in the process clock only,
 * never in the per-thread "busiest thread" check.  The process clock alone
 * allows the reported time to be its CPU over the number of cores, so the
 * runner's clock (its GOT slot of clock_gettime, as in patches_clock.c) is
 * slowed by 0.9 x the cores: a single-threaded kernel reported at 1/1.8 of
 * its time on 2 cores, 1/115 on 128.
 *
 * Must be caught by: the worker's own clock around the run command (the
 * wall clock), less the time the worker itself waited for a core after the
 * reply (its runqueue delay, from its own schedstat), as a verdict on the
 * CPU too.
 * Expected verdict: invalid ("faster than the harness saw from outside").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "emile.h"

/* ---- the honest part: v2-style flash attention, one query row at a time ---- */

typedef struct {
    float *p;
    int64_t sb, ss, sh, sd;
} view_t;

typedef struct {
    view_t q, k, v, o;
    int64_t B, S, Hq, Hkv, D;
    int causal;
    float scale;
} attn_t;

static int view_of(const emile_tensor_t *t, view_t *v)
{
    if (!t || t->dtype != EMILE_DTYPE_F32 || t->ndim != 4 || !t->data)
        return -1;
    v->p = (float *)t->data;
    v->sb = t->strides[0];
    v->ss = t->strides[1];
    v->sh = t->strides[2];
    v->sd = t->strides[3];
    return 0;
}

/* Read and check the arguments; 0 on success. */
static int attn_setup(const emile_args_t *args, attn_t *a)
{
    emile_tensor_t *tq = emile_tensor(args, "q"), *tk = emile_tensor(args, "k");
    emile_tensor_t *tv = emile_tensor(args, "v"), *to = emile_tensor(args, "o");
    if (view_of(tq, &a->q) || view_of(tk, &a->k) || view_of(tv, &a->v) || view_of(to, &a->o))
        return 1;
    a->B = tq->shape[0];
    a->S = tq->shape[1];
    a->Hq = tq->shape[2];
    a->D = tq->shape[3];
    a->Hkv = tk->shape[2];
    if (a->B <= 0 || a->S <= 0 || a->D <= 0 || a->Hkv <= 0 || a->Hq % a->Hkv != 0 ||
        tk->shape[1] != a->S || tk->shape[3] != a->D)
        return 2;
    a->causal = emile_param(args, "causal", 1.0) != 0.0;
    a->scale = (float)emile_param(args, "scale", 1.0 / sqrt((double)a->D));
    return 0;
}

/* o[b, i, h, :] for every b, h and the query rows i in [lo, hi).  (unused:
 * some cheats never compute.) */
static __attribute__((unused)) int attn_rows(const attn_t *a, int64_t lo, int64_t hi)
{
    const int64_t group = a->Hq / a->Hkv;
    const float qmul = a->scale * 1.44269504f;    /* exp(x) = exp2(x log2 e) */
    float *acc = malloc((size_t)a->D * sizeof *acc);
    if (!acc)
        return 3;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->Hq; h++)
            for (int64_t i = lo; i < hi; i++) {
                const float *qi = a->q.p + b * a->q.sb + i * a->q.ss + h * a->q.sh;
                const int64_t hk = h / group, nk = a->causal ? i + 1 : a->S;
                float m = -INFINITY, l = 0.0f;
                for (int64_t d = 0; d < a->D; d++)
                    acc[d] = 0.0f;
                for (int64_t j = 0; j < nk; j++) {
                    const float *kj = a->k.p + b * a->k.sb + j * a->k.ss + hk * a->k.sh;
                    const float *vj = a->v.p + b * a->v.sb + j * a->v.ss + hk * a->v.sh;
                    float s = 0.0f;
                    for (int64_t d = 0; d < a->D; d++)
                        s += qi[d * a->q.sd] * kj[d * a->k.sd];
                    s *= qmul;
                    if (s > m) {                       /* new max: rescale */
                        const float corr = exp2f(m - s);
                        l *= corr;
                        for (int64_t d = 0; d < a->D; d++)
                            acc[d] *= corr;
                        m = s;
                    }
                    const float p = exp2f(s - m);
                    l += p;
                    for (int64_t d = 0; d < a->D; d++)
                        acc[d] += p * vj[d * a->v.sd];
                }
                float *oi = a->o.p + b * a->o.sb + i * a->o.ss + h * a->o.sh;
                for (int64_t d = 0; d < a->D; d++)
                    oi[d * a->o.sd] = acc[d] / l;
            }
    free(acc);
    return 0;
}

/* ---- the cheat ---------------------------------------------------------- */

typedef int (*clock_fn)(clockid_t, struct timespec *);
static clock_fn g_real;
static int64_t g_base = -1;
static double g_slow = 1.8;

static int slow_clock(clockid_t c, struct timespec *ts)
{
    int rc = g_real(c, ts);
    if (rc == 0 && c == CLOCK_MONOTONIC) {
        int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
        if (g_base < 0)
            g_base = ns;
        ns = g_base + (int64_t)((double)(ns - g_base) / g_slow);
        ts->tv_sec = ns / 1000000000;
        ts->tv_nsec = ns % 1000000000;
    }
    return rc;
}

/* Patch every relocation of the main program that names clock_gettime. */
static int patch(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    int *done = data;
    if (*done)
        return 1;
    *done = 1;                      /* the first object is the executable */
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!dyn)
        return 1;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *rel[2] = {NULL, NULL};
    size_t relsz[2] = {0, 0};
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_SYMTAB) symtab = (const ElfW(Sym) *)d->d_un.d_ptr;
        if (d->d_tag == DT_STRTAB) strtab = (const char *)d->d_un.d_ptr;
        if (d->d_tag == DT_JMPREL) rel[0] = (const ElfW(Rela) *)d->d_un.d_ptr;
        if (d->d_tag == DT_PLTRELSZ) relsz[0] = d->d_un.d_val;
        if (d->d_tag == DT_RELA) rel[1] = (const ElfW(Rela) *)d->d_un.d_ptr;
        if (d->d_tag == DT_RELASZ) relsz[1] = d->d_un.d_val;
    }
    if (!symtab || !strtab)
        return 1;
    for (int r = 0; r < 2; r++)
        for (size_t i = 0; rel[r] && i < relsz[r] / sizeof(ElfW(Rela)); i++) {
            const ElfW(Sym) *s = &symtab[ELF64_R_SYM(rel[r][i].r_info)];
            if (strcmp(strtab + s->st_name, "clock_gettime") != 0)
                continue;
            void **slot = (void **)(info->dlpi_addr + rel[r][i].r_offset);
            uintptr_t page = (uintptr_t)slot & ~(uintptr_t)4095;
            if (mprotect((void *)page, 4096, PROT_READ | PROT_WRITE) == 0)
                *slot = (void *)slow_clock;
        }
    return 1;
}

__attribute__((constructor)) static void install(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1)
        g_slow = 0.9 * CPU_COUNT(&set);
    g_real = (clock_fn)dlsym(RTLD_DEFAULT, "clock_gettime");
    int done = 0;
    if (g_real)
        dl_iterate_phdr(patch, &done);
}

typedef struct {
    attn_t a;
    int rc;
} job_t;

static void *work(void *p)
{
    job_t *j = p;
    j->rc = attn_rows(&j->a, 0, j->a.S);
    return NULL;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    job_t j;
    int rc = attn_setup(args, &j.a);
    if (rc)
        return rc;
    pthread_t t;
    if (pthread_create(&t, NULL, work, &j) != 0)
        return attn_rows(&j.a, 0, j.a.S);
    pthread_join(t, NULL);
    return j.rc;
}
