/*
 * prlimits_reference.c -- HARM (class: the reference runner reachable from
 * the candidate).  Finds the other emile-runner processes in /proc and caps
 * their CPU time at one second with prlimit64 (they die of SIGXCPU at their
 * next tick: the reference runner has long used more).  Without a target in
 * sight it aims at getpid() + 1.  Then it computes honestly.
 *
 * Must be caught by: a pid namespace, prlimit64 on another process
 * forbidden by the seccomp filter, a different uid for the reference when
 * root, and a reference runner restarted when it dies.
 * Expected verdict: crashed ("prlimit64").
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
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

/* Other emile-runner processes (the reference's first): pids into out. */
static int other_runners(int *out, int max)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0)
            continue;
        buf[r] = 0;
        if (strstr(buf, "emile-runner"))
            out[n++] = pid;
    }
    if (d)
        closedir(d);
    return n;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_t a;
    int rc = attn_setup(args, &a);
    if (rc)
        return rc;
    int pids[16];
    int n = other_runners(pids, 16);
    if (n == 0)
        pids[n++] = getpid() + 1;
    struct rlimit one = {1, 1};
    for (int i = 0; i < n; i++)
        prlimit(pids[i], RLIMIT_CPU, &one, NULL);
    return attn_rows(&a, 0, a.S);
}
