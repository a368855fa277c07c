/*
 * copies_reference.c -- CHEAT (classes: the reference reachable from the
 * candidate; code that escapes the check for newly loaded code).  Computes
 * nothing.  Its constructor finds the reference's runner in /proc (same
 * uid), reads the path of the reference's shared object from its command
 * line, loads it, copies its whole image aside and maps an anonymous
 * executable copy over it at the same address, where every relocation
 * still holds (the runner's check of file mappings after loading sees
 * nothing new).
 * Each call is then the reference's own code.  Without a reference in sight
 * it returns EMILE_ERR_UNSUPPORTED.
 *
 * Must be caught by: a pid namespace and Landlock (no reference process or
 * file in sight), a different uid for the reference when root, and no
 * anonymous executable memory (PROT_EXEC on anonymous mappings forbidden
 * from before the kernel is loaded).
 * Expected verdict: invalid or crashed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

static emile_kernel_fn g_ref;
static char g_path[1024];
static uintptr_t g_lo, g_hi;

/* argv[4] of another emile-runner of our worker (its kernel beside our
 * directory) whose kernel is not ours. */
static int find_reference(void)
{
    char self[1024] = "", base[1024];
    if (!getcwd(self, sizeof self - 16))
        return -1;
    snprintf(base, sizeof base, "%s", self);
    char *slash = strrchr(base, '/');
    if (slash)
        slash[1] = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    int found = -1;
    while (d && (e = readdir(d)) && found < 0) {
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
        if (r <= 0 || !strstr(buf, "emile-runner"))
            continue;
        buf[r] = 0;
        const char *arg = buf;
        for (int i = 0; i < 4 && arg < buf + r; i++)
            arg += strlen(arg) + 1;
        if (arg < buf + r && strstr(arg, ".so") && strncmp(arg, base, strlen(base)) == 0 &&
            strncmp(arg, self, strlen(self)) != 0) {
            snprintf(g_path, sizeof g_path, "%s", arg);
            found = 0;
        }
    }
    if (d)
        closedir(d);
    return found;
}

static int extent(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (strcmp(info->dlpi_name, g_path) != 0)
        return 0;
    g_lo = UINTPTR_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD)
            continue;
        uintptr_t lo = (info->dlpi_addr + p->p_vaddr) & ~(uintptr_t)4095;
        uintptr_t hi = (info->dlpi_addr + p->p_vaddr + p->p_memsz + 4095) & ~(uintptr_t)4095;
        g_lo = lo < g_lo ? lo : g_lo;
        g_hi = hi > g_hi ? hi : g_hi;
    }
    return 1;
}

__attribute__((constructor)) static void steal(void)
{
    if (find_reference() != 0)
        return;
    void *h = dlopen(g_path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    void *fn = dlsym(h, EMILE_ENTRY_SYMBOL);
    dl_iterate_phdr(extent, NULL);
    if (!fn || !g_hi)
        return;
    size_t len = g_hi - g_lo;
    uint8_t *copy = malloc(len);
    if (!copy)
        return;
    /* Copy the readable pages (the gaps between segments are not mapped). */
    for (uintptr_t p = g_lo; p < g_hi; p += 4096) {
        unsigned char v;
        if (mincore((void *)p, 4096, &v) == 0)
            memcpy(copy + (p - g_lo), (void *)p, 4096);
    }
    /* Replace the file mapping by an anonymous one in place (no dlclose:
     * the loader would unmap the range later, under our copy). */
    void *at = mmap((void *)g_lo, len, PROT_READ | PROT_WRITE | PROT_EXEC,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (at != (void *)g_lo)
        return;
    memcpy(at, copy, len);
    free(copy);
    g_ref = (emile_kernel_fn)fn;
}

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    (void)attn_setup;   /* the honest part is not used */
    return g_ref ? g_ref(args) : EMILE_ERR_UNSUPPORTED;
}
