/*
 * forged_reply.c -- CHEAT (class: figures reported by the untrusted
 * process).  Computes honestly, but first writes a reply of its own to the
 * runner's control socket: the descriptor is argv[1] of /proc/self/cmdline,
 * the command's nonce is read from the runner's stack (the command line the
 * runner has just parsed sits there).  The forged text is a prefix without
 * a newline -- "ok NONCE 0 1000 1000 1000 0 " -- so the runner's own reply
 * ends the same line: a parser that takes the first numbers of a line reads
 * 1 us.
 *
 * Must be caught by: strict replies (exact field counts, nothing else on
 * the line, nothing left unread on the socket): a line the runner did not
 * write means the kernel wrote to the socket.
 * Expected verdict: invalid ("wrote to the runner's control socket").
 */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- the cheat ---------------------------------------------------------- */

static int ctl_fd(void)
{
    char buf[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *arg1 = buf + strlen(buf) + 1;
    return arg1 < buf + n ? atoi(arg1) : -1;
}

/* "run\0" + 16 hex digits + "\0" somewhere above our frame on the stack. */
static int find_nonce(char *nonce)
{
    unsigned long lo = (unsigned long)__builtin_frame_address(0), hi = 0, a, b;
    char line[512];
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &a, &b) == 2)
            hi = b;
    if (f)
        fclose(f);
    for (const char *p = (const char *)lo; hi && p + 21 < (const char *)hi; p++) {
        if (memcmp(p, "run", 4) != 0)
            continue;
        int ok = p[20] == 0;
        for (int i = 4; i < 20 && ok; i++)
            ok = isxdigit((unsigned char)p[i]);
        if (ok) {
            memcpy(nonce, p + 4, 16);
            nonce[16] = 0;
            return 0;
        }
    }
    return -1;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    attn_t a;
    int rc = attn_setup(args, &a);
    if (rc)
        return rc;
    char nonce[17], msg[96];
    int fd = ctl_fd();
    if (fd >= 0 && find_nonce(nonce) == 0) {
        int n = snprintf(msg, sizeof msg, "ok %s 0 1000 1000 1000 0 ", nonce);
        if (write(fd, msg, (size_t)n) < 0)
            return 9;
    }
    return attn_rows(&a, 0, a.S);
}
